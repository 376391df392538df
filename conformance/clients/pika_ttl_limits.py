"""pika scenarios (issue 6): message TTL, queue expiry (x-expires), length limits.

Expected behaviour: conformance/reference/queue-features.md (RabbitMQ 3.10).
"""

import os
import re
import sys
import time

import pika

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pika_common import (  # noqa: E402
    World, collect, drain, expect_channel_error, publish_outcome, pump, queue_gone, raw_headers,
    wait_count)
from amqp_tables import untag  # noqa: E402
from pyharness import check, eq, scenario, unique, wait_until  # noqa: E402

# ---------------------------------------------------------------- message TTL


@scenario("ttl_queue_message_ttl")
def ttl_queue_message_ttl(url):
    with World(url) as w:
        w.ch.confirm_delivery()
        q = w.queue("q-ttl", arguments={"x-message-ttl": 400})
        t0 = time.monotonic()
        for i in range(3):
            w.ch.basic_publish("", q, f"m{i}".encode())
        n = w.count(q)
        if time.monotonic() - t0 < 0.3:  # too slow a machine cannot tell
            eq(n, 3, "message_count right after the publishes")
        # no consumer: the queue drops them by itself
        eq(wait_count(w, q, 0, 5), 0, "message_count 5 s after a 400 ms TTL")
        elapsed = time.monotonic() - t0
        check(elapsed >= 0.35, f"messages gone after {elapsed:.3f} s, before their 400 ms TTL")
        got, _ = collect(w.conn, w.ch, q, 1, timeout=0.3)
        eq(got, [], "deliveries after expiry")
        eq(w.ch.basic_get(q)[0], None, "basic.get after expiry")
        return f"expired after {elapsed:.2f} s"


@scenario("ttl_per_message_lower_wins")
def ttl_per_message_lower_wins(url):
    with World(url) as w:
        w.ch.confirm_delivery()
        long_q = w.queue("q-ttl-long", arguments={"x-message-ttl": 60000})
        short_q = w.queue("q-ttl-short", arguments={"x-message-ttl": 300})
        plain = w.queue("q-ttl-none")
        t0 = time.monotonic()
        # the message's expiration is lower than the queue's TTL
        w.ch.basic_publish("", long_q, b"short", pika.BasicProperties(expiration="300"))
        # the queue's TTL is lower than the message's expiration
        w.ch.basic_publish("", short_q, b"long", pika.BasicProperties(expiration="60000"))
        w.ch.basic_publish("", plain, b"kept", pika.BasicProperties(expiration="60000"))
        eq(wait_count(w, long_q, 0, 5), 0, "queue TTL 60 s, expiration 300: message_count")
        eq(wait_count(w, short_q, 0, 5), 0, "queue TTL 300, expiration 60 s: message_count")
        elapsed = time.monotonic() - t0
        check(elapsed >= 0.25, f"expired after {elapsed:.3f} s, before 300 ms")
        eq(w.count(plain), 1, "message with expiration 60 s in a queue without TTL")
        m, p, b = w.ch.basic_get(plain, auto_ack=True)
        eq((b, p.expiration), (b"kept", "60000"), "delivered body and expiration property")


@scenario("ttl_expired_only_at_head")
def ttl_expired_only_at_head(url):
    with World(url) as w:
        w.ch.confirm_delivery()
        q = w.queue("q-ttl-head")
        w.ch.basic_publish("", q, b"long", pika.BasicProperties(expiration="5000"))
        w.ch.basic_publish("", q, b"short", pika.BasicProperties(expiration="50"))
        w.ch.basic_publish("", q, b"none")
        pump(w.conn, 0.3)
        # "short" is past its TTL but behind "long": RabbitMQ only expires the head
        eq(w.count(q), 3, "message_count with an expired message behind a live one")
        m, p, b = w.ch.basic_get(q, auto_ack=True)
        eq((b, p.expiration, m.message_count), (b"long", "5000", 1),
           "first get-ok (body, expiration, message_count: the expired one is dropped)")
        m, p, b = w.ch.basic_get(q, auto_ack=True)
        eq((b, m.message_count), (b"none", 0), "second get-ok (body, message_count)")
        eq(w.ch.basic_get(q)[0], None, "third basic.get")


