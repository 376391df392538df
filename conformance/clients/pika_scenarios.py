"""Conformance scenarios written with pika (BlockingConnection).

    python pika_scenarios.py URL SCENARIO|all|list
"""

import datetime
import decimal
import os
import re
import sys

import pika
import pika.exceptions as pex

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pika_common import World, collect, expect_channel_error, pump  # noqa: E402
from pyharness import Fail, check, eq, main, scenario, unique, wait_until  # noqa: E402
from routing_tables import (  # noqa: E402
    HEADER_BINDINGS, HEADER_MESSAGES, TOPIC_EXPECTED, TOPIC_KEYS, TOPIC_PATTERNS)

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


# ---------------------------------------------------------------- publish / consume


HEADERS = {
    "str": "value",
    "empty": "",
    "unicode": "h\u00e9llo \u2603",
    "int": 42,
    "neg": -7,
    "big": 2 ** 40,
    "bool_t": True,
    "bool_f": False,
    "decimal": decimal.Decimal("3.14"),
    "ts": datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
    "table": {"nested": "yes", "n": 1},
    "array": [1, "two", True, {"x": "y"}],
    "void": None,
    "bytes": b"\x00\x01\xff",
}


@scenario("publish_consume_properties")
def publish_consume_properties(url):
    with World(url) as w:
        q = w.queue("q-props")
        props = pika.BasicProperties(
            content_type="application/json", content_encoding="utf-8", headers=HEADERS,
            delivery_mode=2, priority=5, correlation_id="corr-1", reply_to="reply.q",
            expiration="60000", message_id="msg-1", timestamp=1700000000, type="t.kind",
            user_id="guest", app_id="conformance", cluster_id="c1")
        body = b'{"hello": "world"}'
        w.ch.basic_publish("", q, body, props)
        got, tag = collect(w.conn, w.ch, q, 1)
        eq(len(got), 1, "deliveries")
        m, p, b = got[0]
        eq(b, body, "body")
        eq((m.exchange, m.routing_key, m.redelivered), ("", q, False), "deliver fields")
        for f in ["content_type", "content_encoding", "delivery_mode", "priority", "correlation_id",
                  "reply_to", "expiration", "message_id", "timestamp", "type", "user_id", "app_id",
                  "cluster_id"]:
            eq(getattr(p, f), getattr(props, f), f"property {f}")
        eq(set(p.headers), set(HEADERS), "header names")
        for k, v in HEADERS.items():
            eq(p.headers[k], v, f"header {k}")
        # a message without any property
        w.ch.basic_publish("", q, b"bare")
        got, tag = collect(w.conn, w.ch, q, 1)
        p = got[0][1]
        for f in ["content_type", "headers", "delivery_mode", "priority", "timestamp", "expiration"]:
            eq(getattr(p, f), None, f"bare message property {f}")


@scenario("basic_get")
def basic_get(url):
    with World(url) as w:
        q = w.queue("q-get")
        w.ch.confirm_delivery()
        for i in range(3):
            w.ch.basic_publish("", q, f"m{i}".encode())
        eq(w.count(q), 3, "message_count")
        for i in range(3):
            m, p, b = w.ch.basic_get(q, auto_ack=True)
            check(m is not None, f"get {i} returned get-empty")
            eq(b, f"m{i}".encode(), f"body {i}")
            eq(m.message_count, 2 - i, f"get-ok message_count {i}")
            eq((m.redelivered, m.exchange, m.routing_key), (False, "", q), f"get-ok fields {i}")
        m, p, b = w.ch.basic_get(q, auto_ack=True)
        eq(m, None, "basic.get on an empty queue (get-empty)")


def _get_n(ch, q, n):
    out = []
    for _ in range(n):
        m, p, b = ch.basic_get(q, auto_ack=False)
        check(m is not None, "unexpected get-empty")
        out.append((m, b))
    return out


