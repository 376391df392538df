#!/usr/bin/env python3
"""Probe how RabbitMQ reacts to malformed / unexpected AMQP 0-9-1 input.

Usage:
    python3 probe_errors.py RABBITMQ_PORT

Pure standard library, raw sockets. Assumes RabbitMQ is running on
127.0.0.1:RABBITMQ_PORT with guest/guest and vhost "/". For every probe it
opens a fresh connection, does the handshake by hand (protocol header,
start/start-ok PLAIN, tune/tune-ok, open "/", channel.open 1) unless the
probe is about the protocol header itself, sends the bad input, then prints
every frame the server sends back (decoding connection.close /
channel.close) and whether / how quickly the server closes the socket.
When the server sends connection.close the probe does NOT answer with
close-ok at first, to see whether the server closes on its own; if it has
not closed after CLOSE_WAIT seconds, close-ok is sent.
"""

import socket
import struct
import sys
import time

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_END = b"\xce"
CLOSE_WAIT = 4.0

METHOD_NAMES = {
    (10, 10): "connection.start", (10, 30): "connection.tune",
    (10, 41): "connection.open-ok", (10, 50): "connection.close",
    (10, 51): "connection.close-ok", (20, 11): "channel.open-ok",
    (20, 40): "channel.close", (20, 41): "channel.close-ok",
    (50, 11): "queue.declare-ok",
}


def shortstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">B", len(b)) + b


def longstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack(">I", len(b)) + b


def frame(ftype, channel, payload, end=FRAME_END):
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + end


def method(channel, cid, mid, args=b""):
    return frame(1, channel, struct.pack(">HH", cid, mid) + args)


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""
        self.eof = False
        self.frame_max = None

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ConnectionResetError:
            self.eof = "reset"
            return False
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def read_frame(self, timeout=5.0):
        deadline = time.time() + timeout
        while True:
            if len(self.buf) >= 7:
                ftype, ch, size = struct.unpack(">BHI", self.buf[:7])
                if len(self.buf) >= 8 + size:
                    f = self.buf[:8 + size]
                    self.buf = self.buf[8 + size:]
                    return f
            if self.eof:
                return None
            left = deadline - time.time()
            if left <= 0 or not self._fill(left):
                if self.eof or time.time() >= deadline:
                    return None

    def read_method(self, expect):
        f = self.read_frame()
        assert f is not None and f[0] == 1, f
        cid, mid = struct.unpack(">HH", f[7:11])
        assert (cid, mid) == expect, (cid, mid)
        return f[11:-1]

    def handshake(self, frame_max=None, open_channel=True):
        self.send(PROTOCOL_HEADER)
        self.read_method((10, 10))
        client_props = b""  # empty table
        self.send(method(0, 10, 11,
                         longstr(client_props) + shortstr("PLAIN") +
                         longstr(b"\x00guest\x00guest") + shortstr("en_US")))
        tune = self.read_method((10, 30))
        channel_max, fmax, heartbeat = struct.unpack(">HIH", tune)
        self.frame_max = frame_max or fmax
        self.send(method(0, 10, 31, struct.pack(">HIH", channel_max, self.frame_max, 0)))
        self.send(method(0, 10, 40, shortstr("/") + shortstr("") + b"\x00"))
        self.read_method((10, 41))
        if open_channel:
            self.send(method(1, 20, 10, shortstr("")))
            self.read_method((20, 11))


def describe(f):
    ftype, ch, size = struct.unpack(">BHI", f[:7])
    if ftype != 1:
        return "frame type=%d ch=%d size=%d raw=%r" % (ftype, ch, size, f)
    cid, mid = struct.unpack(">HH", f[7:11])
    name = METHOD_NAMES.get((cid, mid), "%d.%d" % (cid, mid))
    s = "ch=%d %s" % (ch, name)
    if (cid, mid) in ((10, 50), (20, 40)):
        p = f[11:-1]
        code = struct.unpack(">H", p[:2])[0]
        tl = p[2]
        text = p[3:3 + tl].decode()
        ccid, cmid = struct.unpack(">HH", p[3 + tl:7 + tl])
        s += " reply-code=%d reply-text=%r class-id=%d method-id=%d" % (code, text, ccid, cmid)
    return s


def observe(c, label, wait=None):
    """Print what the server sends after the bad input."""
    global CLOSE_WAIT
    saved = CLOSE_WAIT
    if wait:
        CLOSE_WAIT = wait
    try:
        _observe(c, label)
    finally:
        CLOSE_WAIT = saved


