"""pika scenarios (issue 6): dead-lettering and the x-death header.

Expected behaviour: conformance/reference/queue-features.md (RabbitMQ 3.10). Headers are read
with raw_headers() as (tag, value) pairs in wire order, since the type tags and the key order
of x-death are part of what RabbitMQ clients see.
"""

import os
import sys
import time

import pika

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from amqp_tables import untag  # noqa: E402
from pika_common import (  # noqa: E402
    World, drain, pump, raw_headers, wait_count)
from pyharness import check, eq, scenario, wait_until  # noqa: E402

FIRST_ENTRY_KEYS = ["count", "reason", "queue", "time", "exchange", "routing-keys"]
SORTED_ENTRY_KEYS = ["count", "exchange", "queue", "reason", "routing-keys", "time"]


def check_time(entry, what):
    """x-death time: a timestamp (T) in seconds, near now."""
    tag, value = entry["time"]
    eq(tag, "T", f"{what}: type of 'time'")
    check(abs(value - time.time()) < 300, f"{what}: 'time' {value} is not now in seconds")


def death(entry, what):
    """A tagged x-death entry -> plain dict without 'time' (checked for type and range)."""
    check_time(entry, what)
    d = untag(("F", entry))
    del d["time"]
    return d


def x_death(props, what):
    """(untagged entries, tagged entries, other headers untagged) of a dead-lettered message."""
    h = raw_headers(props)
    check(h is not None and "x-death" in h, f"{what}: no x-death header in {h!r}")
    tag, entries = h["x-death"]
    eq(tag, "A", f"{what}: type of x-death")
    check(all(t == "F" for t, _ in entries), f"{what}: x-death entries are not tables: {entries}")
    tagged = [e for _, e in entries]
    plain = [death(e, f"{what}, x-death[{i}]") for i, e in enumerate(tagged)]
    rest = {k: untag(v) for k, v in h.items() if k != "x-death"}
    return plain, tagged, rest


def first_death_headers(reason, queue, exchange):
    return {"x-first-death-reason": reason, "x-first-death-queue": queue,
            "x-first-death-exchange": exchange}


@scenario("dlx_reject_nack")
def dlx_reject_nack(url):
    with World(url) as w:
        w.ch.confirm_delivery()
        ex = w.exchange("ex-src", "direct")
        dlx = w.exchange("ex-dlx", "topic")
        src = w.queue("q-src", arguments={"x-dead-letter-exchange": dlx})
        dead = w.queue("q-dead")
        w.ch.queue_bind(src, ex, "rk")
        w.ch.queue_bind(dead, dlx, "#")
        props = pika.BasicProperties(message_id="id", delivery_mode=2, expiration="60000",
                                     headers={"CC": ["cc1"], "mine": "x"})
        for i in range(4):
            w.ch.basic_publish(ex, "rk", f"m{i}".encode(), props)
        tags = [w.ch.basic_get(src, auto_ack=False)[0].delivery_tag for _ in range(4)]
        w.ch.basic_reject(tags[0], requeue=False)
        w.ch.basic_nack(tags[2], multiple=True, requeue=False)  # m1, m2
        w.ch.basic_nack(tags[3], requeue=True)  # requeued: not dead-lettered
        eq(wait_count(w, dead, 3), 3, "dead-lettered messages")
        eq(w.count(src), 1, "messages left in the source queue")
        for i in range(3):
            m, p, b = w.ch.basic_get(dead, auto_ack=True)
            what = f"dead-lettered m{i}"
            eq((b, m.exchange, m.routing_key, m.redelivered), (f"m{i}".encode(), dlx, "rk", False),
               f"{what}: body, exchange, routing key, redelivered")
            eq((p.expiration, p.message_id, p.delivery_mode), (None, "id", 2),
               f"{what}: expiration (removed), message_id, delivery_mode")
            entries, _, rest = x_death(p, what)
            eq(entries, [{"count": 1, "reason": "rejected", "queue": src, "exchange": ex,
                          "routing-keys": ["rk", "cc1"], "original-expiration": "60000"}],
               f"{what}: x-death")
            eq(rest, {"CC": ["cc1"], "mine": "x", **first_death_headers("rejected", src, ex)},
               f"{what}: other headers")
        # a channel closing with unacked messages requeues them: no dead-lettering
        ch = w.conn.channel()
        ch.basic_get(src, auto_ack=False)
        ch.close()
        eq((w.count(src), w.count(dead)), (1, 0), "counts (source, dead) after channel close")


