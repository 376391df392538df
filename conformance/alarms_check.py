#!/usr/bin/env python3
"""Resource alarms checked the same way on RabbitMQ 3.10 and on Warren: the free disk space
alarm (`disk_free_limit`, set above the free space while running) and the memory alarm, as a
client and the management API see them (including each connection's `state`: running,
blocking, blocked).

    conformance/alarms_check.py --against-rabbitmq   # a private node with the management plugin
    conformance/alarms_check.py --against-warren     # this tree's release build

What is compared: /api/nodes (disk_free, disk_free_limit, disk_free_alarm, mem_alarm), the
alarm health checks (status 503 and their exact JSON), and on AMQP the `connection.blocked`
reason a publisher that announced the capability receives ("low on disk", both alarms), that
a connection which has not published is not blocked, and `connection.unblocked` when the
alarms clear. The limits are changed with `rabbitmqctl set_disk_free_limit` /
`set_vm_memory_high_watermark` on RabbitMQ and with `warren ctl` on Warren. Standard library only.
"""

import os
import socket
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import checklib  # noqa: E402  (same directory)
from amqp_min import _frame, _longstr, _method, _shortstr  # noqa: E402
from management_api import Api  # noqa: E402


def connect(port, name):
    """An open connection announcing `connection.blocked`, with channel 1 open."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"AMQP\x00\x00\x09\x01")
    cls, mid, _ = _method(sock)
    assert (cls, mid) == (10, 10), "expected connection.start"
    caps = _shortstr("connection.blocked") + b"t\x01"
    props = (_shortstr("connection_name") + b"S" + _longstr(name.encode())
             + _shortstr("capabilities") + b"F" + _longstr(caps))
    start_ok = (struct.pack(">HH", 10, 11) + _longstr(props) + _shortstr("PLAIN")
                + _longstr(b"\x00guest\x00guest") + _shortstr("en_US"))
    sock.sendall(_frame(1, 0, start_ok))
    cls, mid, args = _method(sock)
    assert (cls, mid) == (10, 30), "expected connection.tune"
    channel_max, frame_max, _ = struct.unpack(">HIH", args[:8])
    sock.sendall(_frame(1, 0, struct.pack(">HHHIH", 10, 31, channel_max, frame_max, 0)))
    sock.sendall(_frame(1, 0, struct.pack(">HH", 10, 40) + _shortstr("/") + b"\x00\x00"))
    assert _method(sock)[:2] == (10, 41), "expected connection.open-ok"
    sock.sendall(_frame(1, 1, struct.pack(">HH", 20, 10) + _shortstr("")))
    assert _method(sock)[:2] == (20, 11), "expected channel.open-ok"
    return sock


def publish(sock, routing_key="alarms-check-nowhere", body=b"x"):
    method = struct.pack(">HHH", 60, 40, 0) + _shortstr("") + _shortstr(routing_key) + b"\x00"
    header = struct.pack(">HHQH", 60, 0, len(body), 0)
    sock.sendall(_frame(1, 1, method) + _frame(2, 1, header) + _frame(3, 1, body))


def next_method(sock, timeout):
    """(class, method, args) of the next method frame, or None if none comes in time."""
    sock.settimeout(timeout)
    try:
        return _method(sock)
    except (socket.timeout, TimeoutError):
        return None


def blocked_reason(sock, timeout=10):
    m = next_method(sock, timeout)
    if m is None:
        return None
    cls, mid, args = m
    if (cls, mid) != (10, 60):
        return f"<{cls}.{mid}>"
    return args[1:1 + args[0]].decode()


class Broker:
    """Changes the limits the way each broker's own tool does."""

    def __init__(self, kind, runner, broker, api):
        self.kind, self.runner, self.broker, self.api = kind, runner, broker, api

    def tool(self, *args):
        if self.kind == "rabbitmq":
            r = self.broker.ctl("rabbitmqctl", *args)
        else:
            binary = os.path.join(self.runner.cargo_target_dir(), "release", "warren")
            r = subprocess.run([binary, "ctl", "--port",
                                str(self.broker.management_port), *args],
                               capture_output=True, text=True, timeout=60)
        if r.returncode:
            raise SystemExit(f"{args}: {r.stdout} {r.stderr}")

    def disk_limit(self, value):
        self.tool("set_disk_free_limit", value)

    def memory_watermark(self, *value):
        self.tool("set_vm_memory_high_watermark", *value)