@scenario("ttl_zero")
def ttl_zero(url):
    with World(url) as w:
        w.ch.confirm_delivery()
        q = w.queue("q-ttl0", arguments={"x-message-ttl": 0})
        w.ch.basic_publish("", q, b"a")
        eq(w.count(q), 0, "TTL 0 without a consumer: message_count")
        eq(w.ch.basic_get(q)[0], None, "TTL 0 without a consumer: basic.get")
        # a consumer that can take it: delivered
        got, _ = [], None
        tag = w.ch.basic_consume(q, lambda c, m, p, b: got.append((b, p.expiration)), auto_ack=True)
        w.ch.basic_publish("", q, b"b")
        wait_until(lambda: (w.conn.process_data_events(0.05), got)[1], 3)
        eq(got, [(b"b", None)], "TTL 0 with a ready consumer: deliveries (body, expiration)")
        w.ch.basic_cancel(tag)
        # a consumer without prefetch room: the second message expires instead of waiting
        ch2 = w.conn.channel()
        ch2.basic_qos(prefetch_count=1)
        got2 = []
        ch2.basic_consume(q, lambda c, m, p, b: got2.append((m.delivery_tag, b)), auto_ack=False)
        w.ch.basic_publish("", q, b"c")
        w.ch.basic_publish("", q, b"d")
        pump(w.conn, 0.3)
        eq([b for _, b in got2], [b"c"], "TTL 0, consumer with prefetch 1: deliveries")
        eq(w.count(q), 0, "TTL 0, consumer busy: message_count")
        ch2.basic_ack(got2[0][0])
        pump(w.conn, 0.3)
        eq([b for _, b in got2], [b"c"], "deliveries after the ack (the expired one never comes)")
        # per-message expiration "0"
        plain = w.queue("q-exp0")
        w.ch.basic_publish("", plain, b"e", pika.BasicProperties(expiration="0"))
        eq(w.count(plain), 0, "expiration 0 without a consumer: message_count")
        got3 = []
        w.ch.basic_consume(plain, lambda c, m, p, b: got3.append((b, p.expiration)), auto_ack=True)
        w.ch.basic_publish("", plain, b"f", pika.BasicProperties(expiration="0"))
        wait_until(lambda: (w.conn.process_data_events(0.05), got3)[1], 3)
        eq(got3, [(b"f", "0")], "expiration 0 with a ready consumer: deliveries")


@scenario("ttl_invalid_expiration")
def ttl_invalid_expiration(url):
    with World(url) as w:
        out = []
        for value, why in [("-1", "{value_negative,-1}"), ("abc", "no_integer"),
                           ("1.5", '{leftover_string,".5"}'), ("", "no_integer")]:
            ch = w.conn.channel()
            ch.confirm_delivery()
            out.append(expect_channel_error(
                lambda: ch.basic_publish("amq.direct", "nowhere", b"x",
                                         pika.BasicProperties(expiration=value)),
                406, re.escape(f"PRECONDITION_FAILED - invalid expiration '{value}': {why}")))
        return out[0]


# ---------------------------------------------------------------- queue expiry


@scenario("queue_expires")
def queue_expires(url):
    with World(url) as w:
        w.ch.confirm_delivery()
        idle = w.queue("q-expires-idle", arguments={"x-expires": 300})
        used = w.queue("q-expires-used", arguments={"x-expires": 300})
        w.ch.basic_publish("", idle, b"not a use")  # publishing does not renew the lease
        tag = w.ch.basic_consume(used, lambda *a: None, auto_ack=True)
        pump(w.conn, 0.8)
        gone = queue_gone(w, idle)
        text = f"NOT_FOUND - no queue '{idle}' in vhost '/'"
        eq(gone, (404, text), "passive declare of a queue unused for 800 ms (x-expires 300)")
        eq(queue_gone(w, used), False, "queue with a consumer after 800 ms")
        w.ch.basic_cancel(tag)
        t0 = time.monotonic()
        # each passive declare renews the lease; poll slower than the 300 ms period
        res = wait_until(lambda: queue_gone(w, used), 5, step=0.6)
        check(res, "queue still there 5 s after its last consumer cancelled (x-expires 300)")
        eq(res[0], 404, "passive declare reply code")
        return f"gone {time.monotonic() - t0:.1f} s after the cancel"


# ---------------------------------------------------------------- length limits


