"""Per-vhost lists of live objects (`/api/vhosts/{v}/channels`, `/api/vhosts/{v}/connections`,
`/api/consumers/{v}`) and one channel (`/api/channels/{name}`), over real AMQP connections:
fields, paging, 404 for an unknown vhost, and who sees what (a `management` user its own
objects, a `monitoring` user everything; a user without access to the vhost is refused).
Called by management_api.py with the broker's AMQP port; RabbitMQ is the reference.
Standard library only.
"""

import struct
import time
import urllib.parse

from amqp_min import _frame, _method, _shortstr, open_connection

V = "mgmt-check-lists"
VQ = urllib.parse.quote(V, safe="")
OWN = ("mgmt-check-own", "pw")
MON = ("mgmt-check-monitor", "pw")
G = ("guest", "guest")
CHANNEL_FIELDS = ["name", "number", "node", "user", "vhost", "state", "consumer_count",
                  "prefetch_count", "global_prefetch_count", "messages_unacknowledged",
                  "messages_unconfirmed", "connection_details"]
NOT_FOUND = {"error": "Object Not Found", "reason": "Not Found"}


def open_channel(sock, n):
    sock.sendall(_frame(1, n, struct.pack(">HH", 20, 10) + _shortstr("")))
    assert _method(sock)[:2] == (20, 11), "expected channel.open-ok"


def consume(sock, channel, queue):
    """Declares `queue` (server-named off) and consumes from it on `channel`."""
    declare = struct.pack(">HHH", 50, 10, 0) + _shortstr(queue) + b"\x00" + struct.pack(">I", 0)
    sock.sendall(_frame(1, channel, declare))
    assert _method(sock)[:2] == (50, 11), "expected queue.declare-ok"
    args = (struct.pack(">HHH", 60, 20, 0) + _shortstr(queue) + _shortstr("mgmt-check-tag")
            + b"\x00" + struct.pack(">I", 0))
    sock.sendall(_frame(1, channel, args))
    assert _method(sock)[:2] == (60, 21), "expected basic.consume-ok"


def setup(api):
    perm = {"configure": ".*", "write": ".*", "read": ".*"}
    api.call("PUT", f"/api/vhosts/{VQ}", {})
    for (user, pw), tags in ((OWN, "management"), (MON, "monitoring")):
        api.call("PUT", f"/api/users/{user}", {"password": pw, "tags": tags})
        api.call("PUT", f"/api/permissions/{VQ}/{user}", perm)
    api.call("PUT", f"/api/permissions/{VQ}/guest", perm)


def teardown(api, socks):
    for s in socks:
        s.close()
    api.call("DELETE", f"/api/vhosts/{VQ}")
    for user, _ in (OWN, MON):
        api.call("DELETE", f"/api/users/{user}")


NOT_YOURS = {"error": "not_authorised", "reason": "User not authorised to access object"}


def run_connection_access(api, check, get, path):
    """One connection, its channels and closing it: someone else's is 401 for a `management`
    user (RabbitMQ checks the owner before the object), readable by a `monitoring` user, whose
    DELETE is 401 too (closing needs `administrator`)."""
    _, _, conns = get(path)
    names = {c.get("user"): c.get("name") for c in conns} if isinstance(conns, list) else {}
    theirs, mine = names.get("guest"), names.get(OWN[0])
    if not theirs or not mine:
        check("one connection: both listed", [f"{conns!r:.300}"])
        return
    q = "/api/connections/" + urllib.parse.quote(theirs, safe="")
    for label, method, p in (("GET", "GET", q), ("channels", "GET", q + "/channels"),
                             ("DELETE", "DELETE", q)):
        status, _, body = api.call(method, p, None, OWN)
        check(f"one connection: someone else's {label} is 401 for a management user",
              [] if (status, body) == (401, NOT_YOURS) else [f"{status} {body!r:.300}"])
    status, _, body = api.call("DELETE", q, None, MON)
    check("one connection: a monitoring user may not close someone else's",
          [] if (status, body) == (401, NOT_YOURS) else [f"{status} {body!r:.300}"])
    status, _, body = get(q, MON)
    check("one connection: a monitoring user may read someone else's",
          [] if status == 200 and body.get("user") == "guest" else [f"{status} {body!r:.300}"])
    status, _, body = get(q + "/channels", MON)
    check("one connection: a monitoring user may list its channels",
          [] if status == 200 and isinstance(body, list) and len(body) == 2
          else [f"{status} {body!r:.300}"])
    status, _, body = get("/api/connections/" + urllib.parse.quote(mine, safe=""), OWN)
    check("one connection: its own is readable by a management user",
          [] if status == 200 and body.get("user") == OWN[0] else [f"{status} {body!r:.300}"])
    # An unknown name: 404 to a user who may read (close) any connection, 500 to anyone else
    # (RabbitMQ's owner check crashes on the missing connection).
    gone = "/api/connections/" + urllib.parse.quote("127.0.0.1:1 -> 127.0.0.1:2", safe="")
    for label, method, p, user, want in (
            ("GET by a management user", "GET", gone, OWN, 500),
            ("channels by a management user", "GET", gone + "/channels", OWN, 500),
            ("DELETE by a management user", "DELETE", gone, OWN, 500),
            ("GET by a monitoring user", "GET", gone, MON, 404),
            ("DELETE by a monitoring user", "DELETE", gone, MON, 500),
            ("DELETE by an administrator", "DELETE", gone, G, 404)):
        status, _, body = api.call(method, p, None, user)
        check(f"one connection: an unknown one, {label}, is {want}",
              [] if status == want else [f"{status} {body!r:.300}"])
    status, _, body = get(path)
    check("one connection: the refused DELETEs closed nothing",
          [] if status == 200 and len(body) == 2 else [f"{status} {body!r:.300}"])


