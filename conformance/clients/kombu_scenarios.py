"""Conformance scenarios written with kombu (py-amqp transport), limited to what kombu's own API
(Connection, Exchange, Queue, Producer, Consumer, Message) expresses: no nack, no transactions,
no consumer-cancel callback, no basic.return handling.

    python kombu_scenarios.py URL SCENARIO|all|list
"""

import datetime
import decimal
import os
import re
import socket
import sys
import time

import amqp.exceptions as aex
from kombu import Connection, Consumer, Exchange, Producer, Queue

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pyharness import Fail, check, eq, main, scenario, unique, wait_until  # noqa: E402


class World:
    def __init__(self, url, **kw):
        self.url = url
        self.conns = []
        self.queues = []
        self.exchanges = []
        self.conn = self.connect(**kw)
        self.ch = self.conn.channel()

    def connect(self, **kw):
        kw.setdefault("transport_options", {"confirm_publish": True})
        c = Connection(self.url, connect_timeout=10, **kw)
        c.connect()
        self.conns.append(c)
        return c

    def queue(self, tag, exchange=None, routing_key=None, ch=None, **kw):
        q = Queue(unique(tag), exchange=exchange, routing_key=routing_key, **kw)
        q = q(ch or self.ch)
        q.declare()
        self.queues.append(q.name)
        return q

    def exchange(self, tag, type_, ch=None, **kw):
        e = Exchange(unique(tag), type=type_, **kw)(ch or self.ch)
        e.declare()
        self.exchanges.append(e.name)
        return e

    def producer(self, exchange=None):
        return Producer(self.ch, exchange=exchange or Exchange(""), serializer=None)

    def count(self, q):
        return Queue(q.name if hasattr(q, "name") else q)(self.ch).queue_declare(passive=True).message_count

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for c in self.conns:
            try:
                c.release()
            except Exception:
                pass
        if self.queues or self.exchanges:
            try:
                with Connection(self.url) as c:
                    for q in self.queues:
                        try:
                            c.channel().queue_delete(q)
                        except Exception:
                            pass
                    for e in self.exchanges:
                        try:
                            c.channel().exchange_delete(e)
                        except Exception:
                            pass
            except Exception:
                pass
        return False


