#!/usr/bin/env python3
"""Configure/write/read permission checks through AMQP, runnable against RabbitMQ 3.10 and
Warren alike (issue 14).

Each case sets one user's three expressions on `/` through the management API, performs one
AMQP operation with pika as that user on a fresh connection, and asserts the outcome: allowed,
or the exact 403 channel close text. RabbitMQ is the reference: every case must pass against
it. Also: a SHA-512 hash imported through definitions logs in; a wrong password and an unknown
user get the same refusal.

    conformance/permissions_check.py --against-rabbitmq   # private node + management plugin
    conformance/permissions_check.py --against-warren     # this tree's Warren (release build)

Needs pika: re-runs itself in conformance/run's venv (conformance/.deps/venv).
"""

import base64
import hashlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import checklib  # noqa: E402  (same directory)
import management_api as mgmt  # noqa: E402

runner = checklib.venv(__file__)

import pika  # noqa: E402
import pika.exceptions  # noqa: E402

USER, PASSWORD = "perm-u", "perm-pw"


def refused(kind, name):
    return (403, f"ACCESS_REFUSED - access to {kind} '{name}' in vhost '/' refused for user '{USER}'")


def q(name):
    return refused("queue", name)


def x(name):
    return refused("exchange", name)


def publish(exchange):
    def op(ch):
        ch.confirm_delivery()
        ch.basic_publish(exchange, "k", b"m")
    return op


def declare_q(name, **arguments):
    return lambda ch: ch.queue_declare(name, arguments=arguments or None)


def declare_x(name, **arguments):
    return lambda ch: ch.exchange_declare(name, "direct", arguments=arguments or None)


ALL = (".*", ".*", ".*")
# (name, (configure, write, read), operation, expected: None when allowed, else (code, text)).
# The admin creates queue `pq` and exchange `px` (bound from amq.topic) before the cases run.
CASES = [
    ("exchange.declare needs configure", ("^ok", ".*", ".*"), declare_x("ok-x"), None),
    ("exchange.declare refused", ("^ok", ".*", ".*"), declare_x("no-x"), x("no-x")),
    ("exchange.declare of amq.direct needs configure", ("^ok", ".*", ".*"),
     lambda ch: ch.exchange_declare("amq.direct", "direct", durable=True), x("amq.direct")),
    ("passive exchange.declare needs nothing", ("", "", ""),
     lambda ch: ch.exchange_declare("amq.direct", passive=True), None),
    ("exchange.delete needs configure", ("^ok", ".*", ".*"),
     lambda ch: ch.exchange_delete("px"), x("px")),
    ("alternate-exchange needs read on the exchange", (".*", ".*", "^$"),
     declare_x("ae-x", **{"alternate-exchange": "ae"}), x("ae-x")),
    ("alternate-exchange needs write on the alternate", (".*", "^$", ".*"),
     declare_x("ae-x", **{"alternate-exchange": "ae"}), x("ae")),
    ("queue.declare needs configure", ("^q", ".*", ".*"), declare_q("other"), q("other")),
    ("queue.declare allowed", ("^q", ".*", ".*"), declare_q("q1"), None),
    ("server-named queue.declare allowed by ^amq\\.gen-", ("^amq\\.gen-", ".*", ".*"), declare_q(""), None),
    ("passive queue.declare needs nothing", ("", "", ""),
     lambda ch: ch.queue_declare("pq", passive=True), None),
    ("x-dead-letter-exchange needs read on the queue", (".*", ".*", "^$"),
     declare_q("dq", **{"x-dead-letter-exchange": "dlx"}), q("dq")),
    ("x-dead-letter-exchange needs write on the exchange", (".*", "^$", ".*"),
     declare_q("dq", **{"x-dead-letter-exchange": "dlx"}), x("dlx")),
    ("the default exchange as DLX is amq.default", (".*", "^$", ".*"),
     declare_q("dq2", **{"x-dead-letter-exchange": ""}), x("amq.default")),
    ("queue.delete needs configure", ("^$", ".*", ".*"), lambda ch: ch.queue_delete("pq"), q("pq")),
    ("queue.purge needs read", (".*", ".*", "^$"), lambda ch: ch.queue_purge("pq"), q("pq")),
    ("basic.get needs read", (".*", ".*", "^$"), lambda ch: ch.basic_get("pq"), q("pq")),
    ("basic.get of a missing queue is refused before 404", (".*", ".*", "^$"),
     lambda ch: ch.basic_get("missing"), q("missing")),
    ("basic.consume needs read", (".*", ".*", "^$"),
     lambda ch: ch.basic_consume("pq", lambda *a: None), q("pq")),
    ("basic.get allowed", ("^$", "^$", "^pq$"), lambda ch: ch.basic_get("pq"), None),
    ("queue.bind needs write on the queue", (".*", "^$", ".*"),
     lambda ch: ch.queue_bind("pq", "amq.direct", "k"), q("pq")),
    ("queue.bind needs read on the exchange", (".*", ".*", "^$"),
     lambda ch: ch.queue_bind("pq", "amq.direct", "k"), x("amq.direct")),
    ("queue.unbind needs read on the exchange", (".*", ".*", "^pq$"),
     lambda ch: ch.queue_unbind("pq", "amq.topic", "k"), x("amq.topic")),
    ("queue.bind allowed", ("^$", "^pq$", "^amq\\."),
     lambda ch: ch.queue_bind("pq", "amq.direct", "k"), None),
    ("exchange.bind needs write on the destination", (".*", "^amq", ".*"),
     lambda ch: ch.exchange_bind("px", "amq.fanout"), x("px")),
    ("exchange.bind needs read on the source", (".*", ".*", "^px$"),
     lambda ch: ch.exchange_bind("px", "amq.fanout"), x("amq.fanout")),
    ("exchange.bind allowed", ("^$", "^px$", "^amq\\.fanout$"),
     lambda ch: ch.exchange_bind("px", "amq.fanout"), None),
    ("basic.publish needs write", (".*", "^amq\\.direct$", ".*"), publish("amq.topic"), x("amq.topic")),
    ("basic.publish allowed", (".*", "^amq\\.direct$", ".*"), publish("amq.direct"), None),
    ("basic.publish to a missing exchange is refused before 404", (".*", "^amq", ".*"),
     publish("missing"), x("missing")),
    ("the default exchange is checked as amq.default", (".*", "^$", ".*"), publish(""), x("amq.default")),
    ("publish to the default exchange allowed by ^amq\\.default$", (".*", "^amq\\.default$", ".*"),
     publish(""), None),
    ("expressions are not anchored", ("ueu", ".*", ".*"), declare_q("myqueue1"), None),
    ("an empty expression allows nothing", ("", ".*", ".*"), declare_q("q2"), q("q2")),
]