@scenario("ack")
def ack(url):
    with World(url) as w:
        q = w.queue("q-ack")
        for i in range(2):
            w.ch.basic_publish("", q, f"m{i}".encode())
        (m0, _), (m1, _) = _get_n(w.ch, q, 2)
        eq((m0.delivery_tag, m1.delivery_tag), (1, 2), "delivery tags")
        w.ch.basic_ack(m0.delivery_tag)
        w.ch.close()
        ch = w.conn.channel()
        m, p, b = ch.basic_get(q, auto_ack=True)
        eq((b, m.redelivered), (b"m1", True), "unacked message requeued on channel close")
        eq(ch.basic_get(q)[0], None, "acked message must not come back")


@scenario("ack_multiple")
def ack_multiple(url):
    with World(url) as w:
        q = w.queue("q-ackm")
        for i in range(5):
            w.ch.basic_publish("", q, f"m{i}".encode())
        got = _get_n(w.ch, q, 5)
        eq([m.delivery_tag for m, _ in got], [1, 2, 3, 4, 5], "delivery tags")
        w.ch.basic_ack(3, multiple=True)
        w.ch.close()
        ch = w.conn.channel()
        back = []
        while True:
            m, p, b = ch.basic_get(q, auto_ack=True)
            if m is None:
                break
            back.append((b, m.redelivered))
        eq(back, [(b"m3", True), (b"m4", True)], "requeued after ack(3, multiple)")


def _nack_or_reject(url, kind, requeue):
    with World(url) as w:
        q = w.queue("q-" + kind)
        for i in range(3):
            w.ch.basic_publish("", q, f"m{i}".encode())
        got = _get_n(w.ch, q, 3)
        if kind == "nack":
            w.ch.basic_nack(2, multiple=True, requeue=requeue)  # m0, m1
        else:
            w.ch.basic_reject(1, requeue=requeue)  # m0
            w.ch.basic_reject(2, requeue=requeue)  # m1
        w.ch.basic_ack(3)
        if requeue:
            m, p, b = w.ch.basic_get(q, auto_ack=True)
            eq((b, m.redelivered), (b"m0", True), "first requeued message")
            m, p, b = w.ch.basic_get(q, auto_ack=True)
            eq((b, m.redelivered), (b"m1", True), "second requeued message")
        eq(w.ch.basic_get(q)[0], None, "queue empty at the end")
        w.ch.close()
        eq(w.count(q), 0, "nothing left after channel close")
        del got


@scenario("nack_requeue")
def nack_requeue(url):
    _nack_or_reject(url, "nack", True)


@scenario("nack_discard")
def nack_discard(url):
    _nack_or_reject(url, "nack", False)


@scenario("reject_requeue")
def reject_requeue(url):
    _nack_or_reject(url, "reject", True)


@scenario("reject_discard")
def reject_discard(url):
    _nack_or_reject(url, "reject", False)


@scenario("prefetch")
def prefetch(url):
    with World(url) as w:
        q = w.queue("q-prefetch")
        for i in range(10):
            w.ch.basic_publish("", q, f"m{i}".encode())
        w.ch.basic_qos(prefetch_count=3)
        got, tag = collect(w.conn, w.ch, q, 3, auto_ack=False, settle=0.5)
        eq(len(got), 3, "unacked deliveries with prefetch 3")
        w.ch.basic_ack(got[0][0].delivery_tag)
        pump(w.conn, 0.5)
        eq(len(got), 4, "deliveries after one ack")
        w.ch.basic_ack(got[-1][0].delivery_tag, multiple=True)
        pump(w.conn, 0.5)
        eq(len(got), 7, "deliveries after ack multiple")
        w.ch.basic_ack(got[-1][0].delivery_tag, multiple=True)
        pump(w.conn, 0.5)
        eq(len(got), 10, "all deliveries")
        eq([b for _, _, b in got], [f"m{i}".encode() for i in range(10)], "order")


@scenario("round_robin")
def round_robin(url):
    with World(url) as w:
        q = w.queue("q-rr")
        ch1, ch2 = w.conn.channel(), w.conn.channel()
        order = []
        ch1.basic_consume(q, lambda c, m, p, b: order.append(("c1", b)), auto_ack=True)
        ch2.basic_consume(q, lambda c, m, p, b: order.append(("c2", b)), auto_ack=True)
        for i in range(10):
            w.ch.basic_publish("", q, f"m{i}".encode())
        wait_until(lambda: (w.conn.process_data_events(0.05), len(order) >= 10)[1], 5)
        eq(len(order), 10, "deliveries")
        c1 = [b for c, b in order if c == "c1"]
        c2 = [b for c, b in order if c == "c2"]
        eq((len(c1), len(c2)), (5, 5), "deliveries per consumer")
        evens = [f"m{i}".encode() for i in range(0, 10, 2)]
        odds = [f"m{i}".encode() for i in range(1, 10, 2)]
        check(sorted([c1, c2]) == sorted([evens, odds]), f"not alternating: c1={c1} c2={c2}")


