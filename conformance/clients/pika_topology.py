"""pika scenarios: connection, exchanges, queues and bindings."""

import os
import re
import sys

import pika
import pika.exceptions as pex

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pika_common import World, expect_channel_error, pump  # noqa: E402
from pyharness import check, eq, scenario, unique, wait_until  # noqa: E402

# ---------------------------------------------------------------- connection


@scenario("connect_heartbeat")
def connect_heartbeat(url):
    seen = {}

    def hb(conn, server_value):
        seen["server"] = server_value
        return 2

    with World(url, heartbeat=hb) as w:
        props = w.conn._impl.server_properties
        caps = props.get("capabilities", {})
        for cap in ["publisher_confirms", "exchange_exchange_bindings", "basic.nack",
                    "consumer_cancel_notify", "connection.blocked", "authentication_failure_close",
                    "per_consumer_qos"]:
            check(caps.get(cap) is True, f"server capability {cap} = {caps.get(cap)!r}")
        eq(seen.get("server"), 60, "server's proposed heartbeat (connection.tune)")
        params = w.conn._impl.params
        eq(params.heartbeat, 2, "negotiated heartbeat")
        eq(params.frame_max, 131072, "negotiated frame_max (client proposes 131072)")
        eq(params.channel_max, 2047, "negotiated channel_max (server proposes 2047)")
        # heartbeat 2 s: pika drops the connection after ~2 intervals without a frame from
        # the server; idle 6 s and the connection must still be open and usable.
        pump(w.conn, 6)
        check(w.conn.is_open, "connection closed while idle with heartbeat 2")
        w.ch.queue_declare("", exclusive=True)
        return f"server heartbeat {seen['server']}, frame_max {params.frame_max}"


# ---------------------------------------------------------------- exchanges


@scenario("exchange_declare_types")
def exchange_declare_types(url):
    with World(url) as w:
        for t in ["direct", "fanout", "topic", "headers"]:
            name = w.exchange("ex-" + t, t)
            w.ch.exchange_declare(name, t)  # idempotent redeclare
            w.ch.exchange_declare(name, t, passive=True)
            w.ch.exchange_delete(name)
            ch = w.conn.channel()
            expect_channel_error(lambda: ch.exchange_declare(name, t, passive=True), 404,
                                 rf"NOT_FOUND - no exchange '{re.escape(name)}' in vhost '/'")
        for builtin, t in [("amq.direct", "direct"), ("amq.fanout", "fanout"),
                           ("amq.topic", "topic"), ("amq.headers", "headers"),
                           ("amq.match", "headers")]:
            w.ch.exchange_declare(builtin, t, passive=True)
            w.ch.exchange_declare(builtin, t, durable=True)


# ---------------------------------------------------------------- queues


@scenario("queue_declare_named")
def queue_declare_named(url):
    with World(url) as w:
        name = unique("q-named")
        ok = w.ch.queue_declare(name)
        w.queues.append(name)
        eq(ok.method.queue, name, "declare-ok queue")
        eq((ok.method.message_count, ok.method.consumer_count), (0, 0), "counts")
        w.ch.confirm_delivery()
        w.ch.basic_publish("", name, b"x")
        ok = w.ch.queue_declare(name)
        eq(ok.method.message_count, 1, "redeclare message_count")
        ok = w.ch.queue_declare(name, passive=True)
        eq(ok.method.message_count, 1, "passive message_count")
        ok = w.ch.queue_delete(name)
        eq(ok.method.message_count, 1, "delete-ok message_count")


@scenario("queue_declare_server_named")
def queue_declare_server_named(url):
    with World(url) as w:
        ok = w.ch.queue_declare("", exclusive=True)
        q = ok.method.queue
        check(q.startswith("amq.gen-"), f"server-named queue {q!r} does not start with amq.gen-")
        w.ch.basic_publish("", q, b"hello")
        m, p, b = w.ch.basic_get(q, auto_ack=True)
        eq(b, b"hello", "body via server-named queue")
        return q


