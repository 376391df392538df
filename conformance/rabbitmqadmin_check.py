#!/usr/bin/env python3
"""Debian's rabbitmqadmin (v1, /usr/bin/rabbitmqadmin from the rabbitmq-server package) against a
broker: its common commands, with their output asserted. RabbitMQ is the reference: every check
passes against RabbitMQ 3.10.8 and against Warren.

    conformance/rabbitmqadmin_check.py --against-rabbitmq   # private node + management plugin
    conformance/rabbitmqadmin_check.py --against-warren     # this tree's Warren (release build)
    conformance/rabbitmqadmin_check.py --url http://127.0.0.1:15672 --amqp-port 5672

Brokers are started with conformance/management_api.py's helper. Where the two brokers must
differ, the difference is removed in `normalise()` (one place, with reasons). Uses guest/guest
and objects named rq-*. Only the standard library (and rabbitmqadmin, installed with
rabbitmq-server from apt when missing). Then pyrabbit2, a PyPI client of the same API, runs its
calls against the same broker (conformance/pyrabbit_check.py, in the conformance venv;
`--no-pyrabbit` skips it), and this tree's `warren ctl` (if built) runs rabbitmqctl's commands
through the same API, each with rabbitmqctl's exact output.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import amqp_min  # noqa: E402
import management_api  # noqa: E402

ADMIN = "/usr/bin/rabbitmqadmin"


def ensure_rabbitmqadmin():
    """rabbitmqadmin ships in Debian's rabbitmq-server package (as the conformance runner's
    RabbitMQ does): install it the same way when missing."""
    if not os.path.exists(ADMIN):
        management_api.load_runner().RabbitMQ.ensure_installed()
    if not os.path.exists(ADMIN):
        raise SystemExit(f"{ADMIN} is missing after installing rabbitmq-server")


def normalise(kind, rows):
    """Rows of a listing with what must differ between brokers removed:

    - exchanges: RabbitMQ has `amq.rabbitmq.trace` (its firehose tracer); Warren has no tracer
      (docs/management-api.md, deliberate differences), so the listing is compared without it.
    - every listing is sorted: neither broker promises an order.
    """
    if kind == "exchanges":
        rows = [r for r in rows if r.get("name") != "amq.rabbitmq.trace"]
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))


class Check:
    def __init__(self, port):
        self.port = port
        self.passed = 0
        self.failed = 0

    def admin(self, *args, fmt=None):
        cmd = [ADMIN, "-H", "127.0.0.1", "-P", str(self.port), "-u", "guest", "-p", "guest"]
        if fmt:
            cmd += ["-f", fmt]
        r = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=30)
        return r.returncode, r.stdout, r.stderr

    def expect(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print(f"ok   {name}")
        else:
            self.failed += 1
            print(f"FAIL {name}: {detail}")

    def says(self, want, *args, code=0):
        """Runs a command; its exit code and stdout (or stderr on failure) must match."""
        rc, out, err = self.admin(*args)
        text = out if code == 0 else err
        self.expect(" ".join(args), rc == code and text.strip() == want,
                    f"exit {rc}, stdout {out!r}, stderr {err!r}, want {want!r}")

    def listing(self, kind, *columns, vhost=None):
        extra = ["-V", vhost] if vhost else []
        rc, out, err = self.admin(*extra, "list", kind, *columns, fmt="raw_json")
        if rc != 0:
            return None
        return normalise(kind, json.loads(out))

    def expect_listing(self, kind, columns, want, poll=False, vhost=None):
        """`list KIND COLUMNS` (raw_json) equals `want` after normalising; with `poll`, waits
        up to 10 s (RabbitMQ's queue counts follow its statistics emission)."""
        want = normalise(kind, want)
        deadline = time.time() + (10 if poll else 0)
        while True:
            got = self.listing(kind, *columns, vhost=vhost)
            if got == want or time.time() >= deadline:
                break
            time.sleep(0.25)
        self.expect(f"list {kind} {' '.join(columns)}", got == want, f"got {got}, want {want}")


def run(port, amqp_port):
    c = Check(port)
    rc, out, _ = c.admin("show", "overview")
    c.expect("show overview", rc == 0 and "rabbitmq_version" in out and "3.10.8" in out, out)
    rc, out, _ = c.admin("list", "vhosts", "name", fmt="tsv")
    c.expect("list vhosts (tsv)", rc == 0 and out.splitlines()[:2] == ["name", "/"], out)
    c.expect_listing("users", ["name", "tags"], [{"name": "guest", "tags": ["administrator"]}])

    # Topology: declare, publish, get, purge.
    c.says("queue declared", "declare", "queue", "name=rq-q", "durable=true")
    c.says("exchange declared", "declare", "exchange", "name=rq-x", "type=topic")
    c.says("binding declared", "declare", "binding", "source=rq-x", "destination=rq-q",
           "routing_key=a.*")
    c.says("Message published", "publish", "exchange=rq-x", "routing_key=a.b", "payload=hello")
    c.says("Message published but NOT routed", "publish", "exchange=rq-x", "routing_key=zzz",
           "payload=lost")
    c.expect_listing("queues", ["name", "durable", "messages"],
                     [{"name": "rq-q", "durable": True, "messages": 1}], poll=True)
    c.expect_listing("exchanges", ["name", "type"], [
        {"name": "", "type": "direct"}, {"name": "amq.direct", "type": "direct"},
        {"name": "amq.fanout", "type": "fanout"}, {"name": "amq.headers", "type": "headers"},
        {"name": "amq.match", "type": "headers"}, {"name": "amq.topic", "type": "topic"},
        {"name": "rq-x", "type": "topic"}])
    c.expect_listing("bindings", ["source", "destination", "destination_type", "routing_key"], [
        {"source": "", "destination": "rq-q", "destination_type": "queue", "routing_key": "rq-q"},
        {"source": "rq-x", "destination": "rq-q", "destination_type": "queue",
         "routing_key": "a.*"}])
    rc, out, _ = c.admin("get", "queue=rq-q", "ackmode=ack_requeue_true")
    c.expect("get (table, requeued)", rc == 0 and "| hello " in out and "| a.b " in out, out)
    rc, out, _ = c.admin("get", "queue=rq-q", "ackmode=ack_requeue_false", fmt="raw_json")
    got = json.loads(out) if rc == 0 else None
    c.expect("get (raw_json, acked)", got is not None and len(got) == 1 and
             {k: got[0].get(k) for k in ("payload", "routing_key", "exchange", "redelivered",
                                          "message_count", "payload_encoding")} ==
             {"payload": "hello", "routing_key": "a.b", "exchange": "rq-x", "redelivered": True,
              "message_count": 0, "payload_encoding": "string"}, out)
    c.says("No items", "get", "queue=rq-q")
    for _ in range(2):
        c.admin("publish", "routing_key=rq-q", "payload=x")
    c.expect_listing("queues", ["name", "messages"], [{"name": "rq-q", "messages": 2}], poll=True)
    c.says("queue purged", "purge", "queue", "name=rq-q")
    c.expect_listing("queues", ["name", "messages"], [{"name": "rq-q", "messages": 0}], poll=True)

    # Users, vhosts, permissions: the new user logs in over AMQP.
    c.says("user declared", "declare", "user", "name=rq-u", "password=pw", "tags=monitoring")
    c.says("vhost declared", "declare", "vhost", "name=rq-v")
    c.says("permission declared", "declare", "permission", "vhost=rq-v", "user=rq-u",
           "configure=.*", "write=.*", "read=.*")
    c.expect_listing("permissions", ["user", "vhost", "configure", "write", "read"], [
        {"user": "guest", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"},
        {"user": "guest", "vhost": "rq-v", "configure": ".*", "write": ".*", "read": ".*"},
        {"user": "rq-u", "vhost": "rq-v", "configure": ".*", "write": ".*", "read": ".*"}])
    try:
        amqp_min.open_connection(amqp_port, "rq-u", "pw", "rq-v").close()
        c.expect("declared user logs in over AMQP", True)
    except (OSError, ConnectionError, AssertionError) as e:
        c.expect("declared user logs in over AMQP", False, str(e))

    # Definitions: export, delete, import, and everything is back.
    path = os.path.join(tempfile.mkdtemp(prefix="rabbitmqadmin-check-"), "defs.json")
    rc, out, _ = c.admin("export", path)
    c.expect("export", rc == 0 and out.strip().startswith("Exported definitions for")
             and out.strip().endswith(f'to "{path}"'), out)
    defs = json.load(open(path)) if os.path.exists(path) else {}
    c.expect("exported file holds the objects",
             any(q["name"] == "rq-q" for q in defs.get("queues", []))
             and any(x["name"] == "rq-x" for x in defs.get("exchanges", []))
             and any(u["name"] == "rq-u" for u in defs.get("users", [])), defs)
    c.says("binding deleted", "delete", "binding", "source=rq-x", "destination_type=queue",
           "destination=rq-q", "properties_key=a.*")
    c.says("queue deleted", "delete", "queue", "name=rq-q")
    c.says("exchange deleted", "delete", "exchange", "name=rq-x")
    c.says("user deleted", "delete", "user", "name=rq-u")
    c.says("vhost deleted", "delete", "vhost", "name=rq-v")
    c.expect_listing("queues", ["name"], [])
    rc, out, _ = c.admin("import", path)
    c.expect("import", rc == 0 and out.strip().startswith("Uploaded definitions from"), out)
    c.expect_listing("queues", ["name", "durable"], [{"name": "rq-q", "durable": True}], poll=True)
    c.expect_listing("bindings", ["source", "destination", "routing_key"], [
        {"source": "", "destination": "rq-q", "routing_key": "rq-q"},
        {"source": "rq-x", "destination": "rq-q", "routing_key": "a.*"}])
    c.expect_listing("vhosts", ["name"], [{"name": "/"}, {"name": "rq-v"}])
    shutil.rmtree(os.path.dirname(path), ignore_errors=True)

    # Connections: list one and close it; the client sees 320 with rabbitmqadmin's reason.
    sock = amqp_min.open_connection(amqp_port, name="rq-conn")
    name, deadline = None, time.time() + 10
    while name is None and time.time() < deadline:
        conns = c.listing("connections", "name", "user", "vhost") or []
        name = next((x["name"] for x in conns if x.get("user") == "guest"), None)
        if name is None:
            time.sleep(0.25)
    c.expect("list connections", name is not None and " -> 127.0.0.1:" in name, conns)
    if name:
        c.says("connection closed", "close", "connection", f"name={name}")
        closed = amqp_min.wait_close(sock)
        c.expect("closed connection got 320", closed ==
                 (320, "CONNECTION_FORCED - Closed via management plugin"), closed)
    sock.close()

    # Refusals: rabbitmqadmin's messages and exit codes.
    c.says("*** Not found: /api/queues/%2F/nope", "delete", "queue", "name=nope", code=1)
    c.says("*** Not found: /api/connections/nope", "close", "connection", "name=nope", code=1)
    rc, _, err = c.admin("declare", "queue", "name=rq-q", "durable=false")
    c.expect("redeclare with other arguments is refused", rc == 1 and
             "inequivalent arg 'durable' for queue 'rq-q'" in err, err)

    # Clean up what the import brought back.
    for args in (["delete", "queue", "name=rq-q"], ["delete", "exchange", "name=rq-x"],
                 ["delete", "user", "name=rq-u"], ["delete", "vhost", "name=rq-v"]):
        c.admin(*args)
    return c.passed, c.failed


def warren_binary():
    """This tree's `warren` (release if built, else debug), or None."""
    target = management_api.load_runner().cargo_target_dir()
    for profile in ("release", "debug"):
        path = os.path.join(target, profile, "warren")
        if os.path.exists(path):
            return path
    return None


# `warren ctl` commands and the exact stdout each must print (rabbitmqctl 3.10.8's, learnt from
# `rabbitmqctl` on the same kind of node); every one must exit 0.
CTL_STEPS = [
    (["add_user", "ctl-u", "pw"], 'Adding user "ctl-u" ...\nDone. Don\'t forget to grant the '
     "user permissions to some virtual hosts! See 'rabbitmqctl help set_permissions' to learn "
     "more.\n"),
    (["set_user_tags", "ctl-u", "monitoring"], 'Setting tags for user "ctl-u" to [monitoring] ...\n'),
    (["add_vhost", "ctl-v"], 'Adding vhost "ctl-v" ...\n'),
    (["set_permissions", "-p", "ctl-v", "ctl-u", ".*", ".*", ".*"],
     'Setting permissions for user "ctl-u" in vhost "ctl-v" ...\n'),
    (["list_permissions", "-p", "ctl-v", "-q"], "user\tconfigure\twrite\tread\nctl-u\t.*\t.*\t.*\n"
     "guest\t.*\t.*\t.*\n"),
    (["list_users", "-s"], "ctl-u\t[monitoring]\nguest\t[administrator]\n"),
    (["list_queues", "-p", "ctl-v"], "Timeout: 60.0 seconds ...\nListing queues for vhost ctl-v ...\n"),
    (["delete_vhost", "ctl-v"], 'Deleting vhost "ctl-v" ...\n'),
    (["delete_user", "ctl-u"], 'Deleting user "ctl-u" ...\n'),
]

# The policy commands, run when the broker has /api/policies (RabbitMQ; Warren once its
# policies land).
CTL_POLICY_STEPS = [
    (["set_policy", "ctl-p", "^ctl", '{"max-length":10}', "--priority", "3", "--apply-to", "queues"],
     'Setting policy "ctl-p" for pattern "^ctl" to "{"max-length":10}" with priority "3" for '
     'vhost "/" ...\n'),
    (["list_policies", "-q"], 'vhost\tname\tpattern\tapply-to\tdefinition\tpriority\n'
     '/\tctl-p\t^ctl\tqueues\t{"max-length":10}\t3\n'),
    (["list_policies", "--formatter", "json"], '[\n{"vhost":"/","name":"ctl-p","pattern":"^ctl",'
     '"apply-to":"queues","definition":"{\\"max-length\\":10}","priority":3}\n]\n'),
    (["clear_policy", "ctl-p"], 'Clearing policy "ctl-p" on vhost "/" ...\n'),
]


def run_ctl(base):
    """This tree's `warren ctl` as a client of the broker's API: exact stdout of each command.
    (passed, failed); skipped when no `warren` binary is built."""
    binary = warren_binary()
    if not binary:
        print("skip warren ctl: no warren binary built (cargo build --bin warren)")
        return 0, 0
    steps = list(CTL_STEPS)
    if management_api.Api(base).call("GET", "/api/policies/%2F")[0] == 200:
        steps += CTL_POLICY_STEPS
    else:
        print("skip warren ctl policy commands: this broker has no /api/policies yet")
    passed = failed = 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARREN_")}
    for args, want in steps:
        r = subprocess.run([binary, "ctl", "--url", base, *args], capture_output=True,
                           text=True, timeout=60, env=env)
        if r.returncode == 0 and r.stdout == want:
            passed += 1
            print(f"ok   warren ctl {' '.join(args)}")
        else:
            failed += 1
            print(f"FAIL warren ctl {' '.join(args)}: exit {r.returncode}, stdout {r.stdout!r}, "
                  f"stderr {r.stderr!r}, want {want!r}")
    return passed, failed


def run_pyrabbit(base, amqp_port):
    """pyrabbit2 (a PyPI client of the API) against the same broker: conformance/pyrabbit_check.py
    in the conformance venv (conformance/requirements.txt). (passed, failed)."""
    runner = management_api.load_runner()
    runner.ensure_python()
    r = subprocess.run([runner.VENV_PY, os.path.join(HERE, "pyrabbit_check.py"), base,
                        str(amqp_port)], capture_output=True, text=True, timeout=120)
    print(r.stdout, end="")
    print(r.stderr, end="", file=sys.stderr)
    last = (r.stdout.strip().splitlines() or [""])[-1]
    try:
        counts = last.split(":", 1)[1].split(",")
        return int(counts[0].split()[0]), int(counts[1].split()[0])
    except (IndexError, ValueError):
        print(f"FAIL pyrabbit2 run: exit {r.returncode}")
        return 0, 1


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--url", help="base URL of a running broker's management API")
    g.add_argument("--against-rabbitmq", action="store_true")
    g.add_argument("--against-warren", action="store_true")
    ap.add_argument("--amqp-port", type=int, default=5672, help="AMQP port with --url")
    ap.add_argument("--no-pyrabbit", action="store_true",
                    help="skip the pyrabbit2 checks (they need the conformance venv)")
    args = ap.parse_args()
    ensure_rabbitmqadmin()
    broker = None
    started = time.time()
    try:
        if args.url:
            base, amqp_port = args.url, args.amqp_port
        else:
            # Statistics every 500 ms rather than 5 s: RabbitMQ's queue counts in listings
            # lag by one emission.
            broker, base = management_api.start_broker(
                args.against_rabbitmq, extra_conf="collect_statistics_interval = 500\n")
            amqp_port = broker.port
        passed, failed = run(int(base.rstrip("/").rsplit(":", 1)[1]), amqp_port)
        p2, f2 = run_ctl(base)
        passed, failed = passed + p2, failed + f2
        if not args.no_pyrabbit:
            p2, f2 = run_pyrabbit(base, amqp_port)
            passed, failed = passed + p2, failed + f2
    finally:
        if broker:
            broker.stop()
    print(f"rabbitmqadmin ({base}, {time.time() - started:.0f} s): {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
