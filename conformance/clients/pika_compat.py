"""pika scenarios: RabbitMQ behaviours that client code relies on (issue 12): update-secret,
idempotent unbinds, channel.flow active=false."""

import os
import re
import sys

import pika.exceptions as pex

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pika_common import World  # noqa: E402
from pyharness import Fail, check, eq, scenario, unique  # noqa: E402


@scenario("update_secret")
def update_secret(url):
    """connection.update-secret is answered with update-secret-ok; the session carries on."""
    with World(url) as w:
        q = w.queue("q-secret")
        w.conn.update_secret("guest", "rotation")
        check(w.conn.is_open, "connection closed after update-secret")
        ok = w.ch.queue_declare(q, passive=True)
        eq(ok.method.queue, q, "passive declare after update-secret")
        ch2 = w.conn.channel()
        ch2.queue_declare("", exclusive=True)
        return "update-secret-ok, connection and channels usable"


@scenario("unbind_idempotent")
def unbind_idempotent(url):
    """queue.unbind and exchange.unbind of missing queues, exchanges or bindings: unbind-ok."""
    with World(url) as w:
        q = w.queue("q-unbind")
        x = w.exchange("x-unbind", "direct")
        x2 = w.exchange("x-unbind2", "fanout")
        w.ch.queue_unbind(q, x, routing_key="never-bound")
        w.ch.queue_unbind(unique("q-missing"), x, routing_key="k")
        w.ch.queue_unbind(q, unique("x-missing"), routing_key="k")
        w.ch.queue_bind(q, x, routing_key="k")
        w.ch.queue_unbind(q, x, routing_key="k")
        w.ch.queue_unbind(q, x, routing_key="k")  # twice
        w.ch.exchange_unbind(x2, x, routing_key="never-bound")
        w.ch.exchange_unbind(unique("x-missing"), x, routing_key="k")
        w.ch.exchange_unbind(x2, unique("x-missing"), routing_key="k")
        check(w.ch.is_open, "channel closed by an unbind")
        return "8 unbinds of missing things answered unbind-ok"


@scenario("channel_flow_inactive")
def channel_flow_inactive(url):
    """channel.flow active=true is flow-ok; active=false closes the connection with 540."""
    with World(url) as w:
        eq(w.ch.flow(True), True, "flow-ok active")
        try:
            w.ch.flow(False)
        except pex.ConnectionClosedByBroker as e:
            eq(e.reply_code, 540, "reply code")
            check(re.fullmatch(r"NOT_IMPLEMENTED - active=false", e.reply_text),
                  f"reply text {e.reply_text!r}")
            return f"{e.reply_code} {e.reply_text}"
        raise Fail("channel.flow active=false succeeded")
