"""kombu scenarios: reply codes and texts of common mistakes."""

import os
import re
import sys

from kombu import Consumer, Exchange, Queue

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kombu_common import World, expect_channel_error, still_usable  # noqa: E402
from pyharness import scenario, unique  # noqa: E402


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
