"""pika scenarios: reply codes and texts of common mistakes; the server's consumer cancel."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pika_common import World, expect_channel_error  # noqa: E402
from pyharness import check, eq, scenario, unique, wait_until  # noqa: E402

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