@scenario("fanout_many")
def fanout_many(url):
    with World(url) as w:
        w.ch.confirm_delivery()
        ex = w.exchange("ex-fan", "fanout")
        qs = [w.queue(f"q-fan{i}") for i in range(20)]
        for q in qs:
            w.ch.queue_bind(q, ex, "ignored")
        for i in range(3):
            w.ch.basic_publish(ex, f"any{i}", f"m{i}".encode())
        for q in qs:
            got = [w.ch.basic_get(q, auto_ack=True) for _ in range(3)]
            eq([b for _, _, b in got], [b"m0", b"m1", b"m2"], f"queue {q}")
            eq([m.routing_key for m, _, _ in got], ["any0", "any1", "any2"], "routing keys")


@scenario("topic_routing")
def topic_routing(url):
    with World(url) as w:
        w.ch.confirm_delivery()
        ex = w.exchange("ex-topic", "topic")
        qs = {}
        for pat in TOPIC_PATTERNS:
            qs[pat] = w.queue("q-topic")
            w.ch.queue_bind(qs[pat], ex, pat)
        for key in TOPIC_KEYS:
            w.ch.basic_publish(ex, key, key.encode())
        errors = []
        for pat in TOPIC_PATTERNS:
            got = []
            while True:
                m, p, b = w.ch.basic_get(qs[pat], auto_ack=True)
                if m is None:
                    break
                got.append(b.decode())
            want = [k for k in TOPIC_KEYS if pat in TOPIC_EXPECTED[k]]
            if got != want:
                errors.append(f"pattern {pat!r}: got {got}, want {want}")
        check(not errors, "; ".join(errors))


@scenario("headers_routing")
def headers_routing(url):
    with World(url) as w:
        w.ch.confirm_delivery()
        ex = w.exchange("ex-headers", "headers")
        qs = {}
        for name, args in HEADER_BINDINGS.items():
            qs[name] = w.queue("q-hdr-" + name)
            w.ch.queue_bind(qs[name], ex, "", arguments=args)
        for tag, headers, _ in HEADER_MESSAGES:
            w.ch.basic_publish(ex, "rk", tag.encode(), pika.BasicProperties(headers=headers))
        errors = []
        for name in HEADER_BINDINGS:
            got = []
            while True:
                m, p, b = w.ch.basic_get(qs[name], auto_ack=True)
                if m is None:
                    break
                got.append(b.decode())
            want = [t for t, _, routes in HEADER_MESSAGES if name in routes]
            if got != want:
                errors.append(f"binding {name}: got {got}, want {want}")
        check(not errors, "; ".join(errors))


@scenario("mandatory_return")
def mandatory_return(url):
    with World(url) as w:
        ex = w.exchange("ex-mand", "direct")
        returned = []
        w.ch.add_on_return_callback(lambda c, m, p, b: returned.append((m, p, b)))
        w.ch.basic_publish(ex, "nowhere", b"lost", pika.BasicProperties(message_id="m1"),
                           mandatory=True)
        w.ch.basic_publish(ex, "nowhere", b"dropped")  # not mandatory: silently dropped
        wait_until(lambda: (w.conn.process_data_events(0.05), returned)[1], 5)
        pump(w.conn, 0.3)
        eq(len(returned), 1, "basic.return count")
        m, p, b = returned[0]
        eq((m.reply_code, m.reply_text, m.exchange, m.routing_key), (312, "NO_ROUTE", ex, "nowhere"),
           "basic.return fields")
        eq((b, p.message_id), (b"lost", "m1"), "returned body/properties")
        # in confirm mode the return comes before the ack (pika raises UnroutableError)
        ch = w.conn.channel()
        ch.confirm_delivery()
        try:
            ch.basic_publish(ex, "nowhere", b"lost2", mandatory=True)
            raise Fail("confirm-mode mandatory publish was not returned")
        except pex.UnroutableError as e:
            eq(len(e.messages), 1, "returned messages")
            eq(e.messages[0].method.reply_code, 312, "reply code")