@scenario("maxlen_drop_head")
def maxlen_drop_head(url):
    with World(url) as w:
        w.ch.confirm_delivery()
        q = w.queue("q-maxlen", arguments={"x-max-length": 2})
        res = [publish_outcome(w.ch, "", q, f"m{i}".encode()) for i in range(4)]
        eq(res, ["ack"] * 4, "confirms (drop-head accepts every publish)")
        eq(drain(w.ch, q), [b"m2", b"m3"], "messages kept (the oldest are dropped)")
        qb = w.queue("q-maxbytes", arguments={"x-max-length-bytes": 10, "x-overflow": "drop-head"})
        res = [publish_outcome(w.ch, "", qb, b) for b in [b"12345", b"67890", b"abc", b""]]
        eq(res, ["ack"] * 4, "confirms with x-max-length-bytes 10")
        eq(drain(w.ch, qb), [b"67890", b"abc", b""], "messages kept (body bytes only count)")
        # only ready messages count, and a requeue beyond the limit drops the head
        q1 = w.queue("q-maxlen1", arguments={"x-max-length": 1})
        w.ch.basic_publish("", q1, b"first")
        m, p, b = w.ch.basic_get(q1, auto_ack=False)
        eq(publish_outcome(w.ch, "", q1, b"second"), "ack", "publish while first is unacked")
        eq(w.count(q1), 1, "message_count (unacked ones do not count)")
        w.ch.basic_nack(m.delivery_tag, requeue=True)
        eq(drain(w.ch, q1), [b"second"], "after requeue of first beyond the limit")


