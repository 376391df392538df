"""pika scenarios (issue 6): priority queues, consumer priorities, single active consumer,
direct reply-to.

Expected behaviour: conformance/reference/queue-features.md (RabbitMQ 3.10).
"""

import os
import re
import sys

import pika
import pika.exceptions as pex

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pika_common import World, expect_channel_error, pump  # noqa: E402
from pyharness import Fail, check, eq, scenario, unique, wait_until  # noqa: E402

# name, priority property; max priority 5
PRIORITY_MESSAGES = [("a", None), ("b", 1), ("c", 5), ("d", 3), ("e", 9), ("f", 5), ("g", 0),
                     ("h", 3), ("i", 255)]
PRIORITY_ORDER = ["c", "e", "f", "i", "d", "h", "b", "a", "g"]


@scenario("priority_queue")
def priority_queue(url):
    with World(url) as w:
        w.ch.confirm_delivery()
        q = w.queue("q-prio", arguments={"x-max-priority": 5})
        for body, prio in PRIORITY_MESSAGES:
            w.ch.basic_publish("", q, body.encode(), pika.BasicProperties(priority=prio))
        got = []
        for _ in PRIORITY_MESSAGES:
            m, p, b = w.ch.basic_get(q, auto_ack=True)
            check(m is not None, "unexpected get-empty")
            got.append((b.decode(), p.priority, m.message_count))
        sent = dict(PRIORITY_MESSAGES)
        want = [(b, sent[b], len(PRIORITY_MESSAGES) - 1 - i) for i, b in enumerate(PRIORITY_ORDER)]
        eq(got, want, "basic.get order (body, priority property unchanged, message_count)")
        # the same order for a consumer
        for body, prio in PRIORITY_MESSAGES:
            w.ch.basic_publish("", q, body.encode(), pika.BasicProperties(priority=prio))
        got = []
        w.ch.basic_consume(q, lambda c, m, p, b: got.append(b.decode()), auto_ack=True)
        wait_until(lambda: (w.conn.process_data_events(0.05), len(got) >= 9)[1], 3)
        eq(got, PRIORITY_ORDER, "delivery order")
        # without x-max-priority the property is ignored
        plain = w.queue("q-noprio")
        for body, prio in [("x", 1), ("y", 9)]:
            w.ch.basic_publish("", plain, body.encode(), pika.BasicProperties(priority=prio))
        bodies = [w.ch.basic_get(plain, auto_ack=True)[2] for _ in range(2)]
        eq(bodies, [b"x", b"y"], "order in a queue without x-max-priority")


@scenario("consumer_priority")
def consumer_priority(url):
    with World(url) as w:
        w.ch.confirm_delivery()
        q = w.queue("q-cprio")
        low, high = w.conn.channel(), w.conn.channel()
        low.basic_qos(prefetch_count=10)
        high.basic_qos(prefetch_count=2)
        got = []
        low.basic_consume(q, lambda c, m, p, b: got.append(("low", b)), auto_ack=False)
        high.basic_consume(q, lambda c, m, p, b: got.append(("high", b)), auto_ack=False,
                           arguments={"x-priority": 10})
        for i in range(6):
            w.ch.basic_publish("", q, f"m{i}".encode())
        wait_until(lambda: (w.conn.process_data_events(0.05), len(got) >= 6)[1], 3)
        pump(w.conn, 0.2)
        eq(sorted(b for c, b in got if c == "high"), [b"m0", b"m1"],
           "high-priority consumer (prefetch 2) gets the first two")
        eq(sorted(b for c, b in got if c == "low"), [b"m2", b"m3", b"m4", b"m5"],
           "low-priority consumer gets the rest")
        low.close()
        high.close()
        # negative priorities rank below the default 0; equal ones share round-robin
        q = w.queue("q-cprio-neg")
        neg, zero = w.conn.channel(), w.conn.channel()
        got = []
        neg.basic_consume(q, lambda c, m, p, b: got.append(("neg", b)), auto_ack=True,
                          arguments={"x-priority": -5})
        zero.basic_consume(q, lambda c, m, p, b: got.append(("zero", b)), auto_ack=True)
        for i in range(4):
            w.ch.basic_publish("", q, f"n{i}".encode())
        wait_until(lambda: (w.conn.process_data_events(0.05), len(got) >= 4)[1], 3)
        pump(w.conn, 0.2)
        eq(sorted(got), [("zero", f"n{i}".encode()) for i in range(4)],
           "x-priority -5 against a default consumer")
        neg.close()
        zero.close()
        q = w.queue("q-cprio-rr")
        a, b = w.conn.channel(), w.conn.channel()
        got = []
        a.basic_consume(q, lambda c, m, p, x: got.append(("a", x)), auto_ack=True,
                        arguments={"x-priority": 3})
        b.basic_consume(q, lambda c, m, p, x: got.append(("b", x)), auto_ack=True,
                        arguments={"x-priority": 3})
        for i in range(4):
            w.ch.basic_publish("", q, f"r{i}".encode())
        wait_until(lambda: (w.conn.process_data_events(0.05), len(got) >= 4)[1], 3)
        eq(sorted(got), [("a", b"r0"), ("a", b"r2"), ("b", b"r1"), ("b", b"r3")],
           "two consumers with x-priority 3 (round-robin)")
        ch = w.conn.channel()
        expect_channel_error(
            lambda: ch.basic_consume(q, lambda *x: None, arguments={"x-priority": "x"}), 406,
            re.escape(f"PRECONDITION_FAILED - invalid arg 'x-priority' for queue '{q}' in vhost "
                      "'/': \"expected integer, got longstr\""))