@scenario("queue_declare_exclusive")
def queue_declare_exclusive(url):
    with World(url) as w:
        c2 = w.connect()
        ch2 = c2.channel()
        name = unique("q-excl")
        ch2.queue_declare(name, exclusive=True)
        ch2.queue_declare(name, passive=True)  # owner sees it
        c2.close()

        def gone():
            ch = w.conn.channel()
            try:
                ch.queue_declare(name, passive=True)
                ch.close()
                return False
            except pex.ChannelClosedByBroker as e:
                return e.reply_code == 404

        check(wait_until(gone, 5), "exclusive queue still exists after its connection closed")


@scenario("queue_declare_auto_delete")
def queue_declare_auto_delete(url):
    with World(url) as w:
        name = unique("q-autodel")
        w.ch.queue_declare(name, auto_delete=True)
        w.queues.append(name)
        # no consumer yet: stays
        w.ch.queue_declare(name, passive=True)
        tag = w.ch.basic_consume(name, lambda *a: None, auto_ack=True)
        w.ch.basic_cancel(tag)

        def gone():
            ch = w.conn.channel()
            try:
                ch.queue_declare(name, passive=True)
                ch.close()
                return False
            except pex.ChannelClosedByBroker as e:
                return e.reply_code == 404

        check(wait_until(gone, 5), "auto-delete queue still exists after its last consumer left")


@scenario("queue_declare_durable")
def queue_declare_durable(url):
    with World(url) as w:
        name = w.queue("q-durable", durable=True)
        w.ch.confirm_delivery()
        w.ch.queue_declare(name, durable=True)
        w.ch.queue_declare(name, passive=True)
        w.ch.basic_publish("", name, b"p", pika.BasicProperties(delivery_mode=2))
        eq(w.count(name), 1, "message_count")
        ok = w.ch.queue_delete(name)
        eq(ok.method.message_count, 1, "delete-ok message_count")


# ---------------------------------------------------------------- bindings


@scenario("bind_unbind")
def bind_unbind(url):
    with World(url) as w:
        w.ch.confirm_delivery()
        ex = w.exchange("ex-bind", "direct")
        q = w.queue("q-bind")
        w.ch.queue_bind(q, ex, "k1")
        w.ch.queue_bind(q, ex, "k1")  # idempotent
        w.ch.queue_bind(q, ex, "k2")
        for k in ["k1", "k2", "k3"]:
            w.ch.basic_publish(ex, k, k.encode())
        eq(w.count(q), 2, "messages routed with bindings k1,k2")
        w.ch.queue_unbind(q, ex, "k1")
        for k in ["k1", "k2"]:
            w.ch.basic_publish(ex, k, k.encode())
        eq(w.count(q), 3, "messages after unbind of k1")
        # unbinding something that is not bound is not an error in RabbitMQ
        w.ch.queue_unbind(q, ex, "never-bound")
        bodies = [w.ch.basic_get(q, auto_ack=True)[2] for _ in range(3)]
        eq(bodies, [b"k1", b"k2", b"k2"], "bodies")


@scenario("exchange_to_exchange_bind")
def exchange_to_exchange_bind(url):
    with World(url) as w:
        w.ch.confirm_delivery()
        src = w.exchange("ex-src", "topic")
        dst = w.exchange("ex-dst", "fanout")
        q = w.queue("q-e2e")
        w.ch.queue_bind(q, dst)
        w.ch.exchange_bind(dst, src, "a.*")
        w.ch.basic_publish(src, "a.b", b"1")
        w.ch.basic_publish(src, "x.b", b"2")
        eq(w.count(q), 1, "messages routed through e2e binding")
        w.ch.exchange_unbind(dst, src, "a.*")
        w.ch.basic_publish(src, "a.b", b"3")
        eq(w.count(q), 1, "messages after exchange.unbind")
        m, p, b = w.ch.basic_get(q, auto_ack=True)
        eq((m.exchange, m.routing_key, b), (src, "a.b", b"1"), "exchange/routing key/body")
