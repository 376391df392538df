#!/usr/bin/env python3
"""Vhost limits, user limits and topic permissions: the management API's answers and their
enforcement over AMQP, runnable against RabbitMQ 3.10 and Warren alike (RabbitMQ is the
reference: every check must pass against it).

    conformance/limits_api.py --url http://127.0.0.1:15672 --amqp-port 5672   # running broker
    conformance/limits_api.py --against-rabbitmq                                 # private node
    conformance/limits_api.py --against-warren                                   # this tree

Uses pika from conformance/run's venv (conformance/.deps/venv, created on first use). Creates
objects named lim-check-*; uses guest/guest.
"""

import contextlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checklib  # noqa: E402  (same directory)
import management_api  # noqa: E402  (the Api class)

runner = checklib.venv(__file__)

import pika  # noqa: E402

V = "lim-check-v"
U = "lim-check-u"
NOT_FOUND = management_api.NOT_FOUND


class Checks(checklib.Checks):
    def __init__(self, api, amqp_port):
        super().__init__()
        self.api = api
        self.port = amqp_port

    def http(self, name, method, path, body=None, status=200, json=None, contains=None):
        st, _, parsed = self.api.call(method, path, body)
        problems = []
        if st != status:
            problems.append(f"status {st}, expected {status} (body {parsed!r:.300})")
        if json is not None and parsed != json:
            problems.append(f"body {parsed!r:.300}, expected {json!r:.300}")
        if contains is not None and (not isinstance(parsed, list) or contains not in parsed):
            problems.append(f"{contains!r} not in {parsed!r:.300}")
        self.ok(name, not problems, "; ".join(problems))
        return parsed

    def connect(self, user="guest", password="guest", vhost=V):
        params = pika.ConnectionParameters(
            host="127.0.0.1", port=self.port, virtual_host=vhost,
            credentials=pika.PlainCredentials(user, password), connection_attempts=1,
            blocked_connection_timeout=10, socket_timeout=10)
        return pika.BlockingConnection(params)

    def refused(self, name, want_code, want_text, **kw):
        """A connection attempt that must be closed by the broker with code and text."""
        try:
            c = self.connect(**kw)
        except pika.exceptions.ProbableAccessDeniedError as e:
            # pika reports a close during connection.open this way, with the reply inside.
            self.ok(name, want_text in str(e) and str(want_code) in str(e), f"got {e!r}")
            return
        except pika.exceptions.AMQPConnectionError as e:
            self.ok(name, want_text in repr(e) and str(want_code) in repr(e), f"got {e!r}")
            return
        c.close()
        self.ok(name, False, "connection opened")


# RabbitMQ tracks connections and queues asynchronously: poll.
wait = checklib.wait