@scenario("single_active_consumer")
def single_active_consumer(url):
    with World(url) as w:
        w.ch.confirm_delivery()
        q = w.queue("q-sac", arguments={"x-single-active-consumer": True})
        chans = [w.conn.channel() for _ in range(3)]
        got = []
        tags = []
        for i, ch in enumerate(chans[:2]):
            ch.basic_qos(prefetch_count=10)
            tags.append(ch.basic_consume(
                q, lambda c, m, p, b, i=i: got.append((f"c{i + 1}", b, m.delivery_tag, m.redelivered)),
                auto_ack=False))
        eq(w.ch.queue_declare(q, passive=True).method.consumer_count, 2,
           "declare-ok consumer_count (all consumers count)")
        for i in range(3):
            w.ch.basic_publish("", q, f"a{i}".encode())
        wait_until(lambda: (w.conn.process_data_events(0.05), len(got) >= 3)[1], 3)
        pump(w.conn, 0.2)
        eq([(c, b) for c, b, _, _ in got], [("c1", b"a0"), ("c1", b"a1"), ("c1", b"a2")],
           "deliveries: only the first consumer is active")
        chans[0].basic_ack(got[-1][2], multiple=True)
        chans[0].basic_cancel(tags[0])
        del got[:]
        for i in range(2):
            w.ch.basic_publish("", q, f"b{i}".encode())
        wait_until(lambda: (w.conn.process_data_events(0.05), len(got) >= 2)[1], 3)
        eq([(c, b) for c, b, _, _ in got], [("c2", b"b0"), ("c2", b"b1")],
           "after the active consumer cancelled, the next one takes over")
        # a consumer joining later waits; closing the active channel requeues its unacked
        # messages to the next consumer
        tags.append(chans[2].basic_consume(
            q, lambda c, m, p, b: got.append(("c3", b, m.delivery_tag, m.redelivered)),
            auto_ack=True))
        w.ch.basic_publish("", q, b"c0")
        wait_until(lambda: (w.conn.process_data_events(0.05), len(got) >= 3)[1], 3)
        eq(got[2][:2], ("c2", b"c0"), "delivery after a third consumer joined")
        del got[:]
        chans[1].close()
        wait_until(lambda: (w.conn.process_data_events(0.05), len(got) >= 3)[1], 3)
        eq([(c, b, r) for c, b, _, r in got], [("c3", b"b0", True), ("c3", b"b1", True),
                                               ("c3", b"c0", True)],
           "after the active consumer's channel closed (consumer, body, redelivered)")
        ch = w.conn.channel()
        expect_channel_error(
            lambda: ch.basic_consume(q, lambda *a: None, exclusive=True), 403,
            re.escape(f"ACCESS_REFUSED - queue '{q}' in vhost '/' in exclusive use"))


REPLY_TO = "amq.rabbitmq.reply-to"


