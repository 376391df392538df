"""pika scenarios: RabbitMQ behaviours that client code relies on (issue 12): update-secret,
idempotent unbinds, channel.flow active=false."""

import os
import re
import sys

import pika
import pika.exceptions as pex

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pika_common import World, expect_channel_error  # noqa: E402
from pyharness import Fail, check, eq, scenario, unique, wait_until  # noqa: E402


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
        # Another connection's exclusive queue: a binding it does not have is still unbind-ok;
        # removing one it has is 405.
        excl = unique("q-excl")
        w.ch.queue_declare(excl, exclusive=True)
        other = w.connect().channel()
        other.queue_unbind(excl, x, routing_key="k")
        w.ch.queue_bind(excl, x, routing_key="k")
        d = expect_channel_error(
            lambda: other.queue_unbind(excl, x, routing_key="k"), 405,
            rf"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{re.escape(excl)}' "
            r"in vhost '/'\. It could be originally declared on another connection or the "
            r"exclusive property value does not match that of the original declaration\.")
        return f"9 unbinds of missing things answered unbind-ok; an existing binding of a locked queue: {d}"


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


@scenario("channel_max_counts_open_channels")
def channel_max_counts_open_channels(url):
    """channel_max limits how many channels are open, not their numbers; one more closes the
    connection with 530."""
    params = pika.URLParameters(url)
    params.channel_max = 3
    c = pika.BlockingConnection(params)
    try:
        eq(c._impl.params.channel_max, 3, "negotiated channel_max")
        chs = [c.channel(channel_number=n) for n in (1, 200, 65535)]
        chs[1].close()
        c.channel(channel_number=7)
        try:
            c.channel(channel_number=9)
        except pex.ConnectionClosedByBroker as e:
            eq(e.reply_code, 530, "reply code")
            eq(e.reply_text, "NOT_ALLOWED - number of channels opened (3) has reached the "
                             "negotiated channel_max (3)", "reply text")
            return f"channels 1, 200, 65535 opened with channel_max 3; then {e.reply_code} {e.reply_text}"
        raise Fail("a fourth channel opened with channel_max 3")
    finally:
        if c.is_open:
            c.close()


@scenario("handshake_frame_limit")
def handshake_frame_limit(url):
    """Before tune-ok frames are limited to 4096 bytes: a start-ok whose client properties make
    it larger is refused (the connection never opens); a smaller one is fine."""
    small = pika.URLParameters(url)
    small.client_properties = {"big": "x" * 3500}
    pika.BlockingConnection(small).close()
    big = pika.URLParameters(url)
    big.client_properties = {"big": "x" * 5000}
    try:
        c = pika.BlockingConnection(big)
    except pex.AMQPConnectionError as e:
        return f"3500-byte properties accepted; 5000-byte refused ({type(e).__name__})"
    c.close()
    raise Fail("a connection.start-ok larger than 4096 bytes was accepted")


@scenario("exchange_names_strip_cr_lf")
def exchange_names_strip_cr_lf(url):
    """CR and LF are removed from exchange names in declares, bindings and deletes (issue 12
    item 6). Queue names are stripped too, but pika waits for a declare-ok naming the queue it
    asked for, so that half is tested in Rust (client_topology.rs)."""
    with World(url) as w:
        base = unique("x-crlf")
        w.exchanges.append(base)
        w.ch.exchange_declare(base[:6] + "\r\n" + base[6:], "fanout")
        w.ch.exchange_declare(base, "fanout", passive=True)
        q = w.queue("q-crlf")
        w.ch.queue_bind(q, base + "\n")
        w.ch.basic_publish(base, "", b"m")
        # RabbitMQ hands routed messages to queues asynchronously: poll the count.
        wait_until(lambda: w.count(q) == 1)
        eq(w.count(q), 1, "routed through the exchange declared with CR/LF")
        w.ch.exchange_delete("\r" + base)
        ch = w.conn.channel()
        try:
            ch.exchange_declare(base, "fanout", passive=True)
        except pex.ChannelClosedByBroker as e:
            eq(e.reply_code, 404, "deleted by its CR/LF name")
            return
        raise Fail("the exchange was not deleted")