def http_checks(c):
    c.api.call("DELETE", f"/api/vhosts/{V}")
    c.api.call("DELETE", f"/api/users/{U}")
    c.http("vhost created", "PUT", f"/api/vhosts/{V}", status=201)
    c.http("user created", "PUT", f"/api/users/{U}", {"password": "pw", "tags": ""}, status=201)
    c.http("permission", "PUT", f"/api/permissions/{V}/{U}",
           {"configure": ".*", "write": ".*", "read": ".*"}, status=201)
    # vhost limits
    c.http("vhost limits of a fresh vhost: []", "GET", f"/api/vhost-limits/{V}", json=[])
    c.http("vhost limits of a missing vhost: 404", "GET", "/api/vhost-limits/lim-check-none",
           status=404, json=NOT_FOUND)
    c.http("set max-queues", "PUT", f"/api/vhost-limits/{V}/max-queues", {"value": 3}, status=204)
    c.http("set max-connections", "PUT", f"/api/vhost-limits/{V}/max-connections", {"value": 3},
           status=204)
    c.http("reset max-queues", "PUT", f"/api/vhost-limits/{V}/max-queues", {"value": 4}, status=204)
    c.http("vhost limits shown", "GET", f"/api/vhost-limits/{V}",
                 json=[{"vhost": V, "value": {"max-queues": 4, "max-connections": 3}}])
    c.http("vhost limits listed", "GET", "/api/vhost-limits",
           contains={"vhost": V, "value": {"max-queues": 4, "max-connections": 3}})
    c.http("unknown vhost limit: 400", "PUT", f"/api/vhost-limits/{V}/max-foo", {"value": 5},
           status=400, json={"error": "bad_request", "reason":
                             "Validation failed\n\nUnrecognised terms [{<<\"max-foo\">>,5}] in limits\n"})
    c.http("vhost limit not a number: 400", "PUT", f"/api/vhost-limits/{V}/max-queues",
           {"value": "x"}, status=400, json={"error": "bad_request", "reason":
                                             "Validation failed\n\nmax-queues should be a number, actually was <<\"x\">>\n"})
    c.http("vhost limit a float: 400", "PUT", f"/api/vhost-limits/{V}/max-queues",
           {"value": 1.5}, status=400, json={"error": "bad_request", "reason":
                                             "Validation failed\n\nmax-queues should be a number, actually was 1.5\n"})
    c.http("vhost limit without value: 400", "PUT", f"/api/vhost-limits/{V}/max-queues",
           {"valu": 3}, status=400, json={"error": "bad_request", "reason": "[{key_missing,value}]"})
    c.http("vhost limit of a missing vhost: 404", "PUT", "/api/vhost-limits/lim-check-none/max-queues",
           {"value": 3}, status=404, json={"error": "not_found", "reason": "vhost_not_found"})
    c.http("GET of one vhost limit: 405", "GET", f"/api/vhost-limits/{V}/max-queues", status=405)
    c.http("clear max-queues", "DELETE", f"/api/vhost-limits/{V}/max-queues", status=204)
    c.http("clear it again: 204", "DELETE", f"/api/vhost-limits/{V}/max-queues", status=204)
    c.http("clear max-connections", "DELETE", f"/api/vhost-limits/{V}/max-connections", status=204)
    c.http("no limits left: []", "GET", f"/api/vhost-limits/{V}", json=[])
    c.http("the emptied parameter is still listed", "GET", "/api/vhost-limits",
           contains={"vhost": V, "value": []})
    # user limits
    c.http("user limits of a fresh user: []", "GET", f"/api/user-limits/{U}", json=[])
    c.http("user limits of a missing user: 404", "GET", "/api/user-limits/lim-check-none",
           status=404, json=NOT_FOUND)
    c.http("set user max-connections", "PUT", f"/api/user-limits/{U}/max-connections",
           {"value": 5}, status=204)
    c.http("set user max-channels", "PUT", f"/api/user-limits/{U}/max-channels", {"value": 0},
           status=204)
    c.http("user limits shown sorted", "GET", f"/api/user-limits/{U}",
           json=[{"user": U, "value": {"max-channels": 0, "max-connections": 5}}])
    c.http("user limits listed", "GET", "/api/user-limits",
           contains={"user": U, "value": {"max-channels": 0, "max-connections": 5}})
    st, _, user = c.api.call("GET", f"/api/users/{U}")
    c.ok("the user shows its limits", st == 200 and user.get("limits") ==
         {"max-channels": 0, "max-connections": 5}, f"{user!r}")
    c.http("unknown user limit: 400", "PUT", f"/api/user-limits/{U}/max-queues", {"value": 5},
           status=400, json={"error": "bad_request", "reason":
                             "Unrecognised terms [{<<\"max-queues\">>,5}] in user-limits"})
    c.http("user limit not a number: 400", "PUT", f"/api/user-limits/{U}/max-channels",
           {"value": "x"}, status=400, json={"error": "bad_request", "reason":
                                             "max-channels should be a number, actually was <<\"x\">>"})
    c.http("user limit of a missing user: 400", "PUT", "/api/user-limits/lim-check-none/max-channels",
           {"value": 3}, status=400, json={"error": "bad_request", "reason": ["no_such_user", "lim-check-none"]})
    c.http("clear user max-channels", "DELETE", f"/api/user-limits/{U}/max-channels", status=204)
    c.http("clear user max-connections", "DELETE", f"/api/user-limits/{U}/max-connections", status=204)
    c.http("no user limits left: []", "GET", f"/api/user-limits/{U}", json=[])
    # topic permissions
    base = f"/api/topic-permissions/{V}/{U}"
    c.http("no topic permissions: 404", "GET", base, status=404, json=NOT_FOUND)
    c.http("first topic permission: 201", "PUT", base,
           {"exchange": "amq.topic", "write": "^a\\.", "read": "^b"}, status=201)
    c.http("second topic permission: 204", "PUT", base,
           {"exchange": "lim-check-x", "write": "", "read": ".*"}, status=204)
    both = [{"user": U, "vhost": V, "exchange": "amq.topic", "write": "^a\\.", "read": "^b"},
            {"user": U, "vhost": V, "exchange": "lim-check-x", "write": "", "read": ".*"}]
    c.http("topic permissions shown", "GET", base, json=both)
    c.http("topic permissions of the user", "GET", f"/api/users/{U}/topic-permissions", json=both)
    c.http("topic permissions of the vhost", "GET", f"/api/vhosts/{V}/topic-permissions", json=both)
    c.http("topic permissions listed", "GET", "/api/topic-permissions", contains=both[0])
    c.http("topic permission without exchange: 400", "PUT", base, {"write": "a", "read": ".*"},
           status=400, json={"error": "bad_request", "reason": "[{key_missing,exchange}]"})
    c.http("topic permission without write: 400", "PUT", base, {"exchange": "x", "read": ".*"},
           status=400, json={"error": "bad_request", "reason": "[{key_missing,write}]"})
    c.http("topic permission of a missing user: 400", "PUT", f"/api/topic-permissions/{V}/lim-check-none",
           {"exchange": "x", "write": "a", "read": "b"}, status=400,
           json={"error": "bad_request", "reason": "vhost_or_user_not_found"})
    st, _, body = c.api.call("PUT", base, {"exchange": "x", "write": "(", "read": ".*"})
    c.ok("invalid regex: 400 invalid_regexp", st == 400 and isinstance(body.get("reason"), list)
         and body["reason"][:2] == ["invalid_regexp", "("], f"{st} {body!r}")
    c.http("topic permissions of a missing user: 404", "GET", "/api/users/lim-check-none/topic-permissions",
           status=404, json=NOT_FOUND)
    # definitions
    c.http("limit again for the export", "PUT", f"/api/vhost-limits/{V}/max-queues", {"value": 7}, status=204)
    c.http("user limit again for the export", "PUT", f"/api/user-limits/{U}/max-channels", {"value": 9}, status=204)
    st, _, defs = c.api.call("GET", "/api/definitions")
    params = [p for p in defs.get("parameters", []) if p.get("vhost") == V]
    c.ok("export: vhost limits are a vhost-limits parameter", params ==
         [{"value": {"max-queues": 7}, "vhost": V, "component": "vhost-limits", "name": "limits"}], f"{params!r}")
    users = [u for u in defs.get("users", []) if u.get("name") == U]
    c.ok("export: user limits in the user", users and users[0].get("limits") == {"max-channels": 9}, f"{users!r}")
    tps = [t for t in defs.get("topic_permissions", []) if t.get("user") == U]
    c.ok("export: topic permissions", sorted(tps, key=lambda t: t["exchange"]) == both, f"{tps!r}")
    c.http("topic permissions deleted", "DELETE", base, status=204)
    c.http("deleted again: 404", "DELETE", base, status=404, json=NOT_FOUND)
    c.http("clear user limit", "DELETE", f"/api/user-limits/{U}/max-channels", status=204)
    c.http("clear vhost limit", "DELETE", f"/api/vhost-limits/{V}/max-queues", status=204)
    # import
    imported = {"users": [{"name": U, "password_hash": users[0]["password_hash"] if users else "",
                           "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": [],
                           "limits": {"max-connections": 4}}],
                "topic_permissions": [{"user": U, "vhost": V, "exchange": "amq.topic", "write": "w", "read": "r"}],
                "parameters": [{"value": {"max-connections": 6}, "vhost": V,
                                "component": "vhost-limits", "name": "limits"}]}
    c.http("import limits and topic permissions", "POST", "/api/definitions", imported, status=204)
    c.http("imported user limits", "GET", f"/api/user-limits/{U}",
           json=[{"user": U, "value": {"max-connections": 4}}])
    c.http("imported vhost limits", "GET", f"/api/vhost-limits/{V}",
           json=[{"vhost": V, "value": {"max-connections": 6}}])
    c.http("imported topic permission", "GET", base,
           json=[{"user": U, "vhost": V, "exchange": "amq.topic", "write": "w", "read": "r"}])
    c.api.call("DELETE", base)
    c.api.call("DELETE", f"/api/user-limits/{U}/max-connections")
    c.api.call("DELETE", f"/api/vhost-limits/{V}/max-connections")


