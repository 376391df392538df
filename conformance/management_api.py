#!/usr/bin/env python3
"""Management HTTP API checks, runnable against RabbitMQ 3.10 and Warren alike.

Each check sends one request and asserts the status code, chosen headers and the JSON fields
clients read (and exact bodies for errors). RabbitMQ is the reference: every check must pass
against it, so an expectation here is RabbitMQ's behaviour, not Warren's.

    conformance/management_api.py --url http://127.0.0.1:15672      # any running broker
    conformance/management_api.py --against-rabbitmq                   # private node + plugin
    conformance/management_api.py --against-warren                     # this tree's Warren

Only the standard library. Uses guest/guest and creates objects named mgmt-check-*.
"""

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

from checklib import load_runner  # noqa: E402,F401  (other scripts import it from here)
from mgmt_stats_checks import run_exchange_stats, run_history, vhost_limit_parameter_checks  # noqa: E402
from mgmt_utilisation import run_utilisation  # noqa: E402
from mgmt_vhost_lists import run_vhost_lists  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


class Api:
    def __init__(self, base):
        self.base = base.rstrip("/")

    def call(self, method, path, body=None, user=("guest", "guest"), headers=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if body is not None:
            req.add_header("content-type", "application/json")
        if user:
            token = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
            req.add_header("authorization", "Basic " + token)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, hdrs, raw = r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            status, hdrs, raw = e.code, e.headers, e.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return status, {k.lower(): v for k, v in hdrs.items()}, parsed


NOT_FOUND = {"error": "Object Not Found", "reason": "Not Found"}
QUEUE_FIELDS = ["name", "vhost", "durable", "auto_delete", "exclusive", "arguments", "node",
                "messages", "messages_ready", "messages_unacknowledged", "consumers", "state"]
OVERVIEW_FIELDS = ["rabbitmq_version", "management_version", "product_name", "node",
                   "object_totals", "queue_totals", "message_stats", "listeners",
                   "cluster_name", "exchange_types"]


def checks():
    """(name, method, path, body, extra headers, user, expectations) in order; each step may
    depend on the previous ones. Expectations: status, json (exact), fields (keys present),
    header (name -> exact value), has_header (names)."""
    q = "/api/queues/%2F/mgmt-check-q"
    x = "/api/exchanges/%2F/mgmt-check-x"
    perm = {"configure": ".*", "write": ".*", "read": ".*"}
    G = ("guest", "guest")
    return [
        ("anonymous is 401 with a challenge", "GET", "/api/overview", None, None, None,
         {"status": 401, "has_header": ["www-authenticate"]}),
        ("wrong password is 401 not_authorized", "GET", "/api/overview", None, None, ("guest", "x"),
         {"status": 401, "json": {"error": "not_authorized", "reason": "Login failed"}}),
        ("anonymous unknown path is 404", "GET", "/api/mgmt-check-nosuch", None, None, None,
         {"status": 404, "json": NOT_FOUND}),
        ("anonymous wrong method is 405", "POST", "/api/overview", {}, None, None, {"status": 405}),
        ("anonymous missing queue is 401", "GET", "/api/queues/%2F/mgmt-check-nosuch", None, None, None,
         {"status": 401, "has_header": ["www-authenticate"]}),
        ("unknown path is 404", "GET", "/api/mgmt-check-nosuch", None, None, G,
         {"status": 404, "json": NOT_FOUND}),
        ("wrong method is 405 with allow", "POST", "/api/overview", {}, None, G,
         {"status": 405, "has_header": ["allow"]}),
        ("overview", "GET", "/api/overview", None, None, G,
         {"status": 200, "fields": OVERVIEW_FIELDS}),
        ("whoami", "GET", "/api/whoami", None, None, G,
         {"status": 200, "json": {"name": "guest", "tags": ["administrator"]}}),
        ("cluster-name", "GET", "/api/cluster-name", None, None, G, {"status": 200, "fields": ["name"]}),
        ("nodes", "GET", "/api/nodes", None, None, G, {"status": 200, "each": ["name", "running"]}),
        ("vhosts", "GET", "/api/vhosts", None, None, G, {"status": 200, "each": ["name", "tracing"]}),
        ("users", "GET", "/api/users", None, None, G,
         {"status": 200, "each": ["name", "password_hash", "hashing_algorithm", "tags"]}),
        ("permissions", "GET", "/api/permissions", None, None, G,
         {"status": 200, "each": ["user", "vhost", "configure", "write", "read"]}),
        ("aliveness", "GET", "/api/aliveness-test/%2F", None, None, G,
         {"status": 200, "json": {"status": "ok"}}),
        ("alarms", "GET", "/api/health/checks/alarms", None, None, G,
         {"status": 200, "json": {"status": "ok"}}),
        ("no listener on port 1", "GET", "/api/health/checks/port-listener/1", None, None, G,
         {"status": 503, "fields": ["status", "reason"]}),
        ("missing queue is 404", "GET", "/api/queues/%2F/mgmt-check-nosuch", None, None, G,
         {"status": 404, "json": NOT_FOUND}),
        ("queue declared: 201", "PUT", q, {"durable": True, "arguments": {"x-max-length": 5}}, None, G,
         {"status": 201}),
        ("queue redeclared: 204", "PUT", q, {"durable": True, "arguments": {"x-max-length": 5}}, None, G,
         {"status": 204}),
        ("paginated queue list", "GET", "/api/queues?page=1&page_size=2&name=MGMT-CHECK-Q&columns=name,vhost", None, None, G,
         {"status": 200, "fields": ["items", "page", "page_count", "page_size", "item_count",
                                    "filtered_count", "total_count"],
          "subset": {"items": [{"name": "mgmt-check-q", "vhost": "/"}], "page": 1, "page_size": 2,
                     "item_count": 1, "filtered_count": 1, "page_count": 1}}),
        ("regex name filter", "GET", "/api/queues?page=1&name=%5Emgmt-check-q%24&use_regex=true&columns=name", None, None, G,
         {"status": 200, "subset": {"items": [{"name": "mgmt-check-q"}]}}),
        ("page out of range: 400", "GET", "/api/queues?page=100000", None, None, G,
         {"status": 400, "fields": ["error", "reason"], "subset": {"error": "page_out_of_range"}}),
        ("inequivalent queue: 400", "PUT", q, {"durable": False}, None, G,
         {"status": 400, "json": {"error": "bad_request", "reason":
          "inequivalent arg 'durable' for queue 'mgmt-check-q' in vhost '/': received 'false' but current is 'true'"}}),
        ("unknown exchange type: 400", "PUT", "/api/exchanges/%2F/mgmt-check-bad", {"type": "bogus"}, None, G,
         {"status": 400, "json": {"error": "bad_request", "reason": "unknown exchange type 'bogus'"}}),
        ("exchange declared: 201", "PUT", x, {"type": "fanout", "durable": True}, None, G, {"status": 201}),
        ("exchange redeclared: 204", "PUT", x, {"type": "fanout", "durable": True}, None, G, {"status": 204}),
        ("sorted exchanges, one column", "GET", "/api/exchanges/%2F?sort=name&sort_reverse=true&columns=name", None, None, G,
         {"status": 200, "first": {"name": "mgmt-check-x"}}),
        ("exchange", "GET", x, None, None, G,
         {"status": 200, "fields": ["name", "vhost", "type", "durable", "auto_delete", "internal", "arguments"]}),
        ("binding created: 201 + location", "POST", "/api/bindings/%2F/e/mgmt-check-x/q/mgmt-check-q",
         {"routing_key": "k1", "arguments": {}}, None, G,
         {"status": 201, "header": {"location": "mgmt-check-q/k1"}}),
        ("binding listed", "GET", "/api/bindings/%2F/e/mgmt-check-x/q/mgmt-check-q", None, None, G,
         {"status": 200, "json": [{"source": "mgmt-check-x", "vhost": "/", "destination": "mgmt-check-q",
                                   "destination_type": "queue", "routing_key": "k1", "arguments": {},
                                   "properties_key": "k1"}]}),
        ("publish routed", "POST", x + "/publish",
         {"routing_key": "k1", "payload": "hello", "payload_encoding": "string", "properties": {}}, None, G,
         {"status": 200, "json": {"routed": True}}),
        ("get requeue", "POST", q + "/get", {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}, None, G,
         {"status": 200, "json": [{"payload_bytes": 5, "redelivered": False, "exchange": "mgmt-check-x",
                                   "routing_key": "k1", "message_count": 0, "properties": [],
                                   "payload": "hello", "payload_encoding": "string"}]}),
        ("queue", "GET", q, None, None, G, {"status": 200, "fields": ["name", "vhost", "durable", "arguments"]}),
        ("delete if-empty refused", "DELETE", q + "?if-empty=true", None, None, G,
         {"status": 400, "json": {"error": "bad_request", "reason": "queue 'mgmt-check-q' in vhost '/' not empty"}}),
        ("purge", "DELETE", q + "/contents", None, None, G, {"status": 204}),
        ("delete if-empty", "DELETE", q + "?if-empty=true", None, None, G, {"status": 204}),
        ("delete missing queue: 404", "DELETE", q, None, None, G, {"status": 404, "json": NOT_FOUND}),
        ("delete exchange", "DELETE", x, None, None, G, {"status": 204}),
        ("delete missing exchange: 404", "DELETE", x, None, None, G, {"status": 404, "json": NOT_FOUND}),
        ("delete amq.direct refused", "DELETE", "/api/exchanges/%2F/amq.direct", None, None, G,
         {"status": 401, "json": {"error": "not_authorised", "reason": "Access refused."}}),
        ("user created: 201", "PUT", "/api/users/mgmt-check-mon", {"password": "pw", "tags": "monitoring"}, None, G,
         {"status": 201}),
        ("user updated: 204", "PUT", "/api/users/mgmt-check-mon", {"password": "pw", "tags": "monitoring"}, None, G,
         {"status": 204}),
        ("user without tags: 400", "PUT", "/api/users/mgmt-check-nopw", {}, None, G,
         {"status": 400, "json": {"error": "bad_request", "reason": "tags_not_present"}}),
        ("plain user", "PUT", "/api/users/mgmt-check-plain", {"password": "pw", "tags": ""}, None, G, {"status": 201}),
        ("plain user may not use the API", "GET", "/api/overview", None, None, ("mgmt-check-plain", "pw"),
         {"status": 401, "json": {"error": "not_authorised", "reason": "Not management user"}}),
        ("monitor reads the overview", "GET", "/api/overview", None, None, ("mgmt-check-mon", "pw"), {"status": 200}),
        ("monitor may not add vhosts", "PUT", "/api/vhosts/mgmt-check-v2", {}, None, ("mgmt-check-mon", "pw"),
         {"status": 401, "json": {"error": "not_authorised", "reason": "Not administrator user"}}),
        ("vhost created: 201", "PUT", "/api/vhosts/mgmt-check-v", {}, None, G, {"status": 201}),
        ("vhost again: 204", "PUT", "/api/vhosts/mgmt-check-v", {}, None, G, {"status": 204}),
        ("permission set: 201", "PUT", "/api/permissions/mgmt-check-v/mgmt-check-mon", perm, None, G, {"status": 201}),
        ("permission for nobody: 400", "PUT", "/api/permissions/mgmt-check-v/mgmt-check-nobody", perm, None, G,
         {"status": 400, "json": {"error": "bad_request", "reason": "vhost_or_user_not_found"}}),
        ("permission", "GET", "/api/permissions/mgmt-check-v/mgmt-check-mon", None, None, G,
         {"status": 200, "json": {"user": "mgmt-check-mon", "vhost": "mgmt-check-v", **perm}}),
        ("permission cleared", "DELETE", "/api/permissions/mgmt-check-v/mgmt-check-mon", None, None, G, {"status": 204}),
        ("vhost deleted", "DELETE", "/api/vhosts/mgmt-check-v", None, None, G, {"status": 204}),
        ("vhost gone: 404", "DELETE", "/api/vhosts/mgmt-check-v", None, None, G, {"status": 404, "json": NOT_FOUND}),
        ("users without permissions", "GET", "/api/users/without-permissions?columns=name", None, None, G,
         {"status": 200, "contains": {"name": "mgmt-check-plain"}}),
        ("bulk delete without users: 400", "POST", "/api/users/bulk-delete", {}, None, G,
         {"status": 400, "json": {"error": "bad_request", "reason": "[{key_missing,users}]"}}),
        ("bulk delete", "POST", "/api/users/bulk-delete", {"users": ["mgmt-check-mon", "mgmt-check-plain"]}, None, G,
         {"status": 204}),
        ("user gone: 404", "DELETE", "/api/users/mgmt-check-mon", None, None, G, {"status": 404, "json": NOT_FOUND}),
        ("definitions", "GET", "/api/definitions", None, None, G,
         {"status": 200, "fields": ["rabbit_version", "users", "vhosts", "permissions", "queues",
                                    "exchanges", "bindings", "policies", "parameters"]}),
    ]


def judge(status, headers, body, want):
    problems = []
    if status != want["status"]:
        problems.append(f"status {status}, expected {want['status']} (body {body!r:.200})")
    for h in want.get("has_header", []):
        if h not in headers:
            problems.append(f"no {h} header")
    for h, v in want.get("header", {}).items():
        if headers.get(h) != v:
            problems.append(f"header {h}: {headers.get(h)!r}, expected {v!r}")
    if "json" in want and body != want["json"]:
        problems.append(f"body {body!r:.300}, expected {want['json']!r:.300}")
    for f in want.get("fields", []):
        if not isinstance(body, dict) or f not in body:
            problems.append(f"no field {f}")
    for k, v in want.get("subset", {}).items():
        if not isinstance(body, dict) or body.get(k) != v:
            problems.append(f"{k}: {body.get(k) if isinstance(body, dict) else body!r:.200}, expected {v!r}")
    if "contains" in want and (not isinstance(body, list) or want["contains"] not in body):
        problems.append(f"{want['contains']!r} not in {body!r:.300}")
    if "first" in want and (not isinstance(body, list) or not body or body[0] != want["first"]):
        problems.append(f"first item {body[0] if isinstance(body, list) and body else body!r:.200}, expected {want['first']!r}")
    for f in want.get("each", []):
        if not isinstance(body, list) or not body or any(f not in item for item in body):
            problems.append(f"not every item has {f}")
    return problems


def run(base, amqp_port=None):
    api = Api(base)
    # A queue's counts appear in RabbitMQ's answer only after its first stats emission, so
    # fields of queues are checked on one that has been there a while (see below).
    passed = failed = 0
    for name, method, path, body, hdrs, user, want in (checks() + policy_checks()
                                                       + vhost_limit_parameter_checks()):
        status, headers, parsed = api.call(method, path, body, user, hdrs)
        problems = judge(status, headers, parsed, want)
        if problems:
            failed += 1
            print(f"FAIL {name}: {'; '.join(problems)}")
        else:
            passed += 1
            print(f"ok   {name}")
    # Queue statistics fields: RabbitMQ fills them in at its next stats emission (5 s).
    api.call("PUT", "/api/queues/%2F/mgmt-check-stats", {"durable": False})
    deadline = time.time() + 15
    missing = QUEUE_FIELDS
    while time.time() < deadline:
        _, _, q = api.call("GET", "/api/queues/%2F/mgmt-check-stats")
        missing = [f for f in QUEUE_FIELDS if not isinstance(q, dict) or f not in q]
        if not missing:
            break
        time.sleep(0.5)
    api.call("DELETE", "/api/queues/%2F/mgmt-check-stats")
    p, f = run_policy_behaviour(api)
    passed, failed = passed + p, failed + f
    if missing:
        failed += 1
        print(f"FAIL queue statistics fields: missing {missing}")
    else:
        passed += 1
        print("ok   queue statistics fields")
    p2, f2 = run_statistics(api)
    p3, f3 = run_exchange_stats(api)
    p4, f4 = run_history(api)
    # Lists of live connections and channels need an AMQP port (not known with --url).
    p5, f5 = run_vhost_lists(api, amqp_port) if amqp_port else (0, 0)
    p6, f6 = run_utilisation(api, amqp_port) if amqp_port else (0, 0)
    return passed + p2 + p3 + p4 + p5 + p6, failed + f2 + f3 + f4 + f5 + f6


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def stats_problems(obj, keys):
    """Each key is a count with a `<key>_details: {"rate": number}` beside it."""
    problems = []
    for k in keys:
        if not is_num(obj.get(k)):
            problems.append(f"{k} is {obj.get(k)!r}")
        d = obj.get(f"{k}_details")
        if not isinstance(d, dict) or not is_num(d.get("rate")):
            problems.append(f"{k}_details is {d!r}")
    return problems


def run_statistics(api):
    """Message statistics after API publishes and a get: counts, field names and types (rates
    are noisy: only their presence and type are checked). RabbitMQ fills them in at its next
    statistics emission (5 s), so each object is polled."""
    q = "/api/queues/%2F/mgmt-check-msgstats"
    api.call("PUT", q, {"durable": False})
    for body in ["one", "two", "three"]:
        api.call("POST", "/api/exchanges/%2F/amq.default/publish",
                 {"properties": {}, "routing_key": "mgmt-check-msgstats", "payload": body,
                  "payload_encoding": "string"})
    api.call("POST", q + "/get", {"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"})
    checks = [
        ("queue message_stats", q, lambda b: b.get("message_stats", {}).get("publish") == 3,
         lambda b: stats_problems(b.get("message_stats", {}), ["publish", "deliver_get"])
         + stats_problems(b, ["messages", "messages_ready", "messages_unacknowledged"])
         + [f"{k} is {b.get(k)!r}" for k in ["message_bytes", "message_bytes_ready",
                                             "message_bytes_unacknowledged"] if not is_num(b.get(k))]
         + ([] if b.get("message_bytes") == 8 and b.get("messages") == 2
            else [f"message_bytes {b.get('message_bytes')}, messages {b.get('messages')}"])
         + ([] if b["message_stats"].get("deliver_get") == 1
            else [f"deliver_get {b['message_stats'].get('deliver_get')}"])),
        ("vhost message_stats", "/api/vhosts/%2F",
         lambda b: (b.get("message_stats", {}).get("publish") or 0) >= 3,
         lambda b: stats_problems(b.get("message_stats", {}), ["publish", "deliver_get"])
         # recv_oct/send_oct appear once the vhost had an AMQP connection (none here).
         + stats_problems(b, ["messages", "messages_ready", "messages_unacknowledged"])),
        ("overview message_stats and queue_totals", "/api/overview",
         lambda b: (b.get("message_stats", {}).get("publish") or 0) >= 3,
         lambda b: stats_problems(b.get("message_stats", {}), ["publish", "deliver_get"])
         + stats_problems(b.get("queue_totals", {}),
                          ["messages", "messages_ready", "messages_unacknowledged"])
         + [f"object_totals.{k}" for k in ["queues", "exchanges", "connections", "channels",
                                           "consumers"]
            if not is_num(b.get("object_totals", {}).get(k))]),
    ]
    passed = failed = 0
    for name, path, ready, problems_of in checks:
        deadline = time.time() + 15
        while True:
            _, _, body = api.call("GET", path)
            if (isinstance(body, dict) and ready(body)) or time.time() > deadline:
                break
            time.sleep(0.5)
        problems = problems_of(body) if isinstance(body, dict) and ready(body) \
            else [f"not ready: {json.dumps(body)[:300]}"]
        if problems:
            failed += 1
            print(f"FAIL {name}: {'; '.join(problems)}")
        else:
            passed += 1
            print(f"ok   {name}")
    api.call("DELETE", q)
    return passed, failed


def policy_checks():
    """Policies, operator policies and parameters: exact bodies and texts (same shape as checks())."""
    G = ("guest", "guest")
    pol = "/api/policies/%2F/pol-check"
    body = {"pattern": "^pol-check-q", "definition": {"message-ttl": 60000, "max-length": 2},
            "priority": 7, "apply-to": "queues"}
    bad = lambda reason: {"status": 400, "json": {"error": "bad_request", "reason": reason}}
    return [
        ("policy created: 201", "PUT", pol, body, None, G, {"status": 201}),
        ("policy updated: 204", "PUT", pol, body, None, G, {"status": 204}),
        ("policy", "GET", pol, None, None, G,
         {"status": 200, "json": {"vhost": "/", "name": "pol-check", "pattern": "^pol-check-q",
                                  "apply-to": "queues", "definition": {"max-length": 2, "message-ttl": 60000},
                                  "priority": 7}}),
        ("policy defaults", "PUT", "/api/policies/%2F/pol-check-low", {"pattern": "^pol-check", "definition": {"max-length": 100, "expires": 600000}},
         None, G, {"status": 201}),
        ("policy defaults shown", "GET", "/api/policies/%2F/pol-check-low", None, None, G,
         {"status": 200, "subset": {"priority": 0, "apply-to": "all"}}),
        ("exchange policy", "PUT", "/api/policies/%2F/pol-check-x", {"pattern": "^pol-check-x$", "definition": {"alternate-exchange": "pae-check"}, "priority": 1, "apply-to": "exchanges"},
         None, G, {"status": 201}),
        ("policies listed by priority", "GET", "/api/policies/%2F?columns=name,priority", None, None, G,
         {"status": 200, "json": [{"name": "pol-check-low", "priority": 0}, {"name": "pol-check-x", "priority": 1},
                                  {"name": "pol-check", "priority": 7}]}),
        ("missing policy: 404", "GET", "/api/policies/%2F/pol-check-nosuch", None, None, G, {"status": 404, "json": NOT_FOUND}),
        ("delete missing policy: 404", "DELETE", "/api/policies/%2F/pol-check-nosuch", None, None, G, {"status": 404, "json": NOT_FOUND}),
        ("policy in missing vhost: 404", "PUT", "/api/policies/pol-check-nosuch/p", body, None, G,
         {"status": 404, "json": {"error": "not_found", "reason": "vhost_not_found"}}),
        ("policy without keys", "PUT", pol, {}, None, G, bad("[{key_missing,pattern},{key_missing,definition}]")),
        ("policy errors in RabbitMQ's order", "PUT", "/api/policies/%2F/pol-check-bad",
         {"pattern": "a", "definition": {"message-ttl": -1, "expires": 0}, "priority": "y", "apply-to": "foo"}, None, G,
         bad("Validation failed\n\n0 is not a valid queue expiry\napply-to 'foo' unrecognised; should be "
             "'queues', 'exchanges' or 'all'\npriority should be a number, actually was &lt;&lt;\"y\"&gt;&gt;\n")),
        ("unknown policy key", "PUT", "/api/policies/%2F/pol-check-bad", {"pattern": "a", "definition": {"bogus": 1}}, None, G,
         bad("Validation failed\n\n[{&lt;&lt;\"bogus\"&gt;&gt;,1}] are not recognised policy settings\n")),
        ("empty definition", "PUT", "/api/policies/%2F/pol-check-bad", {"pattern": "a", "definition": {}}, None, G,
         bad("Validation failed\n\nno policy provided\n")),
        ("bad pattern", "PUT", "/api/policies/%2F/pol-check-bad", {"pattern": "(", "definition": {"max-length": 1}}, None, G,
         bad("Validation failed\n\npattern should be regular expression but is invalid: {\"missing )\",1}\n")),
        ("float limit", "PUT", "/api/policies/%2F/pol-check-bad", {"pattern": "a", "definition": {"max-length": 1.5}}, None, G,
         bad("Validation failed\n\n1.5 is not a valid maximum length\n")),
        ("classic_queues is not 3.10's", "PUT", "/api/policies/%2F/pol-check-bad",
         {"pattern": "a", "definition": {"max-length": 1}, "apply-to": "classic_queues"}, None, G,
         bad("Validation failed\n\napply-to 'classic_queues' unrecognised; should be 'queues', 'exchanges' or 'all'\n")),
        ("operator policy text is not escaped", "PUT", "/api/operator-policies/%2F/pol-check-op",
         {"pattern": "a", "definition": {"overflow": "drop-head"}}, None, G,
         bad("Validation failed\n\n[{<<\"overflow\">>,<<\"drop-head\">>}] are not recognised policy settings\n")),
        ("operator policy created", "PUT", "/api/operator-policies/%2F/pol-check-op",
         {"pattern": "^pol-check-q", "definition": {"expires": 900000, "max-length": 50}, "apply-to": "queues"}, None, G,
         {"status": 201}),
        ("operator policies listed", "GET", "/api/operator-policies/%2F?columns=name,priority", None, None, G,
         {"status": 200, "json": [{"name": "pol-check-op", "priority": 0}]}),
        ("unknown parameter component", "PUT", "/api/parameters/pol-check-comp/%2F/p", {"value": {"a": 1}}, None, G,
         bad("Validation failed\n\ncomponent pol-check-comp not found\n")),
        ("policy through parameters", "PUT", "/api/parameters/policy/%2F/p", {"value": {"a": 1}}, None, G,
         bad("policies may not be set using this method")),
        ("parameter without value", "PUT", "/api/parameters/pol-check-comp/%2F/p", {}, None, G,
         bad("[{key_missing,value}]")),
        ("parameters of a component", "GET", "/api/parameters/pol-check-comp", None, None, G, {"status": 200, "json": []}),
        ("missing parameter", "GET", "/api/parameters/pol-check-comp/%2F/p", None, None, G, {"status": 404, "json": NOT_FOUND}),
        ("global parameter set", "PUT", "/api/global-parameters/pol-check-g", {"value": {"a": [1, 2]}}, None, G, {"status": 201}),
        ("global parameter again", "PUT", "/api/global-parameters/pol-check-g", {"value": "s"}, None, G, {"status": 204}),
        ("global parameter", "GET", "/api/global-parameters/pol-check-g", None, None, G,
         {"status": 200, "json": {"name": "pol-check-g", "value": "s"}}),
        ("global parameter deleted", "DELETE", "/api/global-parameters/pol-check-g", None, None, G, {"status": 204}),
        ("global parameter gone", "DELETE", "/api/global-parameters/pol-check-g", None, None, G, {"status": 404, "json": NOT_FOUND}),
    ]


def run_policy_behaviour(api):
    """What policies do to queues and exchanges, polled because RabbitMQ shows a queue's
    policy fields at its next statistics emission (up to 5 s)."""
    failures = []
    q = "/api/queues/%2F/pol-check-q"

    def publish(exchange, key, payload):
        return api.call("POST", f"/api/exchanges/%2F/{exchange}/publish",
                        {"routing_key": key, "payload": payload, "payload_encoding": "string", "properties": {}})[2]

    def payloads(queue):
        _, _, got = api.call("POST", f"/api/queues/%2F/{queue}/get",
                             {"count": 100, "ackmode": "ack_requeue_true", "encoding": "auto"})
        return [m["payload"] for m in got] if isinstance(got, list) else got

    def eventually(what, fn, want, timeout=15):
        deadline = time.time() + timeout
        got = fn()
        while got != want and time.time() < deadline:
            time.sleep(0.3)
            got = fn()
        if got != want:
            failures.append(f"{what}: {got!r:.300}, expected {want!r:.300}")

    def fields(path, keys):
        _, _, o = api.call("GET", path)
        return {k: o.get(k, "<absent>") for k in keys} if isinstance(o, dict) else o

    # A queue declared after the policies gets them, merged with the operator policy.
    api.call("PUT", q, {"durable": False, "arguments": {"x-max-length": 10, "x-overflow": "reject-publish"}})
    eventually("declared queue's policy fields",
               lambda: fields(q, ["policy", "operator_policy", "effective_policy_definition"]),
               {"policy": "pol-check", "operator_policy": "pol-check-op",
                "effective_policy_definition": {"expires": 900000, "max-length": 2, "message-ttl": 60000}})
    # max-length 2 (the smaller of argument and policy) with the argument's reject-publish.
    for i in range(4):
        publish("amq.default", "pol-check-q", f"m{i}")
    eventually("max-length from the policy, overflow from the argument", lambda: payloads("pol-check-q"), ["m0", "m1"])
    # Lowering the limit live drops nothing under reject-publish; raising it lets more in.
    api.call("PUT", "/api/policies/%2F/pol-check", {"pattern": "^pol-check-q", "definition": {"max-length": 3},
                                                    "priority": 7, "apply-to": "queues"})
    eventually("changed policy shown", lambda: fields(q, ["effective_policy_definition"]),
               {"effective_policy_definition": {"expires": 900000, "max-length": 3}})
    publish("amq.default", "pol-check-q", "m4")
    publish("amq.default", "pol-check-q", "m5")
    eventually("raised limit", lambda: payloads("pol-check-q"), ["m0", "m1", "m4"])
    # Cleared: the lower-priority policy applies, merged with the operator policy (minimums).
    api.call("DELETE", "/api/policies/%2F/pol-check")
    eventually("next policy after clearing", lambda: fields(q, ["policy", "effective_policy_definition"]),
               {"policy": "pol-check-low",
                "effective_policy_definition": {"max-length": 50, "expires": 600000}})
    api.call("DELETE", q)

    # A max-length policy on a queue that holds messages drops from the head at once.
    api.call("PUT", "/api/queues/%2F/pol-check-len", {"durable": False})
    for i in range(5):
        publish("amq.default", "pol-check-len", f"l{i}")
    api.call("PUT", "/api/policies/%2F/pol-check-len", {"pattern": "^pol-check-len$", "definition": {"max-length": 2}, "priority": 50})
    eventually("max-length applied to a queue holding messages", lambda: payloads("pol-check-len"), ["l3", "l4"])
    # A message-ttl policy applies to messages published after it; those already there stay.
    api.call("PUT", "/api/policies/%2F/pol-check-len", {"pattern": "^pol-check-len$", "definition": {"message-ttl": 100}, "priority": 50})
    publish("amq.default", "pol-check-len", "late")
    time.sleep(0.5)
    eventually("message-ttl applies to later messages only", lambda: payloads("pol-check-len"), ["l3", "l4"])
    api.call("DELETE", "/api/policies/%2F/pol-check-len")
    api.call("DELETE", "/api/queues/%2F/pol-check-len")

    # An alternate-exchange policy routes what an exchange cannot.
    api.call("PUT", "/api/exchanges/%2F/pae-check", {"type": "fanout", "durable": False})
    api.call("PUT", "/api/queues/%2F/pae-check-q", {"durable": False})
    api.call("POST", "/api/bindings/%2F/e/pae-check/q/pae-check-q", {"routing_key": "", "arguments": {}})
    api.call("PUT", "/api/exchanges/%2F/pol-check-x", {"type": "direct", "durable": False})
    eventually("exchange shows its policy", lambda: fields("/api/exchanges/%2F/pol-check-x", ["policy"]), {"policy": "pol-check-x"})
    eventually("exchange without policy has no policy field", lambda: fields("/api/exchanges/%2F/pae-check", ["policy"]), {"policy": "<absent>"})
    publish("pol-check-x", "nowhere", "via-ae")
    eventually("alternate exchange from the policy", lambda: payloads("pae-check-q"), ["via-ae"])
    api.call("DELETE", "/api/policies/%2F/pol-check-x")
    api.call("DELETE", "/api/queues/%2F/pae-check-q/contents")
    publish("pol-check-x", "nowhere", "dropped")
    eventually("policy cleared: no alternate", lambda: payloads("pae-check-q"), [])
    for path in ["/api/exchanges/%2F/pol-check-x", "/api/exchanges/%2F/pae-check", "/api/queues/%2F/pae-check-q",
                 "/api/policies/%2F/pol-check-low", "/api/operator-policies/%2F/pol-check-op"]:
        api.call("DELETE", path)
    for f in failures:
        print(f"FAIL {f}")
    if not failures:
        print("ok   policy behaviour (precedence, merge, live limits, alternate exchange)")
    return (0 if failures else 1), len(failures)


# rabbitmqadmin (v1, shipped with Debian's rabbitmq-server) commands and a fragment each output
# must contain; run in order, each must exit 0.
ADMIN_COMMANDS = [
    ("show overview", "rabbitmq_version"),
    ("list vhosts", "/"),
    ("list users", "guest"),
    ("declare queue name=mgmt-admin-q durable=true", "queue declared"),
    ("declare exchange name=mgmt-admin-x type=direct", "exchange declared"),
    ("declare binding source=mgmt-admin-x destination=mgmt-admin-q routing_key=k", "binding declared"),
    ("publish exchange=mgmt-admin-x routing_key=k payload=hello", "Message published"),
    ("list queues name messages", "mgmt-admin-q"),
    ("get queue=mgmt-admin-q ackmode=ack_requeue_false", "hello"),
    ("list exchanges name type", "mgmt-admin-x"),
    ("list bindings", "mgmt-admin-x"),
    ("purge queue name=mgmt-admin-q", "queue purged"),
    ("delete binding source=mgmt-admin-x destination_type=queue destination=mgmt-admin-q properties_key=k",
     "binding deleted"),
    ("delete queue name=mgmt-admin-q", "queue deleted"),
    ("delete exchange name=mgmt-admin-x", "exchange deleted"),
    ("declare user name=mgmt-admin-u password=pw tags=management", "user declared"),
    ("declare vhost name=mgmt-admin-v", "vhost declared"),
    ("declare permission vhost=mgmt-admin-v user=mgmt-admin-u configure=.* write=.* read=.*",
     "permission declared"),
    ("list permissions", "mgmt-admin-u"),
    ("delete vhost name=mgmt-admin-v", "vhost deleted"),
    ("delete user name=mgmt-admin-u", "user deleted"),
    ("list connections", ""),
    ("list consumers", ""),
    ("list nodes", "disc"),
]


def run_rabbitmqadmin(base):
    """The common rabbitmqadmin commands; (passed, failed), or (0, 0) when it is not installed."""
    admin = shutil.which("rabbitmqadmin")
    if not admin:
        print("skip rabbitmqadmin: not installed (apt-get install rabbitmq-server)")
        return 0, 0
    port = base.rsplit(":", 1)[1].strip("/")
    passed = failed = 0
    for cmd, want in ADMIN_COMMANDS:
        r = subprocess.run([admin, "-H", "127.0.0.1", "-P", port, "-u", "guest", "-p", "guest",
                            *cmd.split(" ")], capture_output=True, text=True, timeout=30)
        if r.returncode != 0 or want not in r.stdout:
            failed += 1
            print(f"FAIL rabbitmqadmin {cmd}: exit {r.returncode}: {r.stdout[-300:]} {r.stderr[-300:]}")
        else:
            passed += 1
            print(f"ok   rabbitmqadmin {cmd}")
    return passed, failed


def start_broker(rabbitmq, extra_conf=""):
    """Starts a private RabbitMQ node with the management plugin (`rabbitmq` true) or this
    tree's Warren; returns (broker, base URL of its API). `extra_conf` lines go into the
    RabbitMQ node's rabbitmq.conf. The caller stops the broker."""
    runner = load_runner()
    if rabbitmq:
        broker = runner.RabbitMQ()
        broker.management_port = runner.free_port()
        with open(os.path.join(broker.base, "enabled_plugins"), "w") as f:
            f.write("[rabbitmq_management].\n")
        with open(os.path.join(broker.base, "rabbitmq.conf"), "w") as f:
            f.write(f"management.tcp.port = {broker.management_port}\nmanagement.tcp.ip = 127.0.0.1\n")
            f.write(extra_conf)
    else:
        broker = runner.Warren()
    broker.start()
    if not runner.wait_port(broker.management_port, 60):
        broker.stop()
        raise SystemExit(f"management API did not listen on {broker.management_port}")
    return broker, f"http://127.0.0.1:{broker.management_port}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--url", help="base URL of a running broker's management API")
    g.add_argument("--against-rabbitmq", action="store_true",
                   help="start a private RabbitMQ node with the management plugin")
    g.add_argument("--against-warren", action="store_true", help="build and start this tree's Warren")
    args = ap.parse_args()
    broker = None
    try:
        if args.against_rabbitmq or args.against_warren:
            broker, base = start_broker(args.against_rabbitmq)
        else:
            base = args.url
        passed, failed = run(base, broker.port if broker else None)
        p2, f2 = run_rabbitmqadmin(base)
        passed, failed = passed + p2, failed + f2
    finally:
        if broker:
            broker.stop()
    print(f"management API ({base}): {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
