#!/usr/bin/env python3
"""Capture golden AMQP 0-9-1 frames exchanged between pika and RabbitMQ.

Usage:
    python3 capture.py RABBITMQ_PORT [--out DIR] [--proxy-port PORT]

Assumes RabbitMQ is already running on 127.0.0.1:RABBITMQ_PORT with the
default guest/guest user and vhost "/". Requires `pika` (pip install pika).

It starts a logging TCP proxy on 127.0.0.1:PROXY_PORT (default 5674), runs a
pika BlockingConnection scenario through it, then splits both recorded byte
streams into frames and writes the first occurrence of every distinct method
per direction into OUT (default: the directory containing this script):

    c2s-protocol-header.bin                 the 8 bytes the client sends first
    <dir>-<class>.<method>.bin              one whole method frame
    <dir>-<class>.<method>.header.bin       content header following it
    <dir>-<class>.<method>.body.bin         first body frame following it
    <dir>-heartbeat.bin                     a heartbeat frame, if one was seen

Every file holds exactly one whole frame: type u8, channel u16, size u32,
payload, 0xCE.
"""

import argparse
import datetime
import decimal
import os
import socket
import struct
import sys
import threading
import time

import pika

# class id -> (name, {method id -> name}); from amqp0-9-1.stripped.extended.xml
SPEC = {
    10: ("connection", {10: "start", 11: "start-ok", 20: "secure", 21: "secure-ok",
                        30: "tune", 31: "tune-ok", 40: "open", 41: "open-ok",
                        50: "close", 51: "close-ok"}),
    20: ("channel", {10: "open", 11: "open-ok", 20: "flow", 21: "flow-ok",
                     40: "close", 41: "close-ok"}),
    40: ("exchange", {10: "declare", 11: "declare-ok", 20: "delete", 21: "delete-ok",
                      30: "bind", 31: "bind-ok", 40: "unbind", 51: "unbind-ok"}),
    50: ("queue", {10: "declare", 11: "declare-ok", 20: "bind", 21: "bind-ok",
                   50: "unbind", 51: "unbind-ok", 30: "purge", 31: "purge-ok",
                   40: "delete", 41: "delete-ok"}),
    60: ("basic", {10: "qos", 11: "qos-ok", 20: "consume", 21: "consume-ok",
                   30: "cancel", 31: "cancel-ok", 40: "publish", 50: "return",
                   60: "deliver", 70: "get", 71: "get-ok", 72: "get-empty",
                   80: "ack", 90: "reject", 100: "recover-async", 110: "recover",
                   111: "recover-ok", 120: "nack"}),
    85: ("confirm", {10: "select", 11: "select-ok"}),
    90: ("tx", {10: "select", 11: "select-ok", 20: "commit", 21: "commit-ok",
                30: "rollback", 31: "rollback-ok"}),
}

FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8
FRAME_END = 0xCE


# --------------------------------------------------------------------------
# Logging proxy
# --------------------------------------------------------------------------