def run(b, amqp_port, c):
    check = c.check

    def node():
        return b.api.call("GET", "/api/nodes")[2][0]

    def states(*socks):
        """The `state` of each connection in /api/connections, found by its client port."""
        by_port = {c.get("peer_port"): c.get("state")
                   for c in b.api.call("GET", "/api/connections")[2] or []}
        return [by_port.get(sk.getsockname()[1]) for sk in socks]

    def until(what, pred, timeout=15):
        return checklib.wait(pred, timeout)

    # RabbitMQ's node statistics (disk_free and the rest) appear with the first emission of its
    # collector, a few seconds after start on a busy machine: wait for them, then read.
    until("node statistics", lambda: isinstance(node().get("disk_free"), int), timeout=60)
    n = node()
    name = n["name"]
    check("nodes: disk_free is a number", isinstance(n.get("disk_free"), int), n.get("disk_free"))
    check("nodes: disk_free_limit defaults to 50 MB", n.get("disk_free_limit") == 50000000,
          n.get("disk_free_limit"))
    check("nodes: no disk alarm", n.get("disk_free_alarm") is False, n.get("disk_free_alarm"))
    status, _, body = b.api.call("GET", "/api/health/checks/alarms")
    check("alarms check ok", (status, body) == (200, {"status": "ok"}), (status, body))

    idle = connect(amqp_port, "alarms-check-idle")
    pub = connect(amqp_port, "alarms-check-publisher")
    publish(pub)
    b.disk_limit("1000000GB")
    check("disk alarm set", until("alarm", lambda: node().get("disk_free_alarm") is True),
          node().get("disk_free_alarm"))
    check("nodes: the limit as set", node().get("disk_free_limit") == 10 ** 15,
          node().get("disk_free_limit"))
    for path, reason in [("/api/health/checks/alarms", "There are alarms in effect in the cluster"),
                         ("/api/health/checks/local-alarms", "There are alarms in effect on the node")]:
        status, _, body = b.api.call("GET", path)
        want = {"status": "failed", "reason": reason, "alarms": [{"node": name, "resource": "disk space"}]}
        check(f"{path} under the disk alarm", (status, body) == (503, want), (status, body))
    # /api/connections `state`: `blocking` under an alarm until the connection publishes (even
    # one that published before the alarm), `blocked` once a publish is held. RabbitMQ emits a
    # connection's statistics every 5 s, hence the polling.
    check("state: blocking under the alarm (idle and earlier publisher)",
          until("blocking", lambda: states(idle, pub) == ["blocking", "blocking"], timeout=30),
          states(idle, pub))
    # A publisher that published before the alarm is blocked at its next publish.
    publish(pub)
    reason = blocked_reason(pub)
    check("connection.blocked reason for the disk alarm", reason == "low on disk", reason)
    check("state: blocked once a publish is held, the idle one still blocking",
          until("blocked", lambda: states(idle, pub) == ["blocking", "blocked"], timeout=30),
          states(idle, pub))
    # A connection that has not published hears nothing.
    got = next_method(idle, 1.5)
    check("a connection that has not published is not told", got is None, got)

    b.memory_watermark("absolute", "1")
    check("memory alarm set too", until("alarm", lambda: node().get("mem_alarm") is True),
          node().get("mem_alarm"))
    both = connect(amqp_port, "alarms-check-both")
    publish(both)
    reason = blocked_reason(both)
    check("connection.blocked reason for both alarms", reason == "low on disk & memory", reason)
    status, _, body = b.api.call("GET", "/api/health/checks/alarms")
    resources = [a["resource"] for a in (body or {}).get("alarms", [])]
    check("both alarms listed, disk first", (status, resources) == (503, ["disk space", "memory"]),
          (status, body))

    b.disk_limit("50000000")
    b.memory_watermark("0.4")
    for label, sock in (("publisher", pub), ("both", both)):
        m = next_method(sock, 20)
        check(f"connection.unblocked ({label})", m is not None and m[:2] == (10, 61), m)
    # RabbitMQ restarts a connection's statistics timer at its next frame after unblocking.
    publish(pub)
    check("state: running once the alarms clear",
          until("running", lambda: states(idle, pub) == ["running", "running"], timeout=30),
          states(idle, pub))
    check("alarms cleared", until("clear", lambda: not node().get("disk_free_alarm")
                                  and not node().get("mem_alarm")), node())
    status, _, body = b.api.call("GET", "/api/health/checks/alarms")
    check("alarms check ok again", (status, body) == (200, {"status": "ok"}), (status, body))
    for sock in (idle, pub, both):
        sock.close()


def main():
    args = checklib.arguments(__doc__)
    runner = checklib.load_runner()
    kind = "rabbitmq" if args.against_rabbitmq else "warren"
    broker = checklib.rabbitmq(runner) if args.against_rabbitmq else runner.Warren()
    c = checklib.Checks(quiet=True)
    with checklib.started(runner, broker, [broker.management_port]):
        api = Api(f"http://127.0.0.1:{broker.management_port}")
        run(Broker(kind, runner, broker, api), broker.port, c)
    checklib.finish(f"alarms ({kind})", c)


if __name__ == "__main__":
    main()
