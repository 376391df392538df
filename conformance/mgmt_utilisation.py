"""Consumer utilisation (`consumer_utilisation`, `consumer_capacity`) of three queues over real
AMQP: 0 without consumers, close to 1 for a no-ack consumer that keeps up, close to 0 for a
prefetch-1 consumer that never acknowledges while messages keep arriving. RabbitMQ computes the
figure at its stats emission (every 5 s, and not at all once an idle queue hibernates: its last
figure stays), so each case keeps the queue busy and polls until it holds or 30 s pass.
Called by management_api.py with the broker's AMQP port; RabbitMQ is the reference.
Standard library only.
"""

import struct
import threading
import time

from amqp_min import _frame, _method, _shortstr, open_connection

FAST, STUCK, NONE = "mgmt-util-fast", "mgmt-util-stuck", "mgmt-util-none"


def open_channel(sock):
    sock.sendall(_frame(1, 1, struct.pack(">HH", 20, 10) + _shortstr("")))
    assert _method(sock)[:2] == (20, 11), "expected channel.open-ok"


def declare(sock, queue):
    sock.sendall(_frame(1, 1, struct.pack(">HHH", 50, 10, 0) + _shortstr(queue) + b"\x00"
                        + struct.pack(">I", 0)))
    assert _method(sock)[:2] == (50, 11), "expected queue.declare-ok"


def consume(sock, queue, no_ack, prefetch):
    if prefetch:
        sock.sendall(_frame(1, 1, struct.pack(">HHIHB", 60, 10, 0, prefetch, 0)))
        assert _method(sock)[:2] == (60, 11), "expected basic.qos-ok"
    bits = 0x02 if no_ack else 0x00
    sock.sendall(_frame(1, 1, struct.pack(">HHH", 60, 20, 0) + _shortstr(queue)
                        + _shortstr("util") + bytes([bits]) + struct.pack(">I", 0)))
    assert _method(sock)[:2] == (60, 21), "expected basic.consume-ok"


def publish(sock, queue, n):
    method = _frame(1, 1, struct.pack(">HHH", 60, 40, 0) + _shortstr("") + _shortstr(queue) + b"\x00")
    header = _frame(2, 1, struct.pack(">HHQH", 60, 0, 1, 0))
    body = _frame(3, 1, b"u")
    sock.sendall((method + header + body) * n)


def drain(sock):
    """Reads and drops whatever the broker sends until the socket closes."""
    sock.settimeout(None)
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass


def utilisation(api, queue):
    _, _, body = api.call("GET", f"/api/queues/%2F/{queue}")
    if not isinstance(body, dict):
        return None, None
    return body.get("consumer_utilisation", "absent"), body.get("consumer_capacity", "absent")


def run_utilisation(api, amqp_port):
    """(passed, failed)."""
    passed = failed = 0
    socks = []

    def check(name, cond, seen):
        nonlocal passed, failed
        deadline = time.time() + 30
        while True:
            got = seen()
            if cond(*got) or time.time() > deadline:
                break
            time.sleep(0.5)
        if cond(*got):
            passed += 1
            print(f"ok   {name}")
        else:
            failed += 1
            print(f"FAIL {name}: consumer_utilisation, consumer_capacity = {got!r}")

    def num(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    try:
        api.call("PUT", f"/api/queues/%2F/{NONE}", {"durable": False})
        check("utilisation: 0 without consumers",
              lambda u, c: num(u) and num(c) and u == 0 and c == 0, lambda: utilisation(api, NONE))

        fast = open_connection(amqp_port, name="mgmt-util-fast")
        socks.append(fast)
        open_channel(fast)
        declare(fast, FAST)
        consume(fast, FAST, no_ack=True, prefetch=0)
        threading.Thread(target=drain, args=(fast,), daemon=True).start()
        pub = open_connection(amqp_port, name="mgmt-util-pub")
        socks.append(pub)
        open_channel(pub)
        for _ in range(20):
            publish(pub, FAST, 20)
            time.sleep(0.05)
        check("utilisation: a no-ack consumer that keeps up is close to 1",
              lambda u, c: num(u) and num(c) and 0.9 <= u <= 1.0 and abs(u - c) < 0.01,
              lambda: utilisation(api, FAST))

        stuck = open_connection(amqp_port, name="mgmt-util-stuck")
        socks.append(stuck)
        open_channel(stuck)
        declare(stuck, STUCK)
        consume(stuck, STUCK, no_ack=False, prefetch=1)
        publish(pub, STUCK, 5)

        def stuck_seen():
            publish(pub, STUCK, 1)
            return utilisation(api, STUCK)
        check("utilisation: a prefetch-1 consumer that never acks is close to 0",
              lambda u, c: num(u) and num(c) and 0.0 <= u <= 0.1 and abs(u - c) < 0.01, stuck_seen)
    finally:
        for s in socks:
            try:
                s.close()
            except OSError:
                pass
        for q in (FAST, STUCK, NONE):
            api.call("DELETE", f"/api/queues/%2F/{q}")
    return passed, failed