def run_binding_lists(api, check, get):
    """Binding lists are never paged in RabbitMQ 3.10 (`reply_list`): `page`, `page_size`
    and `name` are ignored, `sort` and `columns` apply."""
    api.call("PUT", f"/api/queues/{VQ}/mgmt-check-b1", {})
    api.call("PUT", f"/api/queues/{VQ}/mgmt-check-b2", {})
    api.call("POST", f"/api/bindings/{VQ}/e/amq.direct/q/mgmt-check-b1", {"routing_key": "k1"})
    api.call("POST", f"/api/bindings/{VQ}/e/amq.direct/q/mgmt-check-b1", {"routing_key": "k2"})
    paged = "page=1&page_size=1&name=nothing-matches"
    cases = [
        ("all bindings", f"/api/bindings?{paged}", lambda b: len(b) >= 5),
        ("vhost bindings", f"/api/bindings/{VQ}?{paged}", lambda b: len(b) == 5),
        ("queue bindings", f"/api/queues/{VQ}/mgmt-check-b1/bindings?{paged}", lambda b: len(b) == 3),
        ("exchange source bindings", f"/api/exchanges/{VQ}/amq.direct/bindings/source?{paged}",
         lambda b: len(b) == 2),
        ("bindings between two", f"/api/bindings/{VQ}/e/amq.direct/q/mgmt-check-b1?{paged}",
         lambda b: len(b) == 2),
        ("vhost bindings sorted with columns",
         f"/api/bindings/{VQ}?sort=routing_key&sort_reverse=true&columns=routing_key&page=1",
         lambda b: b == [{"routing_key": k} for k in
                         ["mgmt-check-lists-q", "mgmt-check-b2", "mgmt-check-b1", "k2", "k1"]]),
    ]
    for name, p, good in cases:
        status, _, body = get(p)
        check(f"bindings: {name} are not paged",
              [] if status == 200 and isinstance(body, list) and good(body)
              else [f"{status} {body!r:.400}"])
    api.call("DELETE", f"/api/queues/{VQ}/mgmt-check-b1")
    api.call("DELETE", f"/api/queues/{VQ}/mgmt-check-b2")


