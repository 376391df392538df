"""kombu scenarios: RabbitMQ behaviours that client code relies on (issue 12): idempotent unbinds.
(py-amqp, kombu's transport, always accepts the server's channel_max in tune-ok, so the
channel_max scenario cannot be expressed; nor update-secret or channel.flow, which it lacks.)"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kombu_common import World  # noqa: E402
from pyharness import scenario, unique  # noqa: E402


@scenario("unbind_idempotent")
def unbind_idempotent(url):
    with World(url) as w:
        q = w.queue("q-unbind")
        x = w.exchange("x-unbind", "direct")
        x2 = w.exchange("x-unbind2", "fanout")
        ch = w.conn.channel()
        ch.queue_unbind(q.name, x.name, routing_key="never-bound")
        ch.queue_unbind(unique("q-missing"), x.name, routing_key="k")
        ch.queue_unbind(q.name, unique("x-missing"), routing_key="k")
        ch.queue_bind(q.name, x.name, routing_key="k")
        ch.queue_unbind(q.name, x.name, routing_key="k")
        ch.queue_unbind(q.name, x.name, routing_key="k")
        ch.exchange_unbind(x2.name, x.name, routing_key="never-bound")
        ch.exchange_unbind(unique("x-missing"), x.name, routing_key="k")
        ch.exchange_unbind(x2.name, unique("x-missing"), routing_key="k")
        ch.queue_declare("", exclusive=True)  # the channel is still open
        return "8 unbinds of missing things answered unbind-ok"

