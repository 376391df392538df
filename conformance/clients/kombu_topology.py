"""kombu scenarios: connection, exchanges, queues and bindings."""

import os
import re
import sys
import time

from kombu import Exchange, Queue

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kombu_common import (  # noqa: E402
    World, collect, expect_channel_error, missing, pump, still_usable)
from pyharness import check, eq, scenario, unique, wait_until  # noqa: E402


@scenario("connect_heartbeat")
def connect_heartbeat(url):
    with World(url, heartbeat=2) as w:
        raw = w.conn.connection
        eq(raw.server_heartbeat, 60, "server's proposed heartbeat (connection.tune)")
        eq(raw.heartbeat, 2, "negotiated heartbeat")
        eq(raw.frame_max, 131072, "negotiated frame_max")
        eq(raw.channel_max, 2047, "negotiated channel_max")
        caps = raw.server_capabilities
        for cap in ["publisher_confirms", "exchange_exchange_bindings", "basic.nack",
                    "consumer_cancel_notify", "connection.blocked", "authentication_failure_close"]:
            check(caps.get(cap) is True, f"server capability {cap} = {caps.get(cap)!r}")
        end = time.monotonic() + 6
        while time.monotonic() < end:
            w.conn.heartbeat_check()  # raises when the server's heartbeats stopped
            pump(w.conn, 0.25)
        still_usable(w)
        return f"server heartbeat {raw.server_heartbeat}"


@scenario("exchange_declare_types")
def exchange_declare_types(url):
    with World(url) as w:
        for t in ["direct", "fanout", "topic", "headers"]:
            e = w.exchange("ex-" + t, t)
            e.declare()
            e.declare(passive=True)
            e.delete()
            ch = w.conn.channel()
            expect_channel_error(lambda: Exchange(e.name, t)(ch).declare(passive=True), 404,
                                 rf"NOT_FOUND - no exchange '{re.escape(e.name)}' in vhost '/'")


@scenario("queue_declare_named")
def queue_declare_named(url):
    with World(url) as w:
        q = Queue(unique("q-named"))(w.ch)
        ok = q.queue_declare()
        w.queues.append(q.name)
        eq((ok.queue, ok.message_count, ok.consumer_count), (q.name, 0, 0), "declare-ok")
        w.producer().publish(b"x", routing_key=q.name)
        eq(q.queue_declare().message_count, 1, "redeclare message_count")
        eq(q.queue_declare(passive=True).message_count, 1, "passive message_count")
        eq(q.delete(), 1, "delete-ok message_count")


@scenario("queue_declare_server_named")
def queue_declare_server_named(url):
    with World(url) as w:
        ok = w.ch.queue_declare("", exclusive=True)
        check(ok.queue.startswith("amq.gen-"), f"server-named queue {ok.queue!r}")
        w.producer().publish(b"hello", routing_key=ok.queue)
        m = Queue(ok.queue)(w.ch).get(no_ack=True)
        eq(m.body, b"hello", "body via server-named queue")
        return ok.queue


@scenario("queue_declare_exclusive")
def queue_declare_exclusive(url):
    with World(url) as w:
        c2 = w.connect()
        name = unique("q-excl")
        Queue(name, exclusive=True)(c2.channel()).declare()
        c2.release()
        check(wait_until(lambda: missing(w, name), 5),
              "exclusive queue still exists after its connection closed")


@scenario("queue_declare_auto_delete")
def queue_declare_auto_delete(url):
    with World(url) as w:
        q = w.queue("q-autodel", auto_delete=True)
        q.queue_declare(passive=True)
        got, c = collect(w, [q], 0, timeout=0)
        c.cancel()
        check(wait_until(lambda: missing(w, q.name), 5),
              "auto-delete queue still exists after its last consumer left")


@scenario("queue_declare_durable")
def queue_declare_durable(url):
    with World(url) as w:
        q = w.queue("q-durable", durable=True)
        q.queue_declare(passive=True)
        w.producer().publish(b"p", routing_key=q.name, delivery_mode=2)
        eq(w.count(q), 1, "message_count")
        eq(q.delete(), 1, "delete-ok message_count")


@scenario("bind_unbind")
def bind_unbind(url):
    with World(url) as w:
        ex = w.exchange("ex-bind", "direct")
        q = w.queue("q-bind")
        q.bind_to(ex, "k1")
        q.bind_to(ex, "k1")
        q.bind_to(ex, "k2")
        p = w.producer(ex)
        for k in ["k1", "k2", "k3"]:
            p.publish(k.encode(), routing_key=k)
        eq(w.count(q), 2, "messages routed with bindings k1,k2")
        q.unbind_from(ex, "k1")
        for k in ["k1", "k2"]:
            p.publish(k.encode(), routing_key=k)
        eq(w.count(q), 3, "messages after unbind of k1")
        bodies = [q.get(no_ack=True).body for _ in range(3)]
        eq(bodies, [b"k1", b"k2", b"k2"], "bodies")


@scenario("exchange_to_exchange_bind")
def exchange_to_exchange_bind(url):
    with World(url) as w:
        src = w.exchange("ex-src", "topic")
        dst = w.exchange("ex-dst", "fanout")
        q = w.queue("q-e2e")
        q.bind_to(dst)
        dst.bind_to(src, "a.*")
        p = w.producer(src)
        p.publish(b"1", routing_key="a.b")
        p.publish(b"2", routing_key="x.b")
        eq(w.count(q), 1, "messages routed through e2e binding")
        dst.unbind_from(src, "a.*")
        p.publish(b"3", routing_key="a.b")
        eq(w.count(q), 1, "messages after exchange.unbind")
        m = q.get(no_ack=True)
        eq((m.delivery_info["exchange"], m.delivery_info["routing_key"], m.body), (src.name, "a.b", b"1"),
           "exchange/routing key/body")
