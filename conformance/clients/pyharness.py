"""Shared harness of the Python client scenario files.

A scenario file registers functions with @scenario("name"); main() runs them:

    python pika_scenarios.py URL NAME|all|list

and prints one JSON line per scenario:
    {"scenario": ..., "status": "pass"|"fail"|"skip", "detail": ...}
A scenario passes by returning (an optional detail string), is skipped by raising Skip,
and fails by raising anything else.
"""

import json
import os
import sys
import time
import traceback

SCENARIOS = {}


class Skip(Exception):
    pass


class Fail(AssertionError):
    pass


def scenario(name):
    def deco(fn):
        SCENARIOS[name] = fn
        return fn

    return deco


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def eq(got, want, what):
    if got != want:
        raise Fail(f"{what}: got {got!r}, want {want!r}")


def wait_until(pred, timeout=5.0, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


def unique(prefix):
    return f"conf.{prefix}.{os.getpid()}.{os.urandom(4).hex()}"


def emit(name, status, detail):
    print(json.dumps({"scenario": name, "status": status, "detail": detail}), flush=True)


def main(ctx_factory=None):
    if len(sys.argv) < 3:
        print(f"usage: {sys.argv[0]} URL SCENARIO|all|list", file=sys.stderr)
        sys.exit(2)
    url, which = sys.argv[1], sys.argv[2]
    if which == "list":
        for n in SCENARIOS:
            print(n)
        return
    names = list(SCENARIOS) if which == "all" else [which]
    for name in names:
        fn = SCENARIOS.get(name)
        if fn is None:
            emit(name, "skip", "not implemented for this client")
            continue
        t0 = time.monotonic()
        try:
            detail = fn(url)
            emit(name, "pass", f"{detail or ''} ({time.monotonic() - t0:.2f}s)".strip())
        except Skip as e:
            emit(name, "skip", str(e))
        except Fail as e:
            emit(name, "fail", str(e))
        except Exception as e:  # noqa: BLE001 - any client error is a failure
            tb = traceback.format_exc(limit=3).strip().splitlines()
            emit(name, "fail", f"{type(e).__name__}: {e!r} | {' / '.join(tb[-3:])}")
