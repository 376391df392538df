"""pika scenarios: what RabbitMQ checks in a publish's properties before routing it (issue 12):
the user_id claim, and the type of the CC and BCC headers."""

import os
import re
import sys
from urllib.parse import unquote, urlparse

import pika

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pika_common import World, expect_channel_error  # noqa: E402
from pyharness import check, eq, scenario, wait_until  # noqa: E402


def _user(url):
    return unquote(urlparse(url).username or "guest")


@scenario("user_id_foreign_closes_channel_406")
def user_id_foreign(url):
    with World(url) as w:
        q = w.queue("q-uid")
        ch = w.conn.channel()
        props = pika.BasicProperties(user_id="someone-else")
        d = expect_channel_error(
            lambda: (ch.basic_publish("", q, b"claimed", props), ch.queue_declare(q, passive=True)),
            406,
            rf"PRECONDITION_FAILED - user_id property set to 'someone-else' but authenticated "
            rf"user was '{re.escape(_user(url))}'")
        eq(w.count(q), 0, "the refused message was not routed")
        return d


@scenario("user_id_own_is_accepted")
def user_id_own(url):
    with World(url) as w:
        q = w.queue("q-uid-own")
        w.ch.basic_publish("", q, b"mine", pika.BasicProperties(user_id=_user(url)))
        wait_until(lambda: w.count(q) == 1)
        _, props, body = w.ch.basic_get(q, auto_ack=True)
        eq((body, props.user_id), (b"mine", _user(url)), "delivered with its user_id")


@scenario("user_id_foreign_in_tx_closes_at_publish")
def user_id_foreign_tx(url):
    with World(url) as w:
        q = w.queue("q-uid-tx")
        ch = w.conn.channel()
        ch.tx_select()
        props = pika.BasicProperties(user_id="someone-else")
        # Refused when published, before any commit.
        d = expect_channel_error(
            lambda: (ch.basic_publish("", q, b"claimed", props), ch.queue_declare(q, passive=True)),
            406, r"PRECONDITION_FAILED - user_id property set to 'someone-else' but .*")
        eq(w.count(q), 0, "nothing routed")
        return d


@scenario("cc_header_not_array_closes_channel_406")
def cc_not_array(url):
    with World(url) as w:
        q = w.queue("q-cc")
        q2 = w.queue("q-cc2")
        ch = w.conn.channel()
        props = pika.BasicProperties(headers={"CC": q2})
        d = expect_channel_error(
            lambda: (ch.basic_publish("", q, b"m", props), ch.queue_declare(q, passive=True)),
            406, r'PRECONDITION_FAILED - invalid message: \{unacceptable_type_in_header,"CC",longstr\}')
        eq((w.count(q), w.count(q2)), (0, 0), "nothing routed")
        return d


@scenario("bcc_header_not_array_closes_channel_406")
def bcc_not_array(url):
    with World(url) as w:
        q = w.queue("q-bcc")
        ch = w.conn.channel()
        props = pika.BasicProperties(headers={"BCC": {"nested": "table"}})
        d = expect_channel_error(
            lambda: (ch.basic_publish("", q, b"m", props), ch.queue_declare(q, passive=True)),
            406, r'PRECONDITION_FAILED - invalid message: \{unacceptable_type_in_header,"BCC",table\}')
        eq(w.count(q), 0, "nothing routed")
        return d


@scenario("cc_array_ignores_non_string_elements")
def cc_mixed_array(url):
    with World(url) as w:
        q = w.queue("q-ccm")
        q2 = w.queue("q-ccm2")
        w.ch.basic_publish("", q, b"m", pika.BasicProperties(headers={"CC": [q2, 7, True]}))
        # RabbitMQ hands a message for several queues to them asynchronously: a passive
        # declare right after the publish may not count it yet.
        wait_until(lambda: (w.count(q), w.count(q2)) == (1, 1))
        eq((w.count(q), w.count(q2)), (1, 1), "routed by the key and the string CC entry")
        _, props, _ = w.ch.basic_get(q2, auto_ack=True)
        check(props.headers and props.headers.get("CC") == [q2, 7, True],
              f"CC header kept as published: {props.headers!r}")
