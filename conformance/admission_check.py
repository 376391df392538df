#!/usr/bin/env python3
"""connection_max, checked against RabbitMQ 3.10 and Warren alike.

    conformance/admission_check.py --against-rabbitmq   # private node with connection_max = 2
    conformance/admission_check.py --against-warren     # this tree's Warren, WARREN_CONNECTION_MAX=2

The connections under the limit open, and a client beyond it gets `connection.start` once a
connection has closed: on both brokers. The one deliberate difference (docs/compatibility.md):
RabbitMQ 3.10.8 does not enforce `connection_max` (Ranch counts its connections as ended at
once: `ranch:info()` shows `all_connections => 0` with six sockets open, and every one of them
is answered), so against RabbitMQ the check is that the extra client IS answered at once, and
against Warren that it is NOT until a connection closes (the listener stops accepting, as
Ranch's `max_connections` is meant to). Should a RabbitMQ release start enforcing it, the
RabbitMQ run fails and the difference can go.
"""

import argparse
import os
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import management_api  # noqa: E402  (the runner loader)

runner = management_api.load_runner()
runner.ensure_python()
if os.path.abspath(sys.executable) != os.path.abspath(runner.VENV_PY):
    os.execv(runner.VENV_PY, [runner.VENV_PY, os.path.abspath(__file__), *sys.argv[1:]])

import pika  # noqa: E402

LIMIT = 2


def answered(sock, wait):
    """True when the broker sends something within `wait` seconds."""
    sock.settimeout(wait)
    try:
        return len(sock.recv(64)) > 0
    except socket.timeout:
        return False
    except OSError:
        return False


def run(port, enforced):
    passed = failed = 0

    def report(name, ok, detail=""):
        nonlocal passed, failed
        if ok:
            passed += 1
            print(f"  ok    {name}")
        else:
            failed += 1
            print(f"  FAIL  {name}: {detail}")

    params = pika.ConnectionParameters("127.0.0.1", port,
                                       credentials=pika.PlainCredentials("guest", "guest"))
    open_ = [pika.BlockingConnection(params) for _ in range(LIMIT)]
    report(f"{LIMIT} connections open under connection_max = {LIMIT}", all(c.is_open for c in open_))

    extra = socket.create_connection(("127.0.0.1", port), timeout=5)
    extra.sendall(b"AMQP\x00\x00\x09\x01")
    early = answered(extra, 2.0)
    if enforced:
        report("one more connects but its protocol header is not answered", not early, early)
    else:
        report("one more is answered at once (RabbitMQ 3.10.8 does not enforce connection_max)",
               early, early)

    open_.pop().close()
    late = early or False
    start = time.time()
    extra.settimeout(10)
    try:
        if early:
            raise StopIteration
        data = extra.recv(64)
        # connection.start: a method frame (type 1) on channel 0, class 10 method 10.
        late = len(data) >= 11 and data[0] == 1 and data[7:11] == b"\x00\x0a\x00\x0a"
    except StopIteration:
        pass
    except OSError as e:
        late = repr(e)
    report("after a connection closes it gets connection.start", late is True,
           (late, round(time.time() - start, 1)))
    extra.close()
    for c in open_:
        c.close()
    return passed, failed


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--against-rabbitmq", action="store_true")
    g.add_argument("--against-warren", action="store_true")
    args = ap.parse_args()
    if args.against_rabbitmq:
        broker = runner.RabbitMQ()
        with open(os.path.join(broker.base, "rabbitmq.conf"), "w") as f:
            f.write(f"connection_max = {LIMIT}\n")
    else:
        os.environ["WARREN_CONNECTION_MAX"] = str(LIMIT)
        broker = runner.Warren()
    broker.start()
    try:
        passed, failed = run(broker.port, enforced=not args.against_rabbitmq)
    finally:
        broker.stop()
    print(f"admission ({'RabbitMQ' if args.against_rabbitmq else 'Warren'}): "
          f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
