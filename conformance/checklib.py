"""The harness the stand-alone conformance checks (`*_check.py`, `limits_api.py`) share.

Each check runs one set of scenarios against RabbitMQ 3.10 (`--against-rabbitmq`: a private
node from `conformance/run`) or this tree's Warren (`--against-warren`), counts what passed and
failed, prints one line per check and a summary, and exits 1 when anything failed. What is the
same in all of them lives here:

- `venv(script)`: re-runs the script under the conformance venv (pika and friends) when it was
  started with another Python; returns `conformance/run` loaded as a module (the broker classes).
- `arguments(doc)`: the `--against-rabbitmq` / `--against-warren` command line.
- `rabbitmq(runner, plugins, conf)`: a private RabbitMQ node with the management plugin (and
  any other) listening on free loopback ports.
- `started(runner, broker, ports)`: starts a broker and waits for its ports; stops it after.
- `Checks`: the pass/fail counters; `wait(cond)`: polls until something asynchronous happened.
- `finish(label, checks)`: the summary line and the exit status.

The scenarios themselves stay in each script.
"""

import argparse
import contextlib
import importlib.machinery
import importlib.util
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def load_runner():
    """conformance/run (no .py suffix) as a module, for its broker classes."""
    loader = importlib.machinery.SourceFileLoader("conformance_run", os.path.join(HERE, "run"))
    spec = importlib.util.spec_from_loader("conformance_run", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def venv(script, needs=("pika",)):
    """`conformance/run` as a module, after re-running `script` under the conformance venv
    (created when missing) unless `needs` already import here."""
    runner = load_runner()
    try:
        for name in needs:
            importlib.import_module(name)
        return runner
    except ImportError:
        runner.ensure_python()
        if os.path.abspath(sys.executable) == os.path.abspath(runner.VENV_PY):
            raise SystemExit(f"{', '.join(needs)} missing from the conformance venv")
        os.execv(runner.VENV_PY, [runner.VENV_PY, os.path.abspath(script), *sys.argv[1:]])


def arguments(doc, extra=None):
    """Parses `--against-rabbitmq` | `--against-warren` (one required); `extra(parser, group)`
    may add more options (another mutually exclusive target such as `--url`)."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--against-rabbitmq", action="store_true",
                   help="start a private RabbitMQ 3.10 node (the reference)")
    g.add_argument("--against-warren", action="store_true", help="build and start this tree's Warren")
    if extra:
        extra(ap, g)
    return ap.parse_args()


def rabbitmq(runner, plugins=("rabbitmq_management",), conf=""):
    """A private RabbitMQ node (not started) with `plugins` enabled, the management API on a
    free loopback port (`broker.management_port`) and `conf` appended to its rabbitmq.conf."""
    broker = runner.RabbitMQ()
    broker.management_port = runner.free_port()
    with open(os.path.join(broker.base, "enabled_plugins"), "w") as f:
        f.write(f"[{','.join(plugins)}].\n")
    with open(os.path.join(broker.base, "rabbitmq.conf"), "w") as f:
        f.write(f"management.tcp.port = {broker.management_port}\nmanagement.tcp.ip = 127.0.0.1\n")
        f.write(conf)
    return broker


@contextlib.contextmanager
def started(runner, broker, ports=()):
    """Starts `broker`, waits (60 s) until each of `ports` listens, and stops it on leaving."""
    try:
        broker.start()
        for port in ports:
            if not runner.wait_port(port, 60):
                raise SystemExit(f"nothing listens on {port}")
        yield broker
    finally:
        broker.stop()


class Checks:
    """Pass and fail counts; one line per check (a failure with its detail)."""

    def __init__(self, quiet=False):
        self.passed = 0
        self.failed = 0
        # Quiet: print failures only (the alarms check makes hundreds of small checks).
        self.quiet = quiet

    def check(self, name, ok, detail=""):
        """Counts one check; `ok` is its verdict, `detail` what to print when it failed."""
        if ok:
            self.passed += 1
            if not self.quiet:
                print(f"  ok    {name}")
        else:
            self.failed += 1
            print(f"  FAIL  {name}: {detail}")
        return ok

    # The name several scripts use.
    ok = check

    def add(self, passed, failed):
        """Adds the counts of a sub-run."""
        self.passed += passed
        self.failed += failed


def wait(cond, timeout=10, interval=0.2):
    """Polls `cond` until true (brokers track connections, queues and alarms asynchronously);
    whether it became true within `timeout` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(interval)
    return False


def finish(label, checks):
    """Prints `label: N passed, M failed` and exits, 1 when anything failed."""
    print(f"{label}: {checks.passed} passed, {checks.failed} failed")
    sys.exit(1 if checks.failed else 0)