@scenario("maxlen_reject_publish")
def maxlen_reject_publish(url):
    with World(url) as w:
        w.ch.confirm_delivery()
        q = w.queue("q-rejpub", arguments={"x-max-length": 2, "x-overflow": "reject-publish"})
        res = [publish_outcome(w.ch, "", q, f"m{i}".encode()) for i in range(4)]
        eq(res, ["ack", "ack", "nack", "nack"], "confirms")
        eq(drain(w.ch, q), [b"m0", b"m1"], "messages kept (the newest are refused)")
        qb = w.queue("q-rejpub-bytes",
                     arguments={"x-max-length-bytes": 10, "x-overflow": "reject-publish"})
        res = [publish_outcome(w.ch, "", qb, b) for b in [b"12345", b"67890", b"abc", b""]]
        eq(res, ["ack", "ack", "nack", "ack"], "confirms with x-max-length-bytes 10")
        eq(drain(w.ch, qb), [b"12345", b"67890", b""], "messages kept")
        # unacked messages do not count; a requeue may exceed the limit
        q1 = w.queue("q-rejpub1", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
        w.ch.basic_publish("", q1, b"first")
        m, p, b = w.ch.basic_get(q1, auto_ack=False)
        eq(publish_outcome(w.ch, "", q1, b"second"), "ack", "publish while first is unacked")
        w.ch.basic_nack(m.delivery_tag, requeue=True)
        eq(drain(w.ch, q1), [b"first", b"second"], "after requeue of first")
        # a full queue among several: nacked, yet delivered to the others
        ex = w.exchange("ex-rejpub", "fanout")
        full = w.queue("q-rejpub-full", arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
        other = w.queue("q-rejpub-other")
        w.ch.queue_bind(full, ex)
        w.ch.queue_bind(other, ex)
        res = [publish_outcome(w.ch, ex, "", f"f{i}".encode()) for i in range(2)]
        eq(res, ["ack", "nack"], "fanout confirms with one full queue")
        eq((w.count(full), w.count(other)), (1, 2), "message counts (full, other)")
        # without confirms the refused message is dropped silently, mandatory or not
        ch = w.conn.channel()
        returned = []
        ch.add_on_return_callback(lambda *a: returned.append(a))
        ch.basic_publish(ex, "", b"f2", mandatory=True)
        pump(w.conn, 0.3)
        eq(len(returned), 0, "basic.return for a publish refused by reject-publish")
        eq(w.count(other), 3, "other queue after a publish without confirms")


@scenario("maxlen_reject_publish_dlx")
def maxlen_reject_publish_dlx(url):
    with World(url) as w:
        w.ch.confirm_delivery()
        dead = w.queue("q-dead")
        q = w.queue("q-rejdlx", arguments={
            "x-max-length": 1, "x-overflow": "reject-publish-dlx",
            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead})
        res = [publish_outcome(w.ch, "", q, f"m{i}".encode()) for i in range(3)]
        eq(res, ["ack", "nack", "nack"], "confirms")
        eq(drain(w.ch, q), [b"m0"], "messages kept")
        eq(wait_count(w, dead, 2), 2, "dead-lettered messages")
        got = []
        for _ in range(2):
            m, p, b = w.ch.basic_get(dead, auto_ack=True)
            d = untag(raw_headers(p)["x-death"])[0]
            got.append((b, m.exchange, m.routing_key, d["reason"], d["queue"], d["count"]))
        eq(got, [(b"m1", "", dead, "maxlen", q, 1), (b"m2", "", dead, "maxlen", q, 1)],
           "dead-lettered (body, exchange, routing key, x-death reason, queue, count)")


@scenario("queue_feature_args")
def queue_feature_args(url):
    with World(url) as w:
        cases = [
            ("x-message-ttl", -1, "{value_negative,-1}"),
            ("x-message-ttl", "abc", '"expected integer, got longstr"'),
            ("x-expires", 0, "{value_zero,0}"),
            ("x-expires", -1, "{value_negative,-1}"),
            ("x-max-length", -1, "{value_negative,-1}"),
            ("x-max-length", "a", '"expected integer, got longstr"'),
            ("x-max-length-bytes", -1, "{value_negative,-1}"),
            ("x-overflow", "bogus", "invalid_overflow"),
            ("x-max-priority", -1, "{value_negative,-1}"),
            ("x-max-priority", 256, "{max_value_exceeded,256}"),
            ("x-single-active-consumer", "yes", "{unacceptable_type,longstr}"),
            ("x-single-active-consumer", 1, "{unacceptable_type,signedint}"),
        ]
        for key, value, why in cases:
            name = unique("q-badarg")
            ch = w.conn.channel()
            expect_channel_error(
                lambda: ch.queue_declare(name, arguments={key: value}), 406,
                re.escape(f"PRECONDITION_FAILED - invalid arg '{key}' for queue '{name}' "
                          f"in vhost '/': {why}"))
        name = unique("q-badarg")
        ch = w.conn.channel()
        expect_channel_error(
            lambda: ch.queue_declare(name, arguments={"x-dead-letter-routing-key": "k"}), 406,
            re.escape(f"PRECONDITION_FAILED - invalid arg 'x-dead-letter-routing-key' for queue "
                      f"'{name}' in vhost '/': routing_key_but_no_dlx_defined"))
        ch = w.conn.channel()
        expect_channel_error(
            lambda: ch.queue_declare(name, arguments={"x-dead-letter-exchange": 5}), 406,
            re.escape(f"PRECONDITION_FAILED - invalid type 'signedint' for arg "
                      f"'x-dead-letter-exchange' in queue '{name}' in vhost '/'"))
        # redeclaring with other values of the new arguments
        q = w.queue("q-args", arguments={"x-message-ttl": 1000, "x-max-priority": 10})
        for args, why in [
            ({"x-message-ttl": 2000, "x-max-priority": 10},
             "inequivalent arg 'x-message-ttl' for queue '{q}' in vhost '/': "
             "received '2000' but current is '1000'"),
            ({"x-message-ttl": 1000},
             "inequivalent arg 'x-max-priority' for queue '{q}' in vhost '/': "
             "received none but current is the value '10' of type 'signedint'"),
            ({"x-message-ttl": 1000, "x-max-priority": 10, "x-max-length": 5},
             "inequivalent arg 'x-max-length' for queue '{q}' in vhost '/': "
             "received the value '5' of type 'signedint' but current is none"),
        ]:
            ch = w.conn.channel()
            expect_channel_error(lambda: ch.queue_declare(q, arguments=args), 406,
                                 re.escape("PRECONDITION_FAILED - " + why.format(q=q)))
        w.ch.queue_declare(q, arguments={"x-message-ttl": 1000, "x-max-priority": 10})
        # accepted as in RabbitMQ: lazy mode, classic type, x-max-priority 0
        ok = w.queue("q-lazy", arguments={"x-queue-mode": "lazy", "x-queue-type": "classic"})
        w.ch.queue_declare(ok, arguments={"x-queue-mode": "lazy", "x-queue-type": "classic"})
        w.queue("q-prio0", arguments={"x-max-priority": 0})
