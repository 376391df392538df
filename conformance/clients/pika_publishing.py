"""pika scenarios: mandatory returns, publisher confirms, transactions, purge, body
sizes, many channels.
"""

import os
import sys

import pika
import pika.exceptions as pex

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pika_common import World, collect, pump  # noqa: E402
from pyharness import Fail, check, eq, scenario, wait_until  # noqa: E402

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
        # RabbitMQ's queues apply a commit asynchronously: poll, then assert
        wait_until(lambda: w.count(q) == 3)
        eq(w.count(q), 3, "messages after commit")
        # acks are transactional too: a committed ack settles, a rolled back one does not
        m, p, b = w.ch.basic_get(q, auto_ack=False)
        w.ch.basic_ack(m.delivery_tag)
        w.ch.tx_commit()
        m, p, b = w.ch.basic_get(q, auto_ack=False)
        w.ch.basic_ack(m.delivery_tag)
        w.ch.tx_rollback()
        w.ch.close()
        wait_until(lambda: w.count(q) == 2)
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
        wait_until(lambda: w.count(q) == 1)
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