def run_vhost_lists(api, amqp_port):
    """(passed, failed)."""
    passed = failed = 0

    def check(name, problems):
        nonlocal passed, failed
        if problems:
            failed += 1
            print(f"FAIL {name}: {'; '.join(str(p) for p in problems)}")
        else:
            passed += 1
            print(f"ok   {name}")

    def get(path, user=G):
        return api.call("GET", path, None, user)

    setup(api)
    guest = open_connection(amqp_port, vhost=V, name="mgmt-check-guest")
    own = open_connection(amqp_port, *OWN, vhost=V, name="mgmt-check-own")
    socks = [guest, own]
    try:
        open_channel(guest, 1)
        open_channel(guest, 2)
        open_channel(own, 1)
        consume(guest, 2, "mgmt-check-lists-q")
        # RabbitMQ lists channels after their first statistics emission (every 5 s).
        path = f"/api/vhosts/{VQ}/channels"
        deadline = time.time() + 30
        while time.time() < deadline:
            status, _, body = get(path)
            if status == 200 and isinstance(body, list) and len(body) == 3 \
                    and any(c.get("consumer_count") == 1 for c in body):
                break
            time.sleep(0.5)
        chans = body if isinstance(body, list) else []
        check("vhost channels: all three for an administrator",
              [] if len(chans) == 3 else [f"{status} {body!r:.300}"])
        check("vhost channels: fields",
              [f"{c.get('name')} lacks {f}" for c in chans for f in CHANNEL_FIELDS if f not in c]
              + [f"{c.get('name')} vhost {c.get('vhost')}" for c in chans if c.get("vhost") != V])
        check("vhost channels: consumer_count of the consuming channel",
              [] if sorted(c.get("consumer_count") for c in chans) == [0, 0, 1] else
              [[c.get("consumer_count") for c in chans]])
        status, _, body = get(path, OWN)
        check("vhost channels: a management user sees its own",
              [] if status == 200 and [c.get("user") for c in body] == [OWN[0]]
              else [f"{status} {body!r:.300}"])
        status, _, body = get(path, MON)
        check("vhost channels: a monitoring user sees all",
              [] if status == 200 and len(body) == 3 else [f"{status} {body!r:.300}"])
        # RabbitMQ's reply_list, not reply_list_or_paginate: paging parameters are ignored.
        status, _, body = get(path + "?page=1&page_size=2&sort=number&sort_reverse=true")
        check("vhost channels: no paging, but sorted",
              [] if status == 200 and isinstance(body, list)
              and [c.get("number") for c in body] == [2, 1, 1] else [f"{status} {body!r:.300}"])
        status, _, body = get("/api/vhosts/mgmt-check-nosuch/channels")
        check("vhost channels: unknown vhost is 404",
              [] if (status, body) == (404, NOT_FOUND) else [f"{status} {body!r:.300}"])
        status, _, body = get("/api/vhosts/%2F/channels", OWN)
        check("vhost channels: a vhost the user may not use is 401",
              [] if (status, body) == (401, {"error": "not_authorised",
                                             "reason": "User not authorised to access virtual host"})
              else [f"{status} {body!r:.300}"])

        path = f"/api/vhosts/{VQ}/connections"
        status, _, body = get(path)
        check("vhost connections: both, with state running",
              [] if status == 200 and len(body) == 2
              and all(c.get("state") == "running" and c.get("vhost") == V for c in body)
              else [f"{status} {body!r:.300}"])
        status, _, body = get(path, OWN)
        check("vhost connections: a management user sees its own",
              [] if status == 200 and [c.get("user") for c in body] == [OWN[0]]
              else [f"{status} {body!r:.300}"])
        status, _, body = get(path + "?page=2&page_size=1&columns=user", MON)
        check("vhost connections: no paging, columns kept, for a monitoring user",
              [] if status == 200 and isinstance(body, list)
              and sorted(c.get("user") for c in body) == sorted(["guest", OWN[0]])
              and all(list(c) == ["user"] for c in body) else [f"{status} {body!r:.300}"])
        status, _, body = get("/api/vhosts/mgmt-check-nosuch/connections")
        check("vhost connections: unknown vhost is 404",
              [] if (status, body) == (404, NOT_FOUND) else [f"{status} {body!r:.300}"])
        run_connection_access(api, check, get, path)
        run_binding_lists(api, check, get)

        status, _, body = get(f"/api/consumers/{VQ}")
        check("vhost consumers: the one consumer",
              [] if status == 200 and len(body) == 1
              and body[0].get("consumer_tag") == "mgmt-check-tag"
              and body[0].get("queue") == {"name": "mgmt-check-lists-q", "vhost": V}
              and body[0].get("channel_details", {}).get("number") == 2
              else [f"{status} {body!r:.300}"])
        status, _, body = get(f"/api/consumers/{VQ}", MON)
        check("vhost consumers: a monitoring user sees it",
              [] if status == 200 and len(body) == 1 else [f"{status} {body!r:.300}"])
        status, _, body = get(f"/api/consumers/{VQ}", OWN)
        check("vhost consumers: a management user sees only its own (none)",
              [] if (status, body) == (200, []) else [f"{status} {body!r:.300}"])
        status, _, body = get("/api/consumers/%2F", OWN)
        check("vhost consumers: a vhost the user may not use is not refused",
              [] if (status, body) == (200, []) else [f"{status} {body!r:.300}"])
        status, _, body = get("/api/consumers?page=1&page_size=1")
        check("all consumers: no paging",
              [] if status == 200 and isinstance(body, list) else [f"{status} {body!r:.300}"])
        status, _, body = get("/api/consumers/mgmt-check-nosuch")
        check("vhost consumers: unknown vhost is 404",
              [] if (status, body) == (404, NOT_FOUND) else [f"{status} {body!r:.300}"])

        mine = next((c["name"] for c in chans if c.get("user") == "guest" and c.get("number") == 2),
                    None)
        if mine is None:
            check("one channel", ["no guest channel 2 listed"])
        else:
            status, _, body = get("/api/channels/" + urllib.parse.quote(mine, safe=""))
            check("one channel: fields",
                  [] if status == 200 and isinstance(body, dict) and body.get("name") == mine
                  and all(f in body for f in CHANNEL_FIELDS) and body.get("consumer_count") == 1
                  else [f"{status} {body!r:.300}"])
            status, _, body = get("/api/channels/" + urllib.parse.quote(mine, safe=""), OWN)
            check("one channel: someone else's is 401 for a management user",
                  [] if (status, body) == (401, {"error": "not_authorised",
                                                 "reason": "User not authorised to access object"})
                  else [f"{status} {body!r:.300}"])
            status, _, body = get("/api/channels/" + urllib.parse.quote(mine, safe=""), MON)
            check("one channel: a monitoring user may read it",
                  [] if status == 200 else [f"{status} {body!r:.300}"])
    finally:
        teardown(api, socks)
    return passed, failed
