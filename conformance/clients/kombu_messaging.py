"""kombu scenarios: publish and consume, basic.get, acknowledgements, prefetch,
round-robin, routing.
"""

import datetime
import decimal
import os
import sys

from kombu import Consumer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kombu_common import World, collect, pump  # noqa: E402
from pyharness import check, eq, scenario, wait_until  # noqa: E402
from routing_tables import (  # noqa: E402
    HEADER_BINDINGS, HEADER_MESSAGES, TOPIC_EXPECTED, TOPIC_KEYS, TOPIC_PATTERNS)


HEADERS = {
    "str": "value",
    "empty": "",
    "unicode": "h\u00e9llo \u2603",
    "int": 42,
    "neg": -7,
    "big": 2 ** 40,
    "bool_t": True,
    "bool_f": False,
    "float": 1.5,
    "decimal": decimal.Decimal("3.14"),
    "ts": datetime.datetime(2020, 1, 2, 3, 4, 5),
    "table": {"nested": "yes", "n": 1},
    "array": [1, "two", True, {"x": "y"}],
    "void": None,
}


@scenario("publish_consume_properties")
def publish_consume_properties(url):
    with World(url) as w:
        q = w.queue("q-props")
        body = b'{"hello": "world"}'
        props = dict(content_type="application/json", content_encoding="utf-8", headers=HEADERS,
                     delivery_mode=2, priority=5, correlation_id="corr-1", reply_to="reply.q",
                     expiration=60, message_id="msg-1", timestamp=1700000000, type="t.kind",
                     user_id="guest", app_id="conformance")
        w.producer().publish(body, routing_key=q.name, **props)
        got, c = collect(w, [q], 1)
        c.cancel()
        eq(len(got), 1, "deliveries")
        m = got[0]
        eq(m.body, body.decode(), "body (py-amqp decodes content_encoding utf-8)")
        eq((m.delivery_info["exchange"], m.delivery_info["routing_key"], m.delivery_info["redelivered"]),
           ("", q.name, False), "deliver fields")
        p = m.properties
        want = dict(props, expiration="60000")  # kombu sends seconds as milliseconds
        del want["headers"], want["content_type"], want["content_encoding"]
        for k, v in want.items():
            eq(p.get(k), v, f"property {k}")
        eq((m.content_type, m.content_encoding), ("application/json", "utf-8"), "content type/encoding")
        eq(set(m.headers), set(HEADERS), "header names")
        for k, v in HEADERS.items():
            eq(m.headers[k], v, f"header {k}")


@scenario("basic_get")
def basic_get(url):
    with World(url) as w:
        q = w.queue("q-get")
        for i in range(3):
            w.producer().publish(f"m{i}".encode(), routing_key=q.name)
        eq(w.count(q), 3, "message_count")
        for i in range(3):
            m = q.get(no_ack=True)
            check(m is not None, f"get {i} returned get-empty")
            eq(m.body, f"m{i}".encode(), f"body {i}")
            eq(m.delivery_info["message_count"], 2 - i, f"get-ok message_count {i}")
            eq(m.delivery_info["redelivered"], False, "redelivered")
        eq(q.get(no_ack=True), None, "basic.get on an empty queue (get-empty)")


def _get_n(q, n):
    out = []
    for _ in range(n):
        m = q.get(no_ack=False)
        check(m is not None, "unexpected get-empty")
        out.append(m)
    return out


@scenario("ack")
def ack(url):
    with World(url) as w:
        q = w.queue("q-ack")
        for i in range(2):
            w.producer().publish(f"m{i}".encode(), routing_key=q.name)
        ch = w.conn.channel()
        m0, m1 = _get_n(q(ch), 2)
        eq((m0.delivery_tag, m1.delivery_tag), (1, 2), "delivery tags")
        m0.ack()
        ch.close()
        m = q.get(no_ack=True)
        eq((m.body, m.delivery_info["redelivered"]), (b"m1", True), "unacked message requeued on channel close")
        eq(q.get(no_ack=True), None, "acked message must not come back")


@scenario("ack_multiple")
def ack_multiple(url):
    with World(url) as w:
        q = w.queue("q-ackm")
        for i in range(5):
            w.producer().publish(f"m{i}".encode(), routing_key=q.name)
        ch = w.conn.channel()
        got = _get_n(q(ch), 5)
        eq([m.delivery_tag for m in got], [1, 2, 3, 4, 5], "delivery tags")
        got[2].ack(multiple=True)
        ch.close()
        back = []
        while True:
            m = q.get(no_ack=True)
            if m is None:
                break
            back.append((m.body, m.delivery_info["redelivered"]))
        eq(back, [(b"m3", True), (b"m4", True)], "requeued after ack(3, multiple)")


