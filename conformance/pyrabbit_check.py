"""pyrabbit2 (PyPI, a Python client of the management API) against a broker's API: the calls an
application makes, with results asserted. Run by rabbitmqadmin_check.py with the conformance
venv's Python (conformance/requirements.txt pins pyrabbit2):

    conformance/.deps/venv/bin/python conformance/pyrabbit_check.py http://127.0.0.1:15672 5672

Prints one line per check and `N passed, M failed` last; exit status 1 on a failure.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import amqp_min  # noqa: E402
from pyrabbit2.api import Client  # noqa: E402


def main():
    base, amqp_port = sys.argv[1], int(sys.argv[2])
    api = Client(base.split("://", 1)[1].rstrip("/"), "guest", "guest", timeout=10)
    results = []

    def check(name, fn):
        try:
            ok, detail = fn()
        except Exception as e:  # noqa: BLE001 -- any client exception is a failure to report
            ok, detail = False, f"{type(e).__name__}: {e}"
        results.append(ok)
        print(f"{'ok  ' if ok else 'FAIL'} pyrabbit2 {name}" + ("" if ok else f": {detail}"))

    def poll(fn, want, seconds=10):
        """Waits for fn() == want: RabbitMQ's counts (and the `messages` field itself) follow
        its statistics emission."""
        def attempt():
            try:
                return fn()
            except KeyError as e:
                return f"missing {e}"
        deadline = time.time() + seconds
        got = attempt()
        while got != want and time.time() < deadline:
            time.sleep(0.25)
            got = attempt()
        return got == want, got

    def status(want, call):
        """pyrabbit2's create and delete calls return the HTTP status (RabbitMQ's 201 for a new
        object, 204 for a deletion; its exchange calls return True) and raise on an error."""
        def run():
            got = call()
            return got == want, got
        return run

    check("is_alive", lambda: (api.is_alive() is True, None))
    check("get_overview", lambda: (api.get_overview()["rabbitmq_version"] == "3.10.8", None))
    check("get_vhost_names", lambda: ("/" in api.get_vhost_names(), api.get_vhost_names()))
    check("create_vhost", status(201, lambda: api.create_vhost("pr-v")))
    check("create_user", status(201, lambda: api.create_user("pr-u", "pw", tags="management")))
    check("set_vhost_permissions",
          status(201, lambda: api.set_vhost_permissions("pr-v", "pr-u", ".*", ".*", ".*")))
    check("get_vhost_permissions", lambda: (
        sorted(p["user"] for p in api.get_vhost_permissions("pr-v")) == ["guest", "pr-u"],
        api.get_vhost_permissions("pr-v")))
    check("create_exchange", status(True, lambda: api.create_exchange("pr-v", "pr-x", "fanout")))
    check("create_queue", status(201, lambda: api.create_queue("pr-v", "pr-q", durable=True)))
    check("create_binding", status(201, lambda: api.create_binding("pr-v", "pr-x", "pr-q", "")))
    check("publish (routed)", lambda: (api.publish("pr-v", "pr-x", "", "hello") is True, None))
    check("get_queue_depth", lambda: poll(lambda: api.get_queue_depth("pr-v", "pr-q"), 1))
    check("get_messages", lambda: (
        [(m["payload"], m["exchange"]) for m in api.get_messages("pr-v", "pr-q", requeue=False)]
        == [("hello", "pr-x")], None))
    check("get_queue_depth after get", lambda: poll(lambda: api.get_queue_depth("pr-v", "pr-q"), 0))
    check("get_bindings", lambda: (
        any(b["source"] == "pr-x" and b["destination"] == "pr-q" for b in api.get_bindings()),
        None))
    check("get_definitions", lambda: (
        any(q["name"] == "pr-q" for q in api.get_definitions()["queues"]), None))

    sock = amqp_min.open_connection(amqp_port, "pr-u", "pw", "pr-v")
    check("get_connections", lambda: poll(
        lambda: [c["user"] for c in api.get_connections() or [] if c["vhost"] == "pr-v"],
        ["pr-u"]))
    names = [c["name"] for c in api.get_connections() or [] if c.get("vhost") == "pr-v"]
    check("delete_connection", lambda: (
        bool(names) and api.delete_connection(names[0]) is True, names))
    check("connection closed with 320", lambda: (
        amqp_min.wait_close(sock) == (320, "CONNECTION_FORCED - Closed via management plugin"),
        None))
    sock.close()

    check("delete_queue", status(204, lambda: api.delete_queue("pr-v", "pr-q")))
    check("delete_exchange", status(True, lambda: api.delete_exchange("pr-v", "pr-x")))
    check("delete_user", status(204, lambda: api.delete_user("pr-u")))
    check("delete_vhost", status(204, lambda: api.delete_vhost("pr-v")))
    check("get_vhost_names after delete", lambda: (
        "pr-v" not in api.get_vhost_names(), api.get_vhost_names()))

    # is_alive declared `aliveness-test` in / (on both brokers); leave the broker as found.
    api.delete_queue("/", "aliveness-test")

    passed = sum(results)
    print(f"pyrabbit2: {passed} passed, {len(results) - passed} failed")
    sys.exit(0 if passed == len(results) else 1)


if __name__ == "__main__":
    main()