class Proxy:
    def __init__(self, listen_port, upstream_port):
        self.upstream_port = upstream_port
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", listen_port))
        self.lsock.listen(1)
        self.c2s = bytearray()
        self.s2c = bytearray()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _pump(self, src, dst, buf):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                buf.extend(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def _serve(self):
        client, _ = self.lsock.accept()
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        t1 = threading.Thread(target=self._pump, args=(client, upstream, self.c2s))
        t2 = threading.Thread(target=self._pump, args=(upstream, client, self.s2c))
        t1.start()
        t2.start()
        t1.join()
        t2.join()
        client.close()
        upstream.close()
        self.lsock.close()
        self.done.set()


# --------------------------------------------------------------------------
# pika scenario
# --------------------------------------------------------------------------

RICH_HEADERS = {
    "str": "a long string",
    "int": 42,
    "negint": -7,
    "bigint": 2 ** 40,              # int64 ('l')
    "bool": True,
    "false": False,
    "decimal": decimal.Decimal("3.14"),
    "ts": datetime.datetime(2024, 1, 2, 3, 4, 5),
    "nested": {"k": "v", "n": 1},
    "array": [1, "two", True, {"x": 0}],
    "void": None,
    "bytes": b"\x00\x01\x02",       # pika encodes bytes as byte array ('x')
}

RICH_PROPS = pika.BasicProperties(
    content_type="text/plain",
    content_encoding="utf-8",
    headers=RICH_HEADERS,
    delivery_mode=2,
    priority=5,
    correlation_id="corr-1",
    reply_to="reply.queue",
    expiration="60000",
    message_id="msg-1",
    timestamp=1700000000,
    type="golden.type",
    user_id="guest",
    app_id="warren-golden",
)

BODY = b"hello golden"


def scenario(port):
    params = pika.ConnectionParameters(host="127.0.0.1", port=port,
                                       credentials=pika.PlainCredentials("guest", "guest"),
                                       heartbeat=0)
    conn = pika.BlockingConnection(params)

    # ---- channel 1: topology, publish, get, consume, ack/nack/reject, ...
    ch = conn.channel()
    ch.exchange_declare("golden.topic", exchange_type="topic", durable=True,
                        arguments={"str": "s", "int": 7, "bool": True,
                                   "table": {"a": 1, "b": "c"},
                                   "array": [1, "x", False]})
    ch.exchange_declare("golden.fanout", exchange_type="fanout")
    ch.queue_declare("golden.q", arguments={"x-message-ttl": 60000})
    ch.queue_bind("golden.q", "golden.topic", routing_key="golden.#")
    ch.basic_qos(prefetch_count=10)

    ch.basic_publish("golden.topic", "golden.key", BODY, properties=RICH_PROPS)
    time.sleep(0.2)
    method, props, body = ch.basic_get("golden.q")
    assert body == BODY, body
    ch.basic_ack(method.delivery_tag)
    method, props, body = ch.basic_get("golden.q")
    assert method is None  # get-empty

    # three deliveries: ack, nack, reject
    ch.basic_publish("golden.topic", "golden.key", BODY, properties=RICH_PROPS)
    ch.basic_publish("golden.topic", "golden.key", b"two")
    ch.basic_publish("golden.topic", "golden.key", b"three")
    got = []

    def on_msg(c, m, p, b):
        got.append(m.delivery_tag)

    tag = ch.basic_consume("golden.q", on_msg, consumer_tag="golden-ctag")
    deadline = time.time() + 5
    while len(got) < 3 and time.time() < deadline:
        conn.process_data_events(time_limit=0.2)
    assert len(got) == 3, got
    ch.basic_ack(got[0])
    ch.basic_nack(got[1], requeue=False)
    ch.basic_reject(got[2], requeue=False)
    ch.basic_cancel(tag)
    ch.basic_recover(requeue=True)

    # mandatory publish to nowhere -> basic.return
    ch.basic_publish("golden.topic", "nowhere", b"returned", mandatory=True)
    conn.process_data_events(time_limit=0.5)

    ch.exchange_bind(destination="golden.fanout", source="golden.topic", routing_key="e2e")
    ch.exchange_unbind(destination="golden.fanout", source="golden.topic", routing_key="e2e")
    ch.basic_publish("golden.topic", "golden.key", b"purge me")
    time.sleep(0.2)
    ch.queue_purge("golden.q")
    ch.queue_unbind("golden.q", "golden.topic", routing_key="golden.#")
    ch.queue_delete("golden.q")
    ch.exchange_delete("golden.fanout")
    ch.exchange_delete("golden.topic")
    ch.close()

    # ---- channel 2: publisher confirms
    ch2 = conn.channel()
    ch2.confirm_delivery()
    ch2.basic_publish("", "amq.nonexistent.q", b"confirm me")  # default exchange; acked even if unroutable
    ch2.close()

    # ---- channel 3: transactions
    ch3 = conn.channel()
    ch3.tx_select()
    ch3.basic_publish("", "nowhere", b"tx")
    ch3.tx_commit()
    ch3.basic_publish("", "nowhere", b"tx2")
    ch3.tx_rollback()
    ch3.close()

    # ---- channel 4: server-initiated channel.close (404 on passive declare)
    ch4 = conn.channel()
    try:
        ch4.queue_declare("golden.does-not-exist", passive=True)
    except pika.exceptions.ChannelClosedByBroker:
        pass

    conn.close()


# --------------------------------------------------------------------------
# Frame splitting
# --------------------------------------------------------------------------

def split_frames(buf):
    frames = []
    i = 0
    while i + 7 <= len(buf):
        ftype, chan, size = struct.unpack(">BHI", buf[i:i + 7])
        end = i + 7 + size
        if end >= len(buf):
            raise ValueError("truncated frame at offset %d" % i)
        if buf[end] != FRAME_END:
            raise ValueError("bad frame end at offset %d" % end)
        frames.append(bytes(buf[i:end + 1]))
        i = end + 1
    if i != len(buf):
        raise ValueError("%d trailing bytes" % (len(buf) - i))
    return frames


def method_name(frame):
    cid, mid = struct.unpack(">HH", frame[7:11])
    cname, methods = SPEC[cid]
    return "%s.%s" % (cname, methods[mid])


def save(direction, frames, out, written):
    last_content_method = {}  # channel -> (name, header_seen, body_seen)
    for f in frames:
        ftype, chan = f[0], struct.unpack(">H", f[1:3])[0]
        name = None
        if ftype == FRAME_METHOD:
            m = method_name(f)
            name = m
            if m in ("basic.publish", "basic.deliver", "basic.get-ok", "basic.return"):
                last_content_method[chan] = [m, False, False]
            else:
                last_content_method.pop(chan, None)
        elif ftype == FRAME_HEADER:
            st = last_content_method.get(chan)
            if st and not st[1]:
                st[1] = True
                name = st[0] + ".header"
        elif ftype == FRAME_BODY:
            st = last_content_method.get(chan)
            if st and not st[2]:
                st[2] = True
                name = st[0] + ".body"
        elif ftype == FRAME_HEARTBEAT:
            name = "heartbeat"
        if name is None:
            continue
        fname = "%s-%s.bin" % (direction, name)
        if fname in written:
            continue
        with open(os.path.join(out, fname), "wb") as fh:
            fh.write(f)
        written.append(fname)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int, help="RabbitMQ AMQP port")
    ap.add_argument("--proxy-port", type=int, default=5674)
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    a = ap.parse_args()

    proxy = Proxy(a.proxy_port, a.port)
    scenario(a.proxy_port)
    if not proxy.done.wait(10):
        sys.exit("proxy did not finish")

    c2s, s2c = bytes(proxy.c2s), bytes(proxy.s2c)
    written = []
    assert c2s[:8] == b"AMQP\x00\x00\x09\x01", c2s[:8]
    with open(os.path.join(a.out, "c2s-protocol-header.bin"), "wb") as fh:
        fh.write(c2s[:8])
    written.append("c2s-protocol-header.bin")
    save("c2s", split_frames(c2s[8:]), a.out, written)
    save("s2c", split_frames(s2c), a.out, written)
    for w in written:
        print("%6d  %s" % (os.path.getsize(os.path.join(a.out, w)), w))


if __name__ == "__main__":
    main()
