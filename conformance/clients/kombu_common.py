"""Helpers shared by the kombu scenario modules (World, pump, collect, channel errors)."""

import os
import re
import socket
import sys
import time

import amqp.exceptions as aex
from kombu import Connection, Consumer, Exchange, Producer, Queue

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pyharness import Fail, check, eq, unique  # noqa: E402


class World:
    def __init__(self, url, **kw):
        self.url = url
        self.conns = []
        self.queues = []
        self.exchanges = []
        self.conn = self.connect(**kw)
        self.ch = self.conn.channel()

    def connect(self, **kw):
        kw.setdefault("transport_options", {"confirm_publish": True})
        c = Connection(self.url, connect_timeout=10, **kw)
        c.connect()
        self.conns.append(c)
        return c

    def queue(self, tag, exchange=None, routing_key=None, ch=None, **kw):
        q = Queue(unique(tag), exchange=exchange, routing_key=routing_key, **kw)
        q = q(ch or self.ch)
        q.declare()
        self.queues.append(q.name)
        return q

    def exchange(self, tag, type_, ch=None, **kw):
        e = Exchange(unique(tag), type=type_, **kw)(ch or self.ch)
        e.declare()
        self.exchanges.append(e.name)
        return e

    def producer(self, exchange=None):
        return Producer(self.ch, exchange=exchange or Exchange(""), serializer=None)

    def count(self, q):
        return Queue(q.name if hasattr(q, "name") else q)(self.ch).queue_declare(passive=True).message_count

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for c in self.conns:
            try:
                c.release()
            except Exception:
                pass
        if self.queues or self.exchanges:
            try:
                with Connection(self.url) as c:
                    for q in self.queues:
                        try:
                            c.channel().queue_delete(q)
                        except Exception:
                            pass
                    for e in self.exchanges:
                        try:
                            c.channel().exchange_delete(e)
                        except Exception:
                            pass
            except Exception:
                pass
        return False


def pump(conn, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            conn.drain_events(timeout=0.05)
        except socket.timeout:
            pass


def collect(w, queues, n, timeout=5.0, no_ack=True, settle=0.0, ch=None, prefetch=None):
    got = []
    c = Consumer(ch or w.ch, queues=queues, callbacks=[lambda body, msg: got.append(msg)],
                 no_ack=no_ack, accept=None, prefetch_count=prefetch)
    c.consume()
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        pump(w.conn, 0.05)
    if settle:
        pump(w.conn, settle)
    return got, c


def expect_channel_error(fn, code, text_re):
    try:
        fn()
    except aex.ChannelError as e:
        eq(e.reply_code, code, "reply code")
        check(re.fullmatch(text_re, e.reply_text or ""),
              f"reply text {e.reply_text!r} does not match {text_re!r}")
        return f"{e.reply_code} {e.reply_text}"
    raise Fail(f"no channel.close {code} (call succeeded)")


def still_usable(w):
    ch = w.conn.channel()
    Queue("", exclusive=True)(ch).declare()
    ch.close()


def missing(w, name):
    ch = w.conn.channel()
    try:
        Queue(name)(ch).queue_declare(passive=True)
        ch.close()
        return False
    except aex.NotFound:
        return True