@scenario("direct_reply_to")
def direct_reply_to(url):
    with World(url) as w:
        server = w.conn.channel()
        rpc = w.queue("q-rpc", ch=server)
        replies = []
        tag = w.ch.basic_consume(REPLY_TO, lambda c, m, p, b: replies.append((m, p, b)),
                                 auto_ack=True)
        w.ch.basic_publish("", rpc, b"request",
                           pika.BasicProperties(reply_to=REPLY_TO, correlation_id="c1"))
        m, p, b = None, None, None
        for _ in range(60):
            m, p, b = server.basic_get(rpc, auto_ack=True)
            if m is not None:
                break
            pump(w.conn, 0.05)
        check(m is not None, "request not received")
        eq((b, p.correlation_id), (b"request", "c1"), "request body and correlation_id")
        address = p.reply_to
        check(address.startswith(REPLY_TO + ".") and len(address) > len(REPLY_TO) + 1,
              f"reply_to seen by the server: {address!r}")
        ok = server.queue_declare(address, passive=True).method
        eq((ok.queue, ok.message_count, ok.consumer_count), (address, 0, 1),
           "passive declare of the reply address")
        server.basic_publish("", address, b"reply",
                             pika.BasicProperties(correlation_id="c1", headers={"h": 1}))
        server.basic_publish("amq.direct", address, b"not via amq.direct")
        wait_until(lambda: (w.conn.process_data_events(0.05), replies)[1], 3)
        pump(w.conn, 0.3)
        eq(len(replies), 1, "replies received")
        m, p, b = replies[0]
        eq((b, p.correlation_id, p.headers), (b"reply", "c1", {"h": 1}), "reply body and properties")
        eq((m.exchange, m.routing_key, m.consumer_tag, m.delivery_tag, m.redelivered),
           ("", address, tag, 1, False), "reply delivery fields")
        ok = server.queue_declare(REPLY_TO, passive=True).method
        eq((ok.queue, ok.message_count, ok.consumer_count), (REPLY_TO, 0, 1),
           "passive declare of amq.rabbitmq.reply-to")
        # once the reply consumer is gone the address is unroutable
        w.ch.basic_cancel(tag)
        server.confirm_delivery()
        try:
            server.basic_publish("", address, b"late", mandatory=True)
            raise Fail("a mandatory reply to a cancelled reply consumer was not returned")
        except pex.UnroutableError as e:
            r = e.messages[0].method
            eq((r.reply_code, r.reply_text, r.routing_key), (312, "NO_ROUTE", address),
               "basic.return of a late reply")
        expect_channel_error(lambda: server.queue_declare(address, passive=True), 404,
                             re.escape(f"NOT_FOUND - no queue '{address}' in vhost '/'"))
        return f"reply address of {len(address)} characters"


@scenario("direct_reply_to_errors")
def direct_reply_to_errors(url):
    with World(url) as w:
        q = w.queue("q-rpc")
        out = []
        ch = w.conn.channel()

        def publish_without_consumer():
            ch.basic_publish("", q, b"x", pika.BasicProperties(reply_to=REPLY_TO))
            ch.queue_declare("", exclusive=True)

        out.append(expect_channel_error(
            publish_without_consumer, 406, "PRECONDITION_FAILED - fast reply consumer does not exist"))
        ch = w.conn.channel()
        out.append(expect_channel_error(
            lambda: ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=False), 406,
            "PRECONDITION_FAILED - reply consumer cannot acknowledge"))
        ch = w.conn.channel()
        ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True)
        out.append(expect_channel_error(
            lambda: ch.basic_consume(REPLY_TO, lambda *a: None, auto_ack=True), 406,
            "PRECONDITION_FAILED - reply consumer already set"))
        ch = w.conn.channel()
        expect_channel_error(lambda: ch.basic_get(REPLY_TO), 404,
                             re.escape(f"NOT_FOUND - no queue '{REPLY_TO}' in vhost '/'"))
        name = REPLY_TO + "." + unique("x")
        ch = w.conn.channel()
        expect_channel_error(lambda: ch.queue_declare(name), 404,
                             re.escape(f"NOT_FOUND - no queue '{name}' in vhost '/'"))
        # an unknown reply address: dropped, or returned when mandatory
        ch = w.conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("", name, b"x")
        try:
            ch.basic_publish("", name, b"x", mandatory=True)
            raise Fail("a mandatory publish to an unknown reply address was not returned")
        except pex.UnroutableError as e:
            eq(e.messages[0].method.reply_code, 312, "basic.return reply code")
        return "; ".join(out)
