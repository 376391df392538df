"""pika scenarios: publish and consume, basic.get, acknowledgements, prefetch,
round-robin, routing.
"""

import datetime
import decimal
import os
import sys

import pika

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pika_common import World, collect, pump  # noqa: E402
from pyharness import check, eq, scenario, wait_until  # noqa: E402
from routing_tables import (  # noqa: E402
    HEADER_BINDINGS, HEADER_MESSAGES, TOPIC_EXPECTED, TOPIC_KEYS, TOPIC_PATTERNS)

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