@scenario("publisher_confirms")
def publisher_confirms(url):
    with World(url) as w:
        q = w.queue("q-confirm")
        w.ch.confirm_delivery()
        for i in range(50):
            w.ch.basic_publish("", q, f"m{i}".encode())  # raises NackError on nack
        # unroutable but not mandatory: still acked
        w.ch.basic_publish("amq.direct", "nobody-" + q, b"x")
        eq(w.count(q), 50, "messages in queue after confirmed publishes")


@scenario("tx_commit")
def tx_commit(url):
    with World(url) as w:
        q = w.queue("q-tx")
        w.ch.tx_select()
        for i in range(3):
            w.ch.basic_publish("", q, f"m{i}".encode())
        eq(w.count(q), 0, "messages visible before commit")
        w.ch.tx_commit()
        eq(w.count(q), 3, "messages after commit")
        # acks are transactional too: a committed ack settles, a rolled back one does not
        m, p, b = w.ch.basic_get(q, auto_ack=False)
        w.ch.basic_ack(m.delivery_tag)
        w.ch.tx_commit()
        m, p, b = w.ch.basic_get(q, auto_ack=False)
        w.ch.basic_ack(m.delivery_tag)
        w.ch.tx_rollback()
        w.ch.close()
        eq(w.count(q), 2, "ready messages after committed ack + rolled back ack + channel close")
        ch = w.conn.channel()
        m, p, b = ch.basic_get(q, auto_ack=True)
        eq((b, m.redelivered), (b"m1", True), "message whose ack was rolled back")


@scenario("tx_rollback")
def tx_rollback(url):
    with World(url) as w:
        q = w.queue("q-txrb")
        w.ch.tx_select()
        for i in range(3):
            w.ch.basic_publish("", q, f"m{i}".encode())
        w.ch.tx_rollback()
        eq(w.count(q), 0, "messages after rollback")
        w.ch.basic_publish("", q, b"after")
        w.ch.tx_commit()
        eq(w.count(q), 1, "messages after publish+commit following rollback")
        m, p, b = w.ch.basic_get(q, auto_ack=True)
        eq(b, b"after", "body")


@scenario("purge")
def purge(url):
    with World(url) as w:
        q = w.queue("q-purge")
        w.ch.confirm_delivery()
        for i in range(5):
            w.ch.basic_publish("", q, b"x")
        ok = w.ch.queue_purge(q)
        eq(ok.method.message_count, 5, "purge-ok message_count")
        eq(w.count(q), 0, "messages after purge")
        ok = w.ch.queue_purge(q)
        eq(ok.method.message_count, 0, "second purge-ok message_count")


def _body_size(url, size_fn):
    with World(url) as w:
        q = w.queue("q-size")
        fm = w.conn._impl.params.frame_max
        size = size_fn(fm)
        body = os.urandom(size)
        w.ch.confirm_delivery()
        w.ch.basic_publish("", q, body, pika.BasicProperties(message_id="sz"))
        got, tag = collect(w.conn, w.ch, q, 1, timeout=15)
        eq(len(got), 1, "deliveries")
        b = got[0][2]
        eq(len(b), size, "body length")
        check(b == body, "body bytes differ")
        return f"{size} bytes (frame_max {fm})"


@scenario("body_0b")
def body_0b(url):
    return _body_size(url, lambda fm: 0)


@scenario("body_1b")
def body_1b(url):
    return _body_size(url, lambda fm: 1)


@scenario("body_frame_max_minus_1")
def body_frame_max_minus_1(url):
    return _body_size(url, lambda fm: fm - 1)


@scenario("body_10mib")
def body_10mib(url):
    return _body_size(url, lambda fm: 10 * 1024 * 1024)