def connect(port, user=USER, password=PASSWORD):
    params = pika.ConnectionParameters("127.0.0.1", port, "/", pika.PlainCredentials(user, password),
                                       connection_attempts=1, socket_timeout=10)
    return pika.BlockingConnection(params)


def outcome(port, op):
    conn = connect(port)
    try:
        op(conn.channel())
        return None
    except pika.exceptions.ChannelClosedByBroker as e:
        return (e.reply_code, e.reply_text)
    finally:
        if conn.is_open:
            conn.close()


def run(api, port, c):
    report = c.check

    status, _, _ = api.call("PUT", f"/api/users/{USER}", {"password": PASSWORD, "tags": ""})
    assert status in (201, 204), status
    admin = connect(port, "guest", "guest").channel()
    admin.queue_declare("pq")
    admin.exchange_declare("px", "direct")
    admin.queue_bind("pq", "amq.topic", "k")
    for name, perms, op, want in CASES:
        body = dict(zip(("configure", "write", "read"), perms))
        status, _, _ = api.call("PUT", "/api/permissions/%2F/" + USER, body)
        assert status in (201, 204), status
        got = outcome(port, op)
        report(name, got == want, f"expected {want}, got {got}")

    # Server-named queues need configure on their generated name.
    api.call("PUT", "/api/permissions/%2F/" + USER, {"configure": "^q", "write": ".*", "read": ".*"})
    got = outcome(port, declare_q(""))
    report("server-named queue.declare refused on its amq.gen- name",
           got is not None and got[0] == 403
           and got[1].startswith("ACCESS_REFUSED - access to queue 'amq.gen-")
           and got[1].endswith(f"' in vhost '/' refused for user '{USER}'"), got)

    # A permission change is seen by the next channel of an open connection.
    api.call("PUT", "/api/permissions/%2F/" + USER, {"configure": ".*", "write": ".*", "read": ".*"})
    conn = connect(port)
    publish("amq.direct")(conn.channel())
    api.call("PUT", "/api/permissions/%2F/" + USER, {"configure": ".*", "write": "^$", "read": ".*"})
    try:
        publish("amq.direct")(conn.channel())
        got = None
    except pika.exceptions.ChannelClosedByBroker as e:
        got = (e.reply_code, e.reply_text)
    report("a revoked write refuses the next channel's publish", got == x("amq.direct"), got)
    conn.close()

    # The management API's writes go through the same table (RabbitMQ runs them as the user
    # through rabbit_channel): 401 `Access refused.` for declare, delete, bind and purge, the
    # channel's 403 text for get and publish.
    api.call("PUT", f"/api/users/{USER}", {"password": PASSWORD, "tags": "management"})
    api.call("PUT", "/api/permissions/%2F/" + USER, {"configure": "^$", "write": "^$", "read": "^$"})
    me = (USER, PASSWORD)
    denied = {"error": "not_authorised", "reason": "Access refused."}
    http_cases = [
        ("HTTP PUT queue needs configure", "PUT", "/api/queues/%2F/pq", {"durable": False}, denied),
        ("HTTP DELETE queue needs configure", "DELETE", "/api/queues/%2F/pq", None, denied),
        ("HTTP purge needs read", "DELETE", "/api/queues/%2F/pq/contents", None, denied),
        ("HTTP PUT exchange needs configure", "PUT", "/api/exchanges/%2F/px", {"type": "direct"}, denied),
        ("HTTP DELETE exchange needs configure", "DELETE", "/api/exchanges/%2F/px", None, denied),
        ("HTTP binding needs write on the queue and read on the exchange", "POST",
         "/api/bindings/%2F/e/px/q/pq", {"routing_key": "k"}, denied),
        ("HTTP get needs read (channel text)", "POST", "/api/queues/%2F/pq/get",
         {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"},
         {"error": "not_authorised", "reason": q("pq")[1]}),
        ("HTTP publish needs write (400 with the channel's code and text)", "POST",
         "/api/exchanges/%2F/px/publish",
         {"routing_key": "k", "payload": "x", "payload_encoding": "string", "properties": {}},
         {"error": "bad_request", "reason": "403 " + x("px")[1]}),
    ]
    for name, method, path, body, want in http_cases:
        status, _, got = api.call(method, path, body, user=me)
        want_status = 400 if want["error"] == "bad_request" else 401
        report(name, status == want_status and got == want, (status, got))
    api.call("PUT", "/api/permissions/%2F/" + USER, {"configure": ".*", "write": ".*", "read": ".*"})
    status, _, got = api.call("PUT", "/api/queues/%2F/pq", {"durable": False}, user=me)
    report("HTTP PUT queue with configure is allowed", status in (201, 204), (status, got))

    # The extra checks of a new queue with a dead-letter exchange and of a new exchange with an
    # alternate exchange apply to the API too (it declares through rabbit_channel): 401.
    extra_cases = [
        ("HTTP queue with x-dead-letter-exchange needs read on the queue", (".*", ".*", "^$"),
         "/api/queues/%2F/hdq", {"durable": False, "arguments": {"x-dead-letter-exchange": "dlx"}}),
        ("HTTP queue with x-dead-letter-exchange needs write on it", (".*", "^$", ".*"),
         "/api/queues/%2F/hdq", {"durable": False, "arguments": {"x-dead-letter-exchange": "dlx"}}),
        ("HTTP exchange with alternate-exchange needs read on it", (".*", ".*", "^$"),
         "/api/exchanges/%2F/hae", {"type": "fanout", "durable": False,
                                   "arguments": {"alternate-exchange": "ae"}}),
        ("HTTP exchange with alternate-exchange needs write on the alternate", (".*", "^$", ".*"),
         "/api/exchanges/%2F/hae", {"type": "fanout", "durable": False,
                                   "arguments": {"alternate-exchange": "ae"}}),
    ]
    for name, perms, path, body in extra_cases:
        api.call("PUT", "/api/permissions/%2F/" + USER, dict(zip(("configure", "write", "read"), perms)))
        status, _, got = api.call("PUT", path, body, user=me)
        report(name, status == 401 and got == denied, (status, got))
        api.call("DELETE", path)
    api.call("PUT", "/api/permissions/%2F/" + USER, {"configure": ".*", "write": ".*", "read": ".*"})
    for path, body in [("/api/queues/%2F/hdq", extra_cases[0][3]),
                       ("/api/exchanges/%2F/hae", extra_cases[2][3])]:
        status, _, got = api.call("PUT", path, body, user=me)
        report(f"HTTP PUT {path} with all permissions is allowed", status in (201, 204), (status, got))
        api.call("DELETE", path)

    # Permissions with expressions read back as set, and invalid ones are 400.
    api.call("PUT", "/api/permissions/%2F/" + USER, {"configure": "^c", "write": "", "read": "(a|b)"})
    status, _, body = api.call("GET", "/api/permissions/%2F/" + USER)
    report("GET permissions shows the expressions",
           status == 200 and [body.get(k) for k in ("configure", "write", "read")] == ["^c", "", "(a|b)"],
           (status, body))
    status, _, body = api.call("PUT", "/api/permissions/%2F/" + USER,
                               {"configure": "(", "write": ".*", "read": ".*"})
    report("an invalid expression is refused with 400", status == 400, (status, body))

    # A SHA-512 hash (salt ++ SHA-512(salt ++ password)) imported through definitions logs in.
    salt = bytes([0x5E, 0x11, 0xA0, 0x07])
    digest = base64.b64encode(salt + hashlib.sha512(salt + b"s3cret").digest()).decode()
    defs = {"users": [{"name": "perm-sha512", "password_hash": digest, "tags": [],
                       "hashing_algorithm": "rabbit_password_hashing_sha512"}],
            "permissions": [{"user": "perm-sha512", "vhost": "/", "configure": ".*",
                             "write": ".*", "read": ".*"}]}
    status, _, body = api.call("POST", "/api/definitions", defs)
    try:
        connect(port, "perm-sha512", "s3cret").close()
        logged_in = True
    except pika.exceptions.AMQPError as e:
        logged_in = repr(e)
    report("an imported SHA-512 user logs in", status in (201, 204) and logged_in is True,
           (status, body, logged_in))
    # Same for MD5 (`rabbit_password_hashing_md5`).
    digest = base64.b64encode(salt + hashlib.md5(salt + b"s3cret").digest()).decode()
    defs["users"] = [{"name": "perm-md5", "password_hash": digest, "tags": [],
                      "hashing_algorithm": "rabbit_password_hashing_md5"}]
    defs["permissions"][0]["user"] = "perm-md5"
    status, _, body = api.call("POST", "/api/definitions", defs)
    try:
        connect(port, "perm-md5", "s3cret").close()
        logged_in = True
    except pika.exceptions.AMQPError as e:
        logged_in = repr(e)
    report("an imported MD5 user logs in", status in (201, 204) and logged_in is True,
           (status, body, logged_in))

    # A wrong password and an unknown user are refused alike.
    texts = []
    for user, password in ((USER, "wrong"), ("perm-nobody", PASSWORD)):
        try:
            connect(port, user, password).close()
            texts.append("logged in")
        except pika.exceptions.ProbableAuthenticationError as e:
            texts.append(str(e))
        except pika.exceptions.AMQPConnectionError as e:
            texts.append(repr(e.args[0]) if e.args else repr(e))
    report("wrong password and unknown user get one refusal",
           texts[0] == texts[1] and "Login was refused using authentication mechanism PLAIN" in texts[0],
           texts)

    api.call("DELETE", f"/api/users/{USER}")
    api.call("DELETE", "/api/users/perm-sha512")
    api.call("DELETE", "/api/users/perm-md5")
    for qn in ("pq", "q1", "myqueue1"):
        admin.queue_delete(qn)
    for xn in ("px", "ok-x"):
        admin.exchange_delete(xn)
    admin.connection.close()


def main():
    args = checklib.arguments(__doc__)
    broker = checklib.rabbitmq(runner) if args.against_rabbitmq else runner.Warren()
    c = checklib.Checks()
    with checklib.started(runner, broker, [broker.management_port]):
        run(mgmt.Api(f"http://127.0.0.1:{broker.management_port}"), broker.port, c)
    checklib.finish(f"permissions ({'RabbitMQ' if args.against_rabbitmq else 'Warren'})", c)


if __name__ == "__main__":
    main()
