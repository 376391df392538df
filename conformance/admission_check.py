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

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checklib  # noqa: E402  (same directory)

runner = checklib.venv(__file__)

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


def run(port, enforced, c):
    report = c.check

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
    for conn in open_:
        conn.close()


def main():
    args = checklib.arguments(__doc__)
    if args.against_rabbitmq:
        broker = runner.RabbitMQ()
        with open(os.path.join(broker.base, "rabbitmq.conf"), "w") as f:
            f.write(f"connection_max = {LIMIT}\n")
    else:
        os.environ["WARREN_CONNECTION_MAX"] = str(LIMIT)
        broker = runner.Warren()
    c = checklib.Checks()
    with checklib.started(runner, broker):
        run(broker.port, not args.against_rabbitmq, c)
    checklib.finish(f"admission ({'RabbitMQ' if args.against_rabbitmq else 'Warren'})", c)


if __name__ == "__main__":
    main()
