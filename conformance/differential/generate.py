"""Random AMQP operation sequences for the differential tester.

A sequence is a list of JSON-able dicts (`{"op": ..., ...}`), self-contained: every name is
spelled with the placeholder prefix `P.` (the executor substitutes a fresh prefix per run), every
delivery tag is chosen by position ("the last delivery this channel received") rather than by
value, so one sequence means the same thing on every broker and in every saved scenario file.

The generator is biased towards operations that touch what earlier operations created, and
mixes in deliberate mistakes (missing entities, inequivalent redeclares, unknown delivery tags,
bad arguments, reserved names, other connections' exclusive queues).
"""

import random

QUEUES = ["P.q0", "P.q1", "P.q2"]
MISSING_QUEUE = "P.no-such-queue"
EXCHANGES = ["P.x0", "P.x1", "P.x2"]
MISSING_EXCHANGE = "P.no-such-exchange"
BUILTIN = ["amq.direct", "amq.fanout", "amq.topic", "amq.headers", ""]
TYPES = ["direct", "fanout", "topic", "headers"]
CHANNELS = [0, 1, 2]  # 0 and 1 on connection A (channels 1 and 2), 2 on connection B (channel 1)
TAGS = ["ct0", "ct1", "ct2"]


def _queue(r, gen_ok=True):
    x = r.random()
    if x < 0.08:
        return MISSING_QUEUE
    if x < 0.16 and gen_ok:
        return "@gen"  # the last server-named queue this run declared ('' before any)
    return r.choice(QUEUES)


def _exchange(r, builtin=True):
    x = r.random()
    if x < 0.07:
        return MISSING_EXCHANGE
    if x < 0.3 and builtin:
        return r.choice(BUILTIN)
    return r.choice(EXCHANGES)


def _rk(r):
    return r.choice(QUEUES + ["a", "a.b", "a.b.c", "#", "*.b", "", "P.q0"])


def _queue_args(r):
    x = r.random()
    if x < 0.55:
        return {}
    good = [
        lambda: {"x-max-length": r.randint(0, 3)},
        lambda: {"x-max-length": r.randint(1, 3),
                 "x-overflow": r.choice(["drop-head", "reject-publish", "reject-publish-dlx"])},
        lambda: {"x-dead-letter-exchange": r.choice(EXCHANGES + ["", "amq.fanout"])},
        lambda: {"x-dead-letter-exchange": r.choice(EXCHANGES + [""]),
                 "x-dead-letter-routing-key": _rk(r)},
        lambda: {"x-max-priority": r.randint(0, 10)},
        lambda: {"x-message-ttl": 600000},
        lambda: {"x-max-length-bytes": r.randint(0, 20)},
        lambda: {"x-queue-mode": "lazy"},
        lambda: {"x-single-active-consumer": r.choice([True, False])},
    ]
    bad = [
        lambda: {"x-max-length": -1},
        lambda: {"x-max-length": "abc"},
        lambda: {"x-queue-type": "bogus"},
        lambda: {"x-overflow": "bogus"},
        lambda: {"x-expires": 0},
        lambda: {"x-message-ttl": -5},
        lambda: {"x-max-priority": 300},
        lambda: {"x-dead-letter-routing-key": "k"},
        lambda: {"x-single-active-consumer": "yes"},
        lambda: {"x-unknown-argument": 1},
    ]
    return r.choice(bad)() if x < 0.65 else r.choice(good)()


def _props(r):
    p = {}
    for name, gen in [
        ("content_type", lambda: r.choice(["text/plain", "application/json", ""])),
        ("content_encoding", lambda: r.choice(["utf-8", "gzip"])),
        ("headers", lambda: _headers(r)),
        ("delivery_mode", lambda: r.choice([1, 2])),
        ("priority", lambda: r.randint(0, 12)),
        ("correlation_id", lambda: "c%d" % r.randint(0, 9)),
        ("reply_to", lambda: r.choice(["P.q1", "reply"])),
        ("expiration", lambda: r.choice(["600000", "600000", "abc", "-1"])),
        ("message_id", lambda: "m%d" % r.randint(0, 99)),
        ("timestamp", lambda: r.randint(0, 2 ** 31)),
        ("type", lambda: "t"),
        # Mostly the right user: a wrong one closes the channel (issue 12 item 7) and would
        # end most sequences early.
        ("user_id", lambda: "someone-else" if r.random() < 0.1 else "guest"),
        ("app_id", lambda: "difftest"),
    ]:
        if r.random() < 0.15:
            p[name] = gen()
    return p


def _headers(r):
    h = {}
    for _ in range(r.randint(0, 3)):
        k = r.choice(["h", "k", "n", "f", "flag", "list", "nested", "CC", "BCC"])
        if k in ("CC", "BCC"):
            h[k] = r.choice([[_rk(r)], [_rk(r), _rk(r)], "not-a-list", [1]])
        else:
            h[k] = r.choice(["v", "w", 1, -7, 2 ** 40, True, 1.5, None, ["a", 2], {"in": "x"}])
    return h


