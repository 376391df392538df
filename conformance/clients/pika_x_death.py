"""pika scenarios (issue 12): how RabbitMQ 3.10 rewrites an x-death array that has several
entries: `group_by_queue_and_reason` keeps the first entry of each (queue, reason), gives it a
count when it has none, and returns the groups in reverse order before the new death is put
first. Visible on a third death in a third queue, and on messages carrying x-death entries
written by RabbitMQ versions before 3.5 (one entry per death)."""

import os
import sys

import pika

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from amqp_tables import untag  # noqa: E402
from pika_common import World, raw_headers, wait_count  # noqa: E402
from pyharness import eq, scenario  # noqa: E402


def _deaths(props):
    tag, entries = raw_headers(props)["x-death"]
    eq(tag, "A", "x-death type")
    out = []
    for _, e in entries:
        d = untag(("F", e))
        out.append((d.get("queue"), d.get("reason"), d.get("count")))
    return out


def _reject_one(w, queue):
    m, _, _ = w.ch.basic_get(queue, auto_ack=False)
    w.ch.basic_reject(m.delivery_tag, requeue=False)


def _chain(w, tags):
    """Queues named after `tags`, each dead-lettering into the next through the default
    exchange."""
    names = [w.queue_name(t) for t in tags]
    for i, name in enumerate(names):
        args = {}
        if i + 1 < len(names):
            args = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": names[i + 1]}
        w.ch.queue_declare(name, arguments=args)
    return names


@scenario("x_death_third_death_order")
def third_death_order(url):
    with World(url) as w:
        a, b, c, d = _chain(w, ["xd-a", "xd-b", "xd-c", "xd-d"])
        w.ch.basic_publish("", a, b"m")
        for src, dst in [(a, b), (b, c), (c, d)]:
            wait_count(w, src, 1)
            _reject_one(w, src)
            wait_count(w, dst, 1)
        _, props, _ = w.ch.basic_get(d, auto_ack=True)
        # Newest first, then the two older deaths in the reverse of their order.
        eq(_deaths(props), [(c, "rejected", 1), (a, "rejected", 1), (b, "rejected", 1)],
           "x-death after three deaths")


@scenario("x_death_old_entries_are_merged")
def old_entries_merged(url):
    with World(url) as w:
        a, b = _chain(w, ["xd-old-a", "xd-old-b"])
        old = [
            {"queue": "old", "reason": "expired", "count": 1},
            {"queue": "old", "reason": "expired"},
            {"queue": "other", "reason": "rejected"},
            {"queue": "other", "reason": "rejected"},
            {"queue": "third", "reason": "maxlen", "count": 5},
        ]
        w.ch.basic_publish("", a, b"m", pika.BasicProperties(headers={"x-death": old}))
        wait_count(w, a, 1)
        _reject_one(w, a)
        wait_count(w, b, 1)
        _, props, _ = w.ch.basic_get(b, auto_ack=True)
        eq(_deaths(props), [(a, "rejected", 1), ("third", "maxlen", 5), ("other", "rejected", 2),
                            ("old", "expired", 1)], "x-death merged")
        h = raw_headers(props)
        eq(sorted(k for k in h if k.startswith("x-first-death")), [],
           "no x-first-death headers when x-death was present")


@scenario("x_death_not_an_array_is_reset")
def not_an_array(url):
    with World(url) as w:
        a, b = _chain(w, ["xd-str-a", "xd-str-b"])
        w.ch.basic_publish("", a, b"m", pika.BasicProperties(headers={"x-death": "garbage"}))
        wait_count(w, a, 1)
        _reject_one(w, a)
        wait_count(w, b, 1)
        _, props, _ = w.ch.basic_get(b, auto_ack=True)
        eq(_deaths(props), [(a, "rejected", 1)], "x-death reset")
        h = raw_headers(props)
        eq(sorted(k for k in h if k.startswith("x-first-death")), [],
           "no x-first-death headers for a replaced x-death")