def _observe(c, label):
    print("  server response:")
    t0 = time.time()
    got_close = None
    while True:
        f = c.read_frame(timeout=CLOSE_WAIT)
        if f is None:
            break
        print("    +%.2fs %s" % (time.time() - t0, describe(f)))
        if f[0] == 1 and f[7:11] == struct.pack(">HH", 10, 50):
            got_close = "connection"
            break
        if f[0] == 1 and f[7:11] == struct.pack(">HH", 20, 40):
            got_close = "channel"
            ch = struct.unpack(">H", f[1:3])[0]
            c.send(method(ch, 20, 41))  # channel.close-ok
            print("    (sent channel.close-ok; connection still usable? probing)")
            c.send(method(ch, 20, 10, shortstr("")))
            f2 = c.read_frame(timeout=2)
            print("    re-open channel %d -> %s" % (ch, describe(f2) if f2 else "no reply"))
            return
    if got_close == "connection":
        # wait without sending close-ok
        t1 = time.time()
        while not c.eof and time.time() - t1 < CLOSE_WAIT:
            if not c._fill(CLOSE_WAIT - (time.time() - t1)):
                break
        if c.eof:
            print("    server closed socket %.2fs after connection.close without close-ok (eof=%s)"
                  % (time.time() - t1, c.eof))
        else:
            print("    socket still open %.1fs after connection.close; sending close-ok" % CLOSE_WAIT)
            c.send(method(0, 10, 51))
            t2 = time.time()
            while not c.eof and time.time() - t2 < CLOSE_WAIT:
                if not c._fill(CLOSE_WAIT):
                    break
            print("    after close-ok: eof=%s (%.2fs)" % (c.eof, time.time() - t2))
        if c.buf:
            print("    extra bytes: %r" % c.buf)
    elif c.eof:
        print("    socket closed (eof=%s) after %.2fs, no frames" % (c.eof, time.time() - t0))
    else:
        print("    nothing received within %.1fs, socket still open" % CLOSE_WAIT)


def probe_header(port, hdr, wait=CLOSE_WAIT):
    print("=== protocol header %r" % hdr)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(hdr)
    t0 = time.time()
    data = b""
    closed = False
    s.settimeout(wait)
    while time.time() - t0 < wait:
        try:
            d = s.recv(4096)
        except socket.timeout:
            break
        except ConnectionResetError:
            closed = "reset"
            break
        if not d:
            closed = True
            break
        data += d
    print("  reply bytes: %r (hex %s)" % (data, data.hex()))
    print("  socket closed by server: %s after %.2fs" % (closed, time.time() - t0))
    s.close()


def run(port, label, payload_fn, wait=None, **hs):
    print("=== " + label)
    c = Conn(port)
    c.handshake(**hs)
    payload = payload_fn(c)
    print("  sent: %s" % (payload.hex() if len(payload) <= 64 else payload[:32].hex() + "... (%d bytes)" % len(payload)))
    c.send(payload)
    observe(c, label, wait)
    c.sock.close()


def queue_declare_args(name="probe.q"):
    # reserved-1 short, queue shortstr, bits, arguments table (empty)
    return struct.pack(">H", 0) + shortstr(name) + b"\x00" + longstr(b"")