def pump(conn, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            conn.drain_events(timeout=0.05)
        except socket.timeout:
            pass


def collect(w, queues, n, timeout=5.0, no_ack=True, settle=0.0, ch=None, prefetch=None):
    got = []
    c = Consumer(ch or w.ch, queues=queues, callbacks=[lambda body, msg: got.append(msg)],
                 no_ack=no_ack, accept=None, prefetch_count=prefetch)
    c.consume()
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        pump(w.conn, 0.05)
    if settle:
        pump(w.conn, settle)
    return got, c


def expect_channel_error(fn, code, text_re):
    try:
        fn()
    except aex.ChannelError as e:
        eq(e.reply_code, code, "reply code")
        check(re.fullmatch(text_re, e.reply_text or ""),
              f"reply text {e.reply_text!r} does not match {text_re!r}")
        return f"{e.reply_code} {e.reply_text}"
    raise Fail(f"no channel.close {code} (call succeeded)")


def still_usable(w):
    ch = w.conn.channel()
    Queue("", exclusive=True)(ch).declare()
    ch.close()


def missing(w, name):
    ch = w.conn.channel()
    try:
        Queue(name)(ch).queue_declare(passive=True)
        ch.close()
        return False
    except aex.NotFound:
        return True


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


from routing_tables import (  # noqa: E402
    HEADER_BINDINGS, HEADER_MESSAGES, TOPIC_EXPECTED, TOPIC_KEYS, TOPIC_PATTERNS)


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


@scenario("publisher_confirms")
def publisher_confirms(url):
    with World(url) as w:
        q = w.queue("q-confirm")
        p = w.producer()
        for i in range(50):
            p.publish(f"m{i}".encode(), routing_key=q.name)  # confirm_publish: waits for the ack
        Producer(w.ch, exchange=Exchange("amq.direct"), serializer=None).publish(b"x", routing_key="nobody-" + q.name)
        eq(w.count(q), 50, "messages in queue after confirmed publishes")


@scenario("purge")
def purge(url):
    with World(url) as w:
        q = w.queue("q-purge")
        for i in range(5):
            w.producer().publish(b"x", routing_key=q.name)
        eq(q.purge(), 5, "purge-ok message_count")
        eq(w.count(q), 0, "messages after purge")
        eq(q.purge(), 0, "second purge-ok message_count")


def _body_size(url, size_fn):
    with World(url) as w:
        q = w.queue("q-size")
        fm = w.conn.connection.frame_max
        size = size_fn(fm)
        body = os.urandom(size)
        w.producer().publish(body, routing_key=q.name, content_type="application/octet-stream",
                             content_encoding="binary")
        got, c = collect(w, [q], 1, timeout=15)
        c.cancel()
        eq(len(got), 1, "deliveries")
        if got[0].body == "" and size == 0:
            got[0].body = b""  # py-amqp hands an empty body over as str
        eq(len(got[0].body), size, "body length")
        check(got[0].body == body, f"body bytes differ: {got[0].body[:20]!r} vs {body[:20]!r}")
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
        eq(len({c.channel_id for c in chans}), 50, "distinct channel numbers")
        for i, c in enumerate(chans):
            q = Queue("", exclusive=True)(c)
            q.declare()
            Producer(c, serializer=None).publish(f"c{i}".encode(), routing_key=q.name)
            m = q.get(no_ack=True)
            eq(m and m.body, f"c{i}".encode(), f"body on channel {c.channel_id}")
        for c in chans:
            c.close()
        still_usable(w)


@scenario("error_404_passive_missing_queue")
def error_404(url):
    with World(url) as w:
        name = unique("q-missing")
        d = expect_channel_error(lambda: Queue(name)(w.conn.channel()).queue_declare(passive=True), 404,
                                 rf"NOT_FOUND - no queue '{re.escape(name)}' in vhost '/'")
        still_usable(w)
        return d


@scenario("error_406_queue_redeclare")
def error_406_queue(url):
    with World(url) as w:
        q = w.queue("q-redecl", durable=False)  # kombu's Queue is durable unless told
        d = expect_channel_error(
            lambda: Queue(q.name, durable=True)(w.conn.channel()).declare(), 406,
            rf"PRECONDITION_FAILED - inequivalent arg 'durable' for queue '{re.escape(q.name)}' "
            r"in vhost '/': received 'true' but current is 'false'")
        still_usable(w)
        return d


@scenario("error_406_exchange_redeclare")
def error_406_exchange(url):
    with World(url) as w:
        e = w.exchange("ex-redecl", "direct")
        d = expect_channel_error(
            lambda: Exchange(e.name, "fanout")(w.conn.channel()).declare(), 406,
            rf"PRECONDITION_FAILED - inequivalent arg 'type' for exchange '{re.escape(e.name)}' "
            r"in vhost '/': received 'fanout' but current is 'direct'")
        still_usable(w)
        return d


@scenario("error_405_exclusive_other_connection")
def error_405(url):
    with World(url) as w:
        name = unique("q-locked")
        Queue(name, exclusive=True)(w.ch).declare()
        c2 = w.connect()
        text = (rf"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue "
                rf"'{re.escape(name)}' in vhost '/'. It could be originally declared on another "
                r"connection or the exclusive property value does not match that of the original "
                r"declaration.")
        d = expect_channel_error(
            lambda: Consumer(c2.channel(), queues=[Queue(name, exclusive=True, no_declare=True)],
                             accept=None).consume(), 405, text)
        expect_channel_error(lambda: Queue(name)(c2.channel()).queue_declare(passive=True), 405, text)
        return d


# error_403_amq_prefix: kombu never sends exchange.declare for names starting with "amq."


@scenario("celery_task_roundtrip")
def celery_task_roundtrip(url):
    """A Celery worker (a subprocess, kombu/py-amqp underneath) consumes a task sent with
    apply_async and the caller gets its result through the rpc:// backend."""
    import signal
    import subprocess

    here = os.path.dirname(os.path.abspath(__file__))
    queue, exchange = unique("q-celery"), unique("ex-celery")
    env = dict(os.environ, CONF_BROKER_URL=url, CONF_QUEUE=queue, CONF_EXCHANGE=exchange,
               PYTHONPATH=here)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool=solo",
         "--concurrency=1", "--without-gossip", "--without-mingle", "--without-heartbeat",
         "--loglevel=WARNING", "-Q", queue, "-n", f"{queue}@localhost"],
        env=env, cwd=here, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        os.environ.update(CONF_BROKER_URL=url, CONF_QUEUE=queue, CONF_EXCHANGE=exchange)
        sys.path.insert(0, here)
        from celery_app import add  # noqa: E402
        res = add.apply_async((2, 3))
        try:
            out = res.get(timeout=14)
        except Exception as e:  # noqa: BLE001
            worker.send_signal(signal.SIGTERM)
            log = worker.communicate(timeout=5)[0].decode(errors="replace").strip().splitlines()
            raise Fail(f"no result: {e!r}; worker log: {' | '.join(log[-5:])}")
        eq(out["sum"], 5, "task result")
        eq(out["pid"], worker.pid, "task ran in the worker subprocess")
        eq(res.state, "SUCCESS", "task state")
        add.app.close()
        return f"result {out['sum']} from worker pid {out['pid']}"
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(5)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        try:
            with Connection(url, connect_timeout=10) as c:
                ch = c.channel()
                Queue(queue, channel=ch).delete()
                Exchange(exchange, channel=ch).delete()
        except Exception:  # noqa: BLE001
            pass


if __name__ == "__main__":
    main()