@scenario("dlx_routing_keys")
def dlx_routing_keys(url):
    with World(url) as w:
        w.ch.confirm_delivery()
        ex = w.exchange("ex-src", "direct")
        dlx = w.exchange("ex-dlx", "direct")
        by_key = w.queue("q-src-keys", arguments={"x-dead-letter-exchange": dlx})
        override = w.queue("q-src-override", arguments={
            "x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dl"})
        dead_rk, dead_cc, dead_dl = w.queue("q-dead-rk"), w.queue("q-dead-cc"), w.queue("q-dead-dl")
        for q in (by_key, override):
            w.ch.queue_bind(q, ex, "rk")
        w.ch.queue_bind(dead_rk, dlx, "rk")
        w.ch.queue_bind(dead_cc, dlx, "cc1")
        w.ch.queue_bind(dead_dl, dlx, "dl")
        w.ch.basic_publish(ex, "rk", b"m", pika.BasicProperties(headers={"CC": ["cc1"]}))
        for q in (by_key, override):
            m, p, b = w.ch.basic_get(q, auto_ack=False)
            w.ch.basic_reject(m.delivery_tag, requeue=False)
        # without a dead-letter routing key: routed with the publish key and the CC keys
        eq(wait_count(w, dead_cc, 1), 1, "copy routed to the DLX by the CC key")
        eq(wait_count(w, dead_rk, 1), 1, "copy routed to the DLX by the original key")
        eq(wait_count(w, dead_dl, 1), 1, "copies routed by the dead-letter routing key")
        for q, key, cc in [(dead_cc, "rk", True), (dead_dl, "dl", False)]:
            m, p, b = w.ch.basic_get(q, auto_ack=True)
            src = by_key if cc else override
            eq((m.exchange, m.routing_key), (dlx, key), f"delivery from {q}: exchange, routing key")
            entries, _, rest = x_death(p, f"dead-lettered from {src}")
            eq(entries[0]["routing-keys"], ["rk", "cc1"], "x-death routing-keys")
            # with x-dead-letter-routing-key the CC header is removed
            eq(rest.get("CC"), ["cc1"] if cc else None, "CC header after dead-lettering")


@scenario("dlx_expired")
def dlx_expired(url):
    with World(url) as w:
        w.ch.confirm_delivery()
        dead = w.queue("q-dead")
        q = w.queue("q-ttl", arguments={"x-message-ttl": 200, "x-dead-letter-exchange": "",
                                        "x-dead-letter-routing-key": dead})
        w.ch.basic_publish("", q, b"queue-ttl")
        eq(wait_count(w, dead, 1), 1, "dead-lettered after the queue TTL")
        w.ch.basic_publish("", q, b"message-ttl", pika.BasicProperties(expiration="100"))
        eq(wait_count(w, dead, 2), 2, "dead-lettered after the message TTL")
        for body, extra in [(b"queue-ttl", {}), (b"message-ttl", {"original-expiration": "100"})]:
            m, p, b = w.ch.basic_get(dead, auto_ack=True)
            eq((b, m.exchange, m.routing_key, p.expiration), (body, "", dead, None),
               "body, exchange, routing key, expiration")
            entries, _, rest = x_death(p, body.decode())
            eq(entries, [{"count": 1, "reason": "expired", "queue": q, "exchange": "",
                          "routing-keys": [q], **extra}], f"{body.decode()}: x-death")
            eq(rest, first_death_headers("expired", q, ""), f"{body.decode()}: other headers")
        # expired while unacked, then requeued: dead-lettered at once
        q2 = w.queue("q-ttl2", arguments={"x-message-ttl": 300, "x-dead-letter-exchange": "",
                                          "x-dead-letter-routing-key": dead})
        w.ch.basic_publish("", q2, b"late")
        m, p, b = w.ch.basic_get(q2, auto_ack=False)
        pump(w.conn, 0.5)
        w.ch.basic_nack(m.delivery_tag, requeue=True)
        eq(wait_count(w, dead, 1), 1, "dead-lettered after a requeue past the TTL")
        m, p, b = w.ch.basic_get(dead, auto_ack=True)
        eq((b, x_death(p, "late")[0][0]["reason"]), (b"late", "expired"), "body, reason")


@scenario("dlx_maxlen")
def dlx_maxlen(url):
    with World(url) as w:
        w.ch.confirm_delivery()
        dead = w.queue("q-dead")
        q = w.queue("q-maxlen", arguments={"x-max-length": 1, "x-dead-letter-exchange": "",
                                           "x-dead-letter-routing-key": dead})
        w.ch.basic_publish("", q, b"a", pika.BasicProperties(expiration="5000"))
        w.ch.basic_publish("", q, b"b")
        w.ch.basic_publish("", q, b"c")
        eq(drain(w.ch, q), [b"c"], "messages kept")
        eq(wait_count(w, dead, 2), 2, "dead-lettered messages")
        for body, extra in [(b"a", {"original-expiration": "5000"}), (b"b", {})]:
            m, p, b = w.ch.basic_get(dead, auto_ack=True)
            eq(b, body, "dead-lettered body (oldest first)")
            entries, _, rest = x_death(p, body.decode())
            eq(entries, [{"count": 1, "reason": "maxlen", "queue": q, "exchange": "",
                          "routing-keys": [q], **extra}], f"{body.decode()}: x-death")
            eq(rest, first_death_headers("maxlen", q, ""), f"{body.decode()}: other headers")