def main():
    port = int(sys.argv[1])

    # (a) bad protocol headers
    for hdr in (b"AMQP\x00\x00\x09\x02", b"AMQP\x00\x00\x09\x00", b"AMQP\x01\x01\x00\x09",
                b"AMQP\x00\x00\x08\x00", b"HTTP/1.1", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"):
        probe_header(port, hdr)
    # incomplete header: how long until the server gives up (handshake_timeout)?
    probe_header(port, b"AMQ", wait=15)

    # (b) unknown class/method ids
    run(port, "(b) unknown method basic(60).999 on channel 1",
        lambda c: method(1, 60, 999))
    run(port, "(b2) unknown class 99 method 10 on channel 1",
        lambda c: method(1, 99, 10))
    run(port, "(b3) unknown method connection(10).99 on channel 0",
        lambda c: method(0, 10, 99))

    # (c) bad frame-end byte
    run(port, "(c) queue.declare with frame-end 0x00 instead of 0xCE",
        lambda c: frame(1, 1, struct.pack(">HH", 50, 10) + queue_declare_args(), end=b"\x00"))

    # (d) unknown frame type
    run(port, "(d) frame type 5 on channel 1", lambda c: frame(5, 1, b"abc"))
    run(port, "(d2) frame type 5 on channel 0", lambda c: frame(5, 0, b"abc"))

    # (e) truncated method arguments
    full = struct.pack(">HH", 50, 10) + queue_declare_args()
    run(port, "(e) queue.declare payload truncated mid queue-name",
        lambda c: frame(1, 1, full[:9]))
    run(port, "(e2) queue.declare payload missing arguments table",
        lambda c: frame(1, 1, full[:-4]))
    run(port, "(e3) method frame with only 2 payload bytes (no method id)",
        lambda c: frame(1, 1, struct.pack(">H", 50)))
    run(port, "(e4) queue.declare with trailing garbage after arguments",
        lambda c: frame(1, 1, full + b"\x01\x02\x03"))

    # (f) content without a preceding publish
    run(port, "(f) body frame on channel 1 with no publish",
        lambda c: frame(3, 1, b"hello"))
    run(port, "(f2) content header frame on channel 1 with no publish",
        lambda c: frame(2, 1, struct.pack(">HHQH", 60, 0, 5, 0)))
    # method (non-content) while publish awaits header
    publish = method(1, 60, 40, struct.pack(">H", 0) + shortstr("") + shortstr("q") + b"\x00")
    run(port, "(f3) basic.publish then a method frame instead of a content header",
        lambda c: publish + method(1, 50, 10, queue_declare_args()))
    run(port, "(f4) basic.publish + header(size 5) then body of 6 bytes",
        lambda c: publish + frame(2, 1, struct.pack(">HHQH", 60, 0, 5, 0)) + frame(3, 1, b"hello!"))
    run(port, "(f5) basic.publish + header with class-id 50 (mismatch)",
        lambda c: publish + frame(2, 1, struct.pack(">HHQH", 50, 0, 5, 0)))

    # (g) frame bigger than negotiated frame_max
    run(port, "(g) body frame payload = frame_max (total frame_max+8) after publish, frame_max=131072",
        lambda c: publish + frame(2, 1, struct.pack(">HHQH", 60, 0, 200000, 0)) +
        frame(3, 1, b"x" * c.frame_max))
    run(port, "(g2) method frame total size frame_max+1 with frame_max=4096",
        lambda c: frame(1, 1, struct.pack(">HH", 50, 10) + struct.pack(">H", 0) +
                        shortstr("q") + b"\x00" + longstr(b"\x01k" + b"S" + longstr(b"v" * (c.frame_max - 8 - 19)))),
        frame_max=4096)
    run(port, "(g3) control: method frame total size exactly frame_max=4096",
        lambda c: frame(1, 1, struct.pack(">HH", 50, 10) + struct.pack(">H", 0) +
                        shortstr("q") + b"\x00" + longstr(b"\x01k" + b"S" + longstr(b"v" * (c.frame_max - 8 - 20)))),
        frame_max=4096)

    def padded_declare(payload_size):
        # queue.declare whose method-frame payload is exactly payload_size bytes
        n = payload_size - 20
        return frame(1, 1, struct.pack(">HH", 50, 10) + struct.pack(">H", 0) + shortstr("q") +
                     b"\x00" + longstr(b"\x01k" + b"S" + longstr(b"v" * n)))
    run(port, "(g4) frame_max=4096, method frame payload 4096 (total 4104 = frame_max + 8)",
        lambda c: padded_declare(4096), frame_max=4096)
    run(port, "(g5) frame_max=4096, method frame payload 4097 (total 4105 = frame_max + 9)",
        lambda c: padded_declare(4097), frame_max=4096)
    run(port, "(g6) frame_max=131072, body frame payload 131073 after publish (frame_max + 1)",
        lambda c: publish + frame(2, 1, struct.pack(">HHQH", 60, 0, 200000, 0)) +
        frame(3, 1, b"x" * (c.frame_max + 1)))
    run(port, "(f6) publish + header(size 5) + body of 6 bytes, then a method frame",
        lambda c: publish + frame(2, 1, struct.pack(">HHQH", 60, 0, 5, 0)) + frame(3, 1, b"hello!") +
        method(1, 50, 10, queue_declare_args()))
    run(port, "(f7) publish + header(size 5) + body of 5 bytes + extra body frame",
        lambda c: publish + frame(2, 1, struct.pack(">HHQH", 60, 0, 5, 0)) + frame(3, 1, b"hello") +
        frame(3, 1, b"!"))
    run(port, "(t1) timing: unknown frame type 5, wait 40s for server to drop us without close-ok",
        lambda c: frame(5, 1, b"abc"), wait=40)

    # extras
    run(port, "(x1) method on channel 2 that was never opened",
        lambda c: method(2, 50, 10, queue_declare_args()))
    run(port, "(x2) channel.open on channel 1 which is already open",
        lambda c: method(1, 20, 10, shortstr("")))
    run(port, "(x3) heartbeat frame on channel 1",
        lambda c: frame(8, 1, b""))
    run(port, "(x4) basic.qos (channel method) sent on channel 0",
        lambda c: method(0, 60, 10, struct.pack(">IHB", 0, 1, 0)))
    run(port, "(x5) connection.open (connection method) sent on channel 1",
        lambda c: method(1, 10, 40, shortstr("/") + shortstr("") + b"\x00"))
    run(port, "(x6) channel.open on channel 2048 (> channel_max 2047)",
        lambda c: method(2048, 20, 10, shortstr("")))
    run(port, "(x7) queue.declare with bad field-table type tag 'Z'",
        lambda c: method(1, 50, 10, struct.pack(">H", 0) + shortstr("q") + b"\x00" + longstr(b"\x01kZ")))


if __name__ == "__main__":
    main()