def _bind_args(r):
    if r.random() < 0.7:
        return {}
    return {"x-match": r.choice(["all", "any", "bogus"]), "h": r.choice(["v", "w"])}


def gen_op(r):
    """One random operation."""
    ch = r.choice(CHANNELS)
    kind = r.choices(
        ["qdecl", "xdecl", "qbind", "qunbind", "xbind", "xunbind", "pub", "get", "consume",
         "cancel", "ack", "nack", "reject", "recover", "qos", "confirm", "txselect", "txcommit",
         "txrollback", "purge", "qdelete", "xdelete", "chclose", "connclose", "flow"],
        weights=[10, 6, 8, 3, 2, 2, 20, 8, 5, 2, 6, 3, 3, 1, 2, 1, 1, 1, 1, 2, 2, 1, 1, 0.5, 0.5])[0]
    op = {"op": kind, "ch": ch}
    if kind == "qdecl":
        x = r.random()
        op.update(q="" if x < 0.1 else (MISSING_QUEUE if x < 0.15 else _queue(r)),
                  passive=r.random() < 0.15, durable=r.random() < 0.3,
                  exclusive=r.random() < 0.2, auto_delete=r.random() < 0.2, args=_queue_args(r))
        if r.random() < 0.04:
            # Not CR/LF in queue names: RabbitMQ 3.10 never answers a queue.declare that would
            # create a queue whose name holds CR or LF (the client waits forever; see README).
            op["q"] = "amq.reserved"
    elif kind == "xdecl":
        op.update(x=_exchange(r), type=r.choice(TYPES + (["bogus"] if r.random() < 0.05 else [])),
                  passive=r.random() < 0.15, durable=r.random() < 0.3,
                  auto_delete=r.random() < 0.15, internal=r.random() < 0.1,
                  args=({"alternate-exchange": r.choice(EXCHANGES)} if r.random() < 0.15 else {}))
        if r.random() < 0.04:
            # CR/LF names that RabbitMQ strips to names no other operation uses (P.xcrlf, P.xlf),
            # so a difference stays at operations that spell them.
            op["x"] = r.choice(["amq.custom", "P.xcr\r\nlf", "P.xlf\n"])
    elif kind in ("qbind", "qunbind"):
        op.update(q=_queue(r), x=_exchange(r), rk=_rk(r), args=_bind_args(r))
    elif kind in ("xbind", "xunbind"):
        op.update(dst=_exchange(r), src=_exchange(r), rk=_rk(r))
    elif kind == "pub":
        op.update(x=_exchange(r), rk=_rk(r), body="m%d" % r.randint(0, 999), props=_props(r),
                  mandatory=r.random() < 0.3)
        if r.random() < 0.4:
            op["x"] = ""
            op["rk"] = _queue(r)
    elif kind == "get":
        op.update(q=_queue(r), auto_ack=r.random() < 0.3)
    elif kind == "consume":
        op.update(q=_queue(r), tag=r.choice(TAGS), auto_ack=r.random() < 0.3,
                  exclusive=r.random() < 0.1,
                  args=({"x-priority": r.choice([1, -1, "high"])} if r.random() < 0.1 else {}))
    elif kind == "cancel":
        op.update(tag=r.choice(TAGS))
    elif kind in ("ack", "nack", "reject"):
        op.update(which=r.choice(["last", "last", "first", 0, 1, 2, "bogus", "zero"]),
                  multiple=r.random() < 0.3, requeue=r.random() < 0.5)
        if kind == "reject":
            op.pop("multiple")
        if kind == "ack":
            op.pop("requeue")
    elif kind == "recover":
        op.update(requeue=r.random() < 0.8)
    elif kind == "qos":
        op.update(prefetch_count=r.randint(0, 3), glob=r.random() < 0.3,
                  prefetch_size=(r.choice([0, 0, 0, 0, 10])))
    elif kind == "purge":
        op.update(q=_queue(r))
    elif kind == "qdelete":
        op.update(q=_queue(r), if_unused=r.random() < 0.3, if_empty=r.random() < 0.3)
    elif kind == "xdelete":
        op.update(x=_exchange(r, builtin=r.random() < 0.2), if_unused=r.random() < 0.3)
    elif kind == "flow":
        op.update(active=r.random() < 0.5)
    return op


def gen_sequence(seed, steps):
    """`steps` operations from `seed`, starting with a little topology so that later operations
    have something to act on."""
    r = random.Random(seed)
    ops = []
    for q in r.sample(QUEUES, r.randint(1, 3)):
        ops.append({"op": "qdecl", "ch": 0, "q": q, "passive": False, "durable": False,
                    "exclusive": False, "auto_delete": False, "args": {}})
    for x in r.sample(EXCHANGES, r.randint(0, 2)):
        ops.append({"op": "xdecl", "ch": 0, "x": x, "type": r.choice(TYPES), "passive": False,
                    "durable": False, "auto_delete": False, "internal": False, "args": {}})
    while len(ops) < steps:
        ops.append(gen_op(r))
    return ops