@scenario("dlx_not_dead_lettered")
def dlx_not_dead_lettered(url):
    with World(url) as w:
        w.ch.confirm_delivery()
        dead = w.queue("q-dead")
        args = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead}
        q = w.queue("q-src", arguments=args)
        for i in range(2):
            w.ch.basic_publish("", q, f"m{i}".encode())
        m, p, b = w.ch.basic_get(q, auto_ack=False)
        w.ch.basic_reject(m.delivery_tag, requeue=True)
        eq(w.ch.queue_purge(q).method.message_count, 2, "purge-ok message_count")
        w.ch.basic_publish("", q, b"deleted")
        w.ch.queue_delete(q)
        # a dead-letter exchange that does not exist: the message is dropped
        missing = w.queue("q-src-missing", arguments={"x-dead-letter-exchange": "conf.no-such-x"})
        w.ch.basic_publish("", missing, b"lost")
        m, p, b = w.ch.basic_get(missing, auto_ack=False)
        w.ch.basic_reject(m.delivery_tag, requeue=False)
        pump(w.conn, 0.3)
        eq((w.count(missing), w.count(dead)), (0, 0),
           "counts after requeue, purge, delete and a missing DLX")


@scenario("dlx_x_death_wire_layout")
def dlx_x_death_wire_layout(url):
    with World(url) as w:
        w.ch.confirm_delivery()
        a, b = w.queue_name("q-a"), w.queue_name("q-b")
        w.ch.queue_declare(a, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": b})
        w.ch.queue_declare(b, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": a})
        w.ch.basic_publish("", a, b"m", pika.BasicProperties(expiration="60000",
                                                             headers={"z": 1, "a": "s"}))

        def bounce(src, dst):
            m, _, _ = w.ch.basic_get(src, auto_ack=False)
            w.ch.basic_reject(m.delivery_tag, requeue=False)
            eq(wait_count(w, dst, 1), 1, f"message dead-lettered into {dst}")
            m, p, body = w.ch.basic_get(dst, auto_ack=False)
            h = raw_headers(p)
            w.ch.basic_reject(m.delivery_tag, requeue=True)
            return h

        # first death: insertion-ordered entry; the headers table comes back sorted by key
        h = bounce(a, b)
        eq(list(h), ["a", "x-death", "x-first-death-exchange", "x-first-death-queue",
                     "x-first-death-reason", "z"], "header order after the first death")
        eq((h["a"], h["z"]), (("S", "s"), ("I", 1)), "own headers (tag, value)")
        for k, v in [("x-first-death-exchange", ""), ("x-first-death-queue", a),
                     ("x-first-death-reason", "rejected")]:
            eq(h[k], ("S", v), f"{k} (tag, value)")
        (e1,) = [e for _, e in h["x-death"][1]]
        eq(list(e1), FIRST_ENTRY_KEYS + ["original-expiration"], "first entry: key order")
        t1 = e1.pop("time")
        eq(t1[0], "T", "type of time")
        eq(e1, {"count": ("l", 1), "reason": ("S", "rejected"), "queue": ("S", a),
                "exchange": ("S", ""), "routing-keys": ("A", [("S", a)]),
                "original-expiration": ("S", "60000")}, "first entry: (tag, value) of each field")
        pump(w.conn, 1.1)  # so that a rewritten 'time' would differ
        # a second death in another queue: a new entry first, keys sorted; the old one unchanged
        h = bounce(b, a)
        entries = [e for _, e in h["x-death"][1]]
        eq(len(entries), 2, "entries after the second death")
        eq(list(entries[0]), SORTED_ENTRY_KEYS, "new entry: key order")
        t2 = entries[0].pop("time")
        eq(entries[0], {"count": ("l", 1), "exchange": ("S", ""), "queue": ("S", b),
                        "reason": ("S", "rejected"), "routing-keys": ("A", [("S", b)])},
           "new entry")
        eq(entries[1], dict(e1, time=t1), "old entry unchanged")
        eq(list(entries[1]), FIRST_ENTRY_KEYS + ["original-expiration"], "old entry: key order")
        check(t2[1] > t1[1], f"time of the second death {t2} not after the first {t1}")
        eq(h["x-first-death-queue"], ("S", a), "x-first-death-queue after the second death")
        # the same queue and reason again: that entry's count goes up and it moves to the front,
        # keys sorted, every other field (time included) as it was; no new entry
        h = bounce(a, b)
        entries = [e for _, e in h["x-death"][1]]
        eq(len(entries), 2, "entries after the third death")
        eq(list(entries[0]), ["count", "exchange", "original-expiration", "queue", "reason",
                              "routing-keys", "time"], "incremented entry: key order")
        eq(entries[0], dict(e1, count=("l", 2), time=t1),
           "incremented entry (count 2, time of the first death)")
        eq(entries[1], {"count": ("l", 1), "exchange": ("S", ""), "queue": ("S", b),
                        "reason": ("S", "rejected"), "routing-keys": ("A", [("S", b)]),
                        "time": t2}, "entry of the second death")
        eq(untag(h["x-first-death-reason"]), "rejected", "x-first-death-reason")


@scenario("dlx_cycles")
def dlx_cycles(url):
    with World(url) as w:
        w.ch.confirm_delivery()
        # a queue that dead-letters expired messages to itself: dropped at the first expiry
        self_key = w.queue("q-self", arguments={"x-message-ttl": 100, "x-dead-letter-exchange": ""})
        self_rk = w.queue_name("q-self-rk")
        w.ch.queue_declare(self_rk, arguments={"x-message-ttl": 100, "x-dead-letter-exchange": "",
                                               "x-dead-letter-routing-key": self_rk})
        # two queues expiring into each other: one round, then dropped
        q1, q2 = w.queue_name("q-loop1"), w.queue_name("q-loop2")
        w.ch.queue_declare(q1, arguments={"x-message-ttl": 100, "x-dead-letter-exchange": "",
                                          "x-dead-letter-routing-key": q2})
        w.ch.queue_declare(q2, arguments={"x-message-ttl": 500, "x-dead-letter-exchange": "",
                                          "x-dead-letter-routing-key": q1})
        for q in (self_key, self_rk, q1):
            w.ch.basic_publish("", q, b"cycle")
        visited = wait_until(lambda: w.count(q2) == 1, 3, step=0.03)
        check(visited, "the message did not reach the second queue of the loop")
        for q in (self_key, self_rk, q1, q2):
            eq(wait_count(w, q, 0), 0, f"message_count of {q}")
        got = []
        for q in (self_key, self_rk, q1, q2):
            w.ch.basic_consume(q, lambda c, m, p, b: got.append(b), auto_ack=True)
        pump(w.conn, 0.6)
        eq(len(got), 0, "deliveries from the cycling queues after the drop")
        # rejections are not cycles: a queue dead-lettering rejected messages to itself
        rej = w.queue("q-rej-self", arguments={"x-dead-letter-exchange": ""})
        w.ch.basic_publish("", rej, b"r")
        for i in range(3):
            m, p, b = w.ch.basic_get(rej, auto_ack=False)
            check(m is not None, f"rejected message not back after reject {i}")
            w.ch.basic_reject(m.delivery_tag, requeue=False)
            wait_count(w, rej, 1)
        m, p, b = w.ch.basic_get(rej, auto_ack=True)
        eq(x_death(p, "after 3 rejects")[0],
           [{"count": 3, "reason": "rejected", "queue": rej, "exchange": "", "routing-keys": [rej]}],
           "x-death after 3 rejects into itself")


@scenario("dlx_retry_with_delay")
def dlx_retry_with_delay(url):
    with World(url) as w:
        w.ch.confirm_delivery()
        work, retry = w.queue_name("q-work"), w.queue_name("q-retry")
        w.ch.queue_declare(work, arguments={"x-dead-letter-exchange": "",
                                            "x-dead-letter-routing-key": retry})
        w.ch.queue_declare(retry, arguments={"x-message-ttl": 100, "x-dead-letter-exchange": "",
                                             "x-dead-letter-routing-key": work})
        w.ch.basic_publish("", work, b"job", pika.BasicProperties(headers={"attempt": "x"}))
        for i in range(2):
            m, p, b = w.ch.basic_get(work, auto_ack=False)
            check(m is not None, f"job not back in the work queue (round {i})")
            w.ch.basic_reject(m.delivery_tag, requeue=False)
            eq(wait_count(w, work, 1), 1, f"job back in the work queue after round {i + 1}")
        m, p, b = w.ch.basic_get(work, auto_ack=True)
        entries, tagged, rest = x_death(p, "after two rounds")
        eq(entries, [
            {"count": 2, "reason": "expired", "queue": retry, "exchange": "", "routing-keys": [retry]},
            {"count": 2, "reason": "rejected", "queue": work, "exchange": "", "routing-keys": [work]},
        ], "x-death after two reject/expire rounds")
        eq([list(e) for e in tagged], [SORTED_ENTRY_KEYS] * 2, "key order of both entries")
        eq(rest, {"attempt": "x", **first_death_headers("rejected", work, "")}, "other headers")
