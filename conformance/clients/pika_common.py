"""Helpers shared by the pika scenario modules (World, collect, pump, errors, raw headers)."""

import os
import re
import sys
import time

import pika
import pika.exceptions as pex
import pika.spec

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from amqp_tables import content_header_headers  # noqa: E402
from pyharness import Fail, check, eq, unique, wait_until  # noqa: E402

# ---------------------------------------------------------------- helpers


class World:
    """One connection plus bookkeeping of what a scenario declared, deleted at the end."""

    def __init__(self, url, **params):
        self.url = url
        self.conns = []
        self.queues = []
        self.exchanges = []
        self.conn = self.connect(**params)
        self.ch = self.conn.channel()

    def connect(self, **params):
        p = pika.URLParameters(self.url)
        p.connection_attempts = 1
        p.socket_timeout = 10
        p.blocked_connection_timeout = 10
        for k, v in params.items():
            setattr(p, k, v)
        c = pika.BlockingConnection(p)
        self.conns.append(c)
        return c

    def queue(self, tag, ch=None, **kw):
        name = unique(tag)
        ok = (ch or self.ch).queue_declare(name, **kw)
        self.queues.append(name)
        return ok.method.queue

    def queue_name(self, tag):
        """A unique queue name deleted at the end, for a queue the scenario declares itself."""
        name = unique(tag)
        self.queues.append(name)
        return name

    def exchange(self, tag, type_, ch=None, **kw):
        name = unique(tag)
        (ch or self.ch).exchange_declare(name, type_, **kw)
        self.exchanges.append(name)
        return name

    def count(self, queue):
        """Ready messages of a queue, asked on the scenario's channel when it is open (so it
        is ordered after that channel's publishes), else on a new channel."""
        if self.ch.is_open:
            return self.ch.queue_declare(queue, passive=True).method.message_count
        ch = self.conn.channel()
        try:
            return ch.queue_declare(queue, passive=True).method.message_count
        finally:
            ch.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for c in self.conns:
            try:
                if c.is_open:
                    c.close()
            except Exception:
                pass
        if self.queues or self.exchanges:
            try:
                c = pika.BlockingConnection(pika.URLParameters(self.url))
                for q in self.queues:
                    ch = c.channel()
                    try:
                        ch.queue_delete(q)
                    except Exception:
                        pass
                    if ch.is_open:
                        ch.close()
                for e in self.exchanges:
                    ch = c.channel()
                    try:
                        ch.exchange_delete(e)
                    except Exception:
                        pass
                    if ch.is_open:
                        ch.close()
                c.close()
            except Exception:
                pass
        return False


def collect(conn, ch, queue, n, timeout=5.0, auto_ack=True, settle=0.0):
    """Consume until n messages arrived (then wait `settle` more seconds); returns list of
    (method, properties, body) and the consumer tag (cancelled unless auto_ack is False)."""
    got = []

    def on_msg(c, m, p, b):
        got.append((m, p, b))

    tag = ch.basic_consume(queue, on_msg, auto_ack=auto_ack)
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    if settle:
        end = time.monotonic() + settle
        while time.monotonic() < end:
            conn.process_data_events(time_limit=0.05)
    if auto_ack:
        ch.basic_cancel(tag)
    return got, tag


def pump(conn, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        conn.process_data_events(time_limit=0.05)


def expect_channel_error(fn, code, text_re):
    try:
        fn()
    except pex.ChannelClosedByBroker as e:
        eq(e.reply_code, code, "reply code")
        check(re.fullmatch(text_re, e.reply_text), f"reply text {e.reply_text!r} does not match {text_re!r}")
        return f"{e.reply_code} {e.reply_text}"
    raise Fail(f"no channel.close {code} (call succeeded)")


def publish_confirmed(ch, exchange, key, bodies, props=None, mandatory=False):
    for b in bodies:
        ch.basic_publish(exchange, key, b, props, mandatory=mandatory)


# pika decodes header tables without their type tags; keep the encoded properties so that
# raw_headers() can show what was on the wire (x-death layout scenarios).
_pika_decode_props = pika.spec.BasicProperties.decode


def _decode_keeping_bytes(self, encoded, offset=0):
    self._encoded = bytes(encoded[offset:])
    return _pika_decode_props(self, encoded, offset)


pika.spec.BasicProperties.decode = _decode_keeping_bytes


def raw_headers(props):
    """The delivered headers as {name: (tag, value)} in wire order (None when absent)."""
    return content_header_headers(props._encoded)


def drain(ch, queue):
    """Bodies of all ready messages, taken with basic.get (auto-ack)."""
    out = []
    while True:
        m, p, b = ch.basic_get(queue, auto_ack=True)
        if m is None:
            return out
        out.append(b)


def publish_outcome(ch, exchange, key, body, props=None, mandatory=False):
    """basic.publish on a confirm channel: 'ack' or 'nack'."""
    try:
        ch.basic_publish(exchange, key, body, props, mandatory=mandatory)
        return "ack"
    except pex.NackError:
        return "nack"


def queue_gone(w, name):
    """(code, text) of a passive declare that fails, False while the queue exists. A passive
    declare renews an x-expires lease, as in RabbitMQ."""
    ch = w.conn.channel()
    try:
        ch.queue_declare(name, passive=True)
        ch.close()
        return False
    except pex.ChannelClosedByBroker as e:
        return (e.reply_code, e.reply_text)


def wait_count(w, queue, n, timeout=3.0):
    """Waits until the queue's message_count is n; returns the last count seen."""
    last = [None]

    def ok():
        last[0] = w.count(queue)
        return last[0] == n

    wait_until(ok, timeout)
    return last[0]