def amqp_checks(c):
    api = c.api
    # vhost max-connections
    api.call("PUT", f"/api/vhost-limits/{V}/max-connections", {"value": 1})
    first = c.connect()
    c.refused("vhost max-connections refuses the next connection with 530", 530,
              f"NOT_ALLOWED - access to vhost '{V}' refused for user 'guest': connection limit (1) is reached")
    first.close()
    c.ok("a closed connection frees its place", wait(lambda: _opens(c)), "still refused")
    api.call("PUT", f"/api/vhost-limits/{V}/max-connections", {"value": 0})
    c.refused("max-connections 0 allows none", 530, "connection limit (0) is reached")
    api.call("PUT", f"/api/vhost-limits/{V}/max-connections", {"value": -1})
    c.ok("a negative limit allows any", _opens(c), "refused")
    api.call("DELETE", f"/api/vhost-limits/{V}/max-connections")
    # user max-connections
    api.call("PUT", f"/api/user-limits/{U}/max-connections", {"value": 1})
    first = c.connect(user=U, password="pw")
    c.refused("user max-connections refuses the next connection with 530", 530,
              f"NOT_ALLOWED - connection refused for user '{U}': user connection limit (1) is reached",
              user=U, password="pw")
    c.ok("another user is not limited", _opens(c), "refused")
    first.close()
    api.call("DELETE", f"/api/user-limits/{U}/max-connections")
    # user max-channels
    api.call("PUT", f"/api/user-limits/{U}/max-channels", {"value": 2})
    conn = c.connect(user=U, password="pw")
    conn.channel()
    conn.channel()
    try:
        conn.channel()
        c.ok("user max-channels closes the connection with 530", False, "third channel opened")
    except pika.exceptions.ConnectionClosedByBroker as e:
        c.ok("user max-channels closes the connection with 530", e.reply_code == 530 and e.reply_text ==
             f"NOT_ALLOWED - number of channels opened for user '{U}' has reached the maximum allowed user limit of (2)",
             f"{e.reply_code} {e.reply_text}")
    except Exception as e:  # noqa: BLE001
        c.ok("user max-channels closes the connection with 530", False, repr(e))
    api.call("DELETE", f"/api/user-limits/{U}/max-channels")
    # vhost max-queues
    conn = c.connect()
    ch = conn.channel()
    ch.queue_declare("lim-check-q1")
    api.call("PUT", f"/api/vhost-limits/{V}/max-queues", {"value": 1})
    ch.queue_declare("lim-check-q1")
    c.ok("redeclaring an existing queue at the limit is fine", True)
    try:
        ch.queue_declare("lim-check-q2")
        c.ok("max-queues refuses a new queue with 406", False, "declared")
    except pika.exceptions.ChannelClosedByBroker as e:
        c.ok("max-queues refuses a new queue with 406", e.reply_code == 406 and e.reply_text ==
             f"PRECONDITION_FAILED - cannot declare queue 'lim-check-q2': queue limit in vhost '{V}' (1) is reached",
             f"{e.reply_code} {e.reply_text}")
    st, _, body = api.call("PUT", f"/api/queues/{V}/lim-check-q3", {"durable": False})
    c.ok("max-queues refuses a queue declared over HTTP with 400", st == 400 and body == {
        "error": "bad_request",
        "reason": f"cannot declare queue 'lim-check-q3': queue limit in vhost '{V}' (1) is reached"},
        f"{st} {body!r}")
    api.call("DELETE", f"/api/vhost-limits/{V}/max-queues")
    ch = conn.channel()
    ch.queue_delete("lim-check-q1")
    conn.close()
    # topic permissions
    c.http("topic permission with a variable", "PUT", f"/api/topic-permissions/{V}/{U}",
           {"exchange": "amq.topic", "write": "^a\\.|^{username}\\.", "read": "^b"}, status=201)
    conn = c.connect(user=U, password="pw")
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("amq.topic", "a.x", b"m")
    ch.basic_publish("amq.topic", f"{U}.x", b"m")
    ch.basic_publish("amq.direct", "anything", b"m")
    c.ok("publishes matching write, or to a non-topic exchange, pass", True)
    try:
        ch.basic_publish("amq.topic", "x.a", b"m")
        c.ok("a publish not matching write is refused with 403", False, "published")
    except pika.exceptions.ChannelClosedByBroker as e:
        c.ok("a publish not matching write is refused with 403", e.reply_code == 403 and e.reply_text ==
             f"ACCESS_REFUSED - access to topic 'x.a' in exchange 'amq.topic' in vhost '{V}' refused for user '{U}'",
             f"{e.reply_code} {e.reply_text}")
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "amq.topic", "b.1")
    try:
        ch.queue_bind(q, "amq.topic", "c.1")
        c.ok("a bind not matching read is refused with 403", False, "bound")
    except pika.exceptions.ChannelClosedByBroker as e:
        c.ok("a bind not matching read is refused with 403", e.reply_code == 403 and e.reply_text ==
             f"ACCESS_REFUSED - access to topic 'c.1' in exchange 'amq.topic' in vhost '{V}' refused for user '{U}'",
             f"{e.reply_code} {e.reply_text}")
    ch = conn.channel()
    try:
        ch.exchange_bind("amq.direct", "amq.topic", "c.1")
        c.ok("an exchange bind not matching read is refused with 403", False, "bound")
    except pika.exceptions.ChannelClosedByBroker as e:
        c.ok("an exchange bind not matching read is refused with 403", e.reply_code == 403, f"{e.reply_code}")
    api.call("DELETE", f"/api/topic-permissions/{V}/{U}")
    ch = conn.channel()
    ch.confirm_delivery()
    time.sleep(0.2)
    try:
        ch.basic_publish("amq.topic", "x.a", b"m")
        c.ok("cleared topic permissions allow at once", True)
    except Exception as e:  # noqa: BLE001
        c.ok("cleared topic permissions allow at once", False, repr(e))
    conn.close()


def _opens(c, **kw):
    try:
        c.connect(**kw).close()
        return True
    except Exception:  # noqa: BLE001
        return False


def main():
    def url_target(ap, g):
        g.add_argument("--url", help="base URL of a running broker's management API")
        ap.add_argument("--amqp-port", type=int, default=5672, help="with --url")

    args = checklib.arguments(__doc__, url_target)
    if args.url:
        scope = contextlib.nullcontext()
        base, port = args.url, args.amqp_port
    else:
        broker = checklib.rabbitmq(runner) if args.against_rabbitmq else runner.Warren()
        scope = checklib.started(runner, broker, [broker.management_port])
        base, port = f"http://127.0.0.1:{broker.management_port}", broker.port
    with scope:
        c = Checks(management_api.Api(base), port)
        try:
            http_checks(c)
            amqp_checks(c)
        finally:
            c.api.call("DELETE", f"/api/vhosts/{V}")
            c.api.call("DELETE", f"/api/users/{U}")
    checklib.finish(f"limits and topic permissions ({base})", c)


if __name__ == "__main__":
    main()
