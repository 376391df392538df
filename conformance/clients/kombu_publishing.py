"""kombu scenarios: publisher confirms, purge, body sizes, many channels."""

import os
import sys

from kombu import Exchange, Producer, Queue

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kombu_common import World, collect, still_usable  # noqa: E402
from pyharness import check, eq, scenario  # noqa: E402


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