@scenario("many_channels")
def many_channels(url):
    with World(url) as w:
        chans = [w.conn.channel() for _ in range(50)]
        nums = [c.channel_number for c in chans]
        eq(len(set(nums)), 50, "distinct channel numbers")
        for i, c in enumerate(chans):
            q = c.queue_declare("", exclusive=True).method.queue
            c.basic_publish("", q, f"c{i}".encode())
            m, p, b = c.basic_get(q, auto_ack=True)
            eq(b, f"c{i}".encode(), f"body on channel {c.channel_number}")
        for c in chans:
            c.close()
        check(w.conn.is_open, "connection closed")


# ---------------------------------------------------------------- errors


def _still_usable(w):
    ch = w.conn.channel()
    ch.queue_declare("", exclusive=True)
    ch.close()


@scenario("error_404_passive_missing_queue")
def error_404(url):
    with World(url) as w:
        name = unique("q-missing")
        d = expect_channel_error(lambda: w.ch.queue_declare(name, passive=True), 404,
                                 rf"NOT_FOUND - no queue '{re.escape(name)}' in vhost '/'")
        _still_usable(w)
        return d


@scenario("error_406_queue_redeclare")
def error_406_queue(url):
    with World(url) as w:
        name = w.queue("q-redecl")
        d = expect_channel_error(
            lambda: w.ch.queue_declare(name, durable=True), 406,
            rf"PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{re.escape(name)}' "
            r"in vhost '/': received 'true' but current is 'false'")
        _still_usable(w)
        return d


@scenario("error_406_exchange_redeclare")
def error_406_exchange(url):
    with World(url) as w:
        name = w.exchange("ex-redecl", "direct")
        d = expect_channel_error(
            lambda: w.ch.exchange_declare(name, "fanout"), 406,
            rf"PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{re.escape(name)}' "
            r"in vhost '/': received 'fanout' but current is 'direct'")
        _still_usable(w)
        return d


@scenario("error_405_exclusive_other_connection")
def error_405(url):
    with World(url) as w:
        name = unique("q-locked")
        w.ch.queue_declare(name, exclusive=True)
        c2 = w.connect()
        text = (rf"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue "
                rf"'{re.escape(name)}' in vhost '/'. It could be originally declared on another "
                r"connection or the exclusive property value does not match that of the original "
                r"declaration.")
        ch2 = c2.channel()
        d = expect_channel_error(lambda: ch2.basic_consume(name, lambda *a: None), 405, text)
        ch2 = c2.channel()
        expect_channel_error(lambda: ch2.queue_declare(name, passive=True), 405, text)
        ch2 = c2.channel()
        expect_channel_error(lambda: ch2.queue_declare(name, exclusive=True), 405, text)
        return d


@scenario("error_403_amq_prefix")
def error_403(url):
    with World(url) as w:
        name = "amq." + unique("x")
        d = expect_channel_error(
            lambda: w.ch.exchange_declare(name, "direct"), 403,
            rf"ACCESS_REFUSED - exchange name '{re.escape(name)}' contains reserved prefix 'amq\.\*'")
        _still_usable(w)
        return d


@scenario("error_406_unknown_delivery_tag")
def error_406_tag(url):
    with World(url) as w:
        w.ch.basic_ack(999)

        def sync():
            w.ch.queue_declare("", exclusive=True)
            w.conn.process_data_events(0.5)
            w.ch.queue_declare("", exclusive=True)

        d = expect_channel_error(sync, 406, r"PRECONDITION_FAILED - unknown delivery tag 999")
        _still_usable(w)
        return d


@scenario("consumer_cancel_on_delete")
def consumer_cancel_on_delete(url):
    with World(url) as w:
        q = unique("q-cancel")
        w.ch.queue_declare(q)
        cancelled = []
        w.ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
        tag = w.ch.basic_consume(q, lambda *a: None, auto_ack=True)
        other = w.conn.channel()
        other.queue_delete(q)
        wait_until(lambda: (w.conn.process_data_events(0.05), cancelled)[1], 5)
        eq(cancelled, [tag], "basic.cancel from the server")
        check(w.ch.is_open, "channel closed after consumer cancel")
        _still_usable(w)


# Issue 6 queue features, in their own modules (registered on import, listed after the above).
import pika_ttl_limits  # noqa: E402,F401
import pika_dead_letter  # noqa: E402,F401
import pika_consumers  # noqa: E402,F401

if __name__ == "__main__":
    main()