def _reject(url, requeue):
    with World(url) as w:
        q = w.queue("q-reject")
        for i in range(3):
            w.producer().publish(f"m{i}".encode(), routing_key=q.name)
        ch = w.conn.channel()
        qc = q(ch)
        got = _get_n(qc, 3)
        if requeue:
            got[0].requeue()
            got[1].requeue()
        else:
            got[0].reject()
            got[1].reject()
        got[2].ack()
        if requeue:
            m = qc.get(no_ack=True)
            eq((m.body, m.delivery_info["redelivered"]), (b"m0", True), "first requeued message")
            m = qc.get(no_ack=True)
            eq((m.body, m.delivery_info["redelivered"]), (b"m1", True), "second requeued message")
        eq(qc.get(no_ack=True), None, "queue empty at the end")
        ch.close()
        eq(w.count(q), 0, "nothing left after channel close")


@scenario("reject_requeue")
def reject_requeue(url):
    _reject(url, True)


@scenario("reject_discard")
def reject_discard(url):
    _reject(url, False)


@scenario("prefetch")
def prefetch(url):
    with World(url) as w:
        q = w.queue("q-prefetch")
        for i in range(10):
            w.producer().publish(f"m{i}".encode(), routing_key=q.name)
        ch = w.conn.channel()
        got, c = collect(w, [q], 3, no_ack=False, settle=0.5, ch=ch, prefetch=3)
        eq(len(got), 3, "unacked deliveries with prefetch 3")
        got[0].ack()
        pump(w.conn, 0.5)
        eq(len(got), 4, "deliveries after one ack")
        got[-1].ack(multiple=True)
        pump(w.conn, 0.5)
        eq(len(got), 7, "deliveries after ack multiple")
        got[-1].ack(multiple=True)
        pump(w.conn, 0.5)
        eq(len(got), 10, "all deliveries")
        eq([m.body for m in got], [f"m{i}".encode() for i in range(10)], "order")


@scenario("round_robin")
def round_robin(url):
    with World(url) as w:
        q = w.queue("q-rr")
        order = []
        for tag in ["c1", "c2"]:
            Consumer(w.conn.channel(), queues=[q], no_ack=True, accept=None,
                     callbacks=[lambda body, msg, tag=tag: order.append((tag, msg.body))]).consume()
        p = w.producer()
        for i in range(10):
            p.publish(f"m{i}".encode(), routing_key=q.name)
        wait_until(lambda: (pump(w.conn, 0.05), len(order) >= 10)[1], 5)
        c1 = [b for c, b in order if c == "c1"]
        c2 = [b for c, b in order if c == "c2"]
        eq((len(c1), len(c2)), (5, 5), "deliveries per consumer")
        evens = [f"m{i}".encode() for i in range(0, 10, 2)]
        odds = [f"m{i}".encode() for i in range(1, 10, 2)]
        check(sorted([c1, c2]) == sorted([evens, odds]), f"not alternating: c1={c1} c2={c2}")


@scenario("fanout_many")
def fanout_many(url):
    with World(url) as w:
        ex = w.exchange("ex-fan", "fanout")
        qs = [w.queue(f"q-fan{i}", exchange=ex, routing_key="ignored") for i in range(20)]
        p = w.producer(ex)
        for i in range(3):
            p.publish(f"m{i}".encode(), routing_key=f"any{i}")
        for q in qs:
            got = [q.get(no_ack=True) for _ in range(3)]
            eq([m.body for m in got if m], [b"m0", b"m1", b"m2"], f"queue {q.name}")




@scenario("topic_routing")
def topic_routing(url):
    with World(url) as w:
        ex = w.exchange("ex-topic", "topic")
        qs = {pat: w.queue("q-topic", exchange=ex, routing_key=pat) for pat in TOPIC_PATTERNS}
        p = w.producer(ex)
        for key in TOPIC_KEYS:
            p.publish(key.encode(), routing_key=key)
        errors = []
        for pat in TOPIC_PATTERNS:
            got = []
            while True:
                m = qs[pat].get(no_ack=True)
                if m is None:
                    break
                got.append(m.body.decode() if isinstance(m.body, bytes) else m.body)
            want = [k for k in TOPIC_KEYS if pat in TOPIC_EXPECTED[k]]
            if got != want:
                errors.append(f"pattern {pat!r}: got {got}, want {want}")
        check(not errors, "; ".join(errors))


@scenario("headers_routing")
def headers_routing(url):
    with World(url) as w:
        ex = w.exchange("ex-headers", "headers")
        qs = {name: w.queue("q-hdr-" + name, exchange=ex, binding_arguments=args)
              for name, args in HEADER_BINDINGS.items()}
        p = w.producer(ex)
        for tag, headers, _ in HEADER_MESSAGES:
            p.publish(tag.encode(), routing_key="rk", headers=headers)
        errors = []
        for name in HEADER_BINDINGS:
            got = []
            while True:
                m = qs[name].get(no_ack=True)
                if m is None:
                    break
                got.append(m.body.decode() if isinstance(m.body, bytes) else m.body)
            want = [t for t, _, routes in HEADER_MESSAGES if name in routes]
            if got != want:
                errors.append(f"binding {name}: got {got}, want {want}")
        check(not errors, "; ".join(errors))
