#!/usr/bin/env python3
"""Prometheus endpoints (rabbitmq_prometheus, port 15692) checked the same way on RabbitMQ 3.10
and on Warren: every line of a scrape parses as the text exposition format, and the metric
families Warren serves exist on both with the same type and labels.

    conformance/prometheus_check.py --against-rabbitmq   # a private node with both plugins
    conformance/prometheus_check.py --against-warren     # this tree's release build
    conformance/prometheus_check.py --url http://127.0.0.1:15692 --api http://127.0.0.1:15672
"""

import base64
import contextlib
import json
import os
import re
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import checklib  # noqa: E402  (same directory)

# (name, type) of /metrics that both brokers serve; values are not compared (they are live).
AGGREGATED = [
    ("rabbitmq_identity_info", "untyped"),
    ("rabbitmq_build_info", "untyped"),
    ("rabbitmq_connections", "gauge"),
    ("rabbitmq_channels", "gauge"),
    ("rabbitmq_consumers", "gauge"),
    ("rabbitmq_queues", "gauge"),
    ("rabbitmq_process_open_fds", "gauge"),
    ("rabbitmq_process_max_fds", "gauge"),
    ("rabbitmq_process_resident_memory_bytes", "gauge"),
    ("rabbitmq_alarms_memory_used_watermark", "untyped"),
    ("rabbitmq_alarms_free_disk_space_watermark", "untyped"),
    ("rabbitmq_alarms_file_descriptor_limit", "untyped"),
    ("rabbitmq_queue_messages_ready", "gauge"),
    ("rabbitmq_queue_messages_unacked", "gauge"),
    ("rabbitmq_queue_messages", "gauge"),
    ("rabbitmq_queue_consumers", "gauge"),
    ("rabbitmq_queue_messages_bytes", "gauge"),
    ("rabbitmq_queue_messages_ready_bytes", "gauge"),
    ("rabbitmq_queue_messages_unacked_bytes", "gauge"),
    ("rabbitmq_channel_consumers", "gauge"),
    ("rabbitmq_channel_messages_unacked", "gauge"),
    ("rabbitmq_channel_messages_unconfirmed", "gauge"),
    ("rabbitmq_consumer_prefetch", "gauge"),
    ("rabbitmq_channel_prefetch", "gauge"),
    ("rabbitmq_channel_messages_published_total", "counter"),
    ("rabbitmq_channel_messages_confirmed_total", "counter"),
    ("rabbitmq_channel_messages_unroutable_returned_total", "counter"),
    ("rabbitmq_channel_messages_unroutable_dropped_total", "counter"),
    ("rabbitmq_channel_get_ack_total", "counter"),
    ("rabbitmq_channel_get_total", "counter"),
    ("rabbitmq_channel_messages_delivered_ack_total", "counter"),
    ("rabbitmq_channel_messages_delivered_total", "counter"),
    ("rabbitmq_channel_messages_redelivered_total", "counter"),
    ("rabbitmq_channel_messages_acked_total", "counter"),
    ("rabbitmq_channel_get_empty_total", "counter"),
    ("rabbitmq_connection_incoming_bytes_total", "counter"),
    ("rabbitmq_connection_outgoing_bytes_total", "counter"),
    ("rabbitmq_connection_incoming_packets_total", "counter"),
    ("rabbitmq_connection_outgoing_packets_total", "counter"),
    ("rabbitmq_connection_channels", "gauge"),
    ("rabbitmq_queue_messages_published_total", "counter"),
    ("rabbitmq_connections_opened_total", "counter"),
    ("rabbitmq_connections_closed_total", "counter"),
    ("rabbitmq_channels_opened_total", "counter"),
    ("rabbitmq_channels_closed_total", "counter"),
    ("rabbitmq_resident_memory_limit_bytes", "gauge"),
    ("rabbitmq_disk_space_available_bytes", "gauge"),
    ("rabbitmq_disk_space_available_limit_bytes", "gauge"),
    ("rabbitmq_process_open_tcp_sockets", "gauge"),
    ("rabbitmq_process_max_tcp_sockets", "gauge"),
    ("rabbitmq_queues_declared_total", "counter"),
    ("rabbitmq_queues_created_total", "counter"),
    ("rabbitmq_queues_deleted_total", "counter"),
] + [(f"rabbitmq_global_messages_{n}_total", "counter") for n in [
    "acknowledged", "confirmed", "delivered_consume_auto_ack", "delivered_consume_manual_ack",
    "delivered_get_auto_ack", "delivered_get_manual_ack", "delivered", "get_empty", "received",
    "received_confirm", "redelivered", "routed", "unroutable_dropped", "unroutable_returned"]]

# Every metric the queries of RabbitMQ's "RabbitMQ-Overview" Grafana dashboard use (the one
# RabbitMQ's users import; deps/rabbitmq_prometheus/docker/grafana/dashboards/ at v3.10.8,
# extracted from its `expr` and templating queries; rabbitmq_cluster and rabbitmq_node are
# labels). The other dashboards there chart Erlang distribution, allocators, Raft, streams and
# PerfTest: nothing Warren has.
GRAFANA_OVERVIEW = [
    "rabbitmq_build_info", "rabbitmq_identity_info",
    "rabbitmq_channel_consumers", "rabbitmq_channels", "rabbitmq_channels_closed_total",
    "rabbitmq_channels_opened_total", "rabbitmq_connections", "rabbitmq_connections_closed_total",
    "rabbitmq_connections_opened_total", "rabbitmq_consumers", "rabbitmq_disk_space_available_bytes",
    "rabbitmq_global_messages_acknowledged_total", "rabbitmq_global_messages_confirmed_total",
    "rabbitmq_global_messages_delivered_consume_auto_ack_total",
    "rabbitmq_global_messages_delivered_consume_manual_ack_total",
    "rabbitmq_global_messages_delivered_get_auto_ack_total",
    "rabbitmq_global_messages_delivered_get_manual_ack_total",
    "rabbitmq_global_messages_get_empty_total", "rabbitmq_global_messages_received_confirm_total",
    "rabbitmq_global_messages_received_total", "rabbitmq_global_messages_redelivered_total",
    "rabbitmq_global_messages_routed_total", "rabbitmq_global_messages_unroutable_dropped_total",
    "rabbitmq_global_messages_unroutable_returned_total", "rabbitmq_process_max_fds",
    "rabbitmq_process_max_tcp_sockets", "rabbitmq_process_open_fds",
    "rabbitmq_process_open_tcp_sockets", "rabbitmq_process_resident_memory_bytes",
    "rabbitmq_queue_messages_ready", "rabbitmq_queue_messages_unacked", "rabbitmq_queues",
    "rabbitmq_queues_created_total", "rabbitmq_queues_declared_total",
    "rabbitmq_queues_deleted_total", "rabbitmq_resident_memory_limit_bytes",
]

# Values both brokers must show after the check's two API publishes into one queue (the global
# counters include the management API's own publishes in RabbitMQ too).
GLOBAL_AT_LEAST = {
    "rabbitmq_global_messages_received_total": 2,
    "rabbitmq_global_messages_routed_total": 2,
}

# After the check's queue declaration (an API PUT goes through a channel in RabbitMQ too).
NODE_AT_LEAST = {
    "rabbitmq_queues_declared_total": 1,
    "rabbitmq_queues_created_total": 1,
    "rabbitmq_disk_space_available_bytes": 1,
    "rabbitmq_process_max_tcp_sockets": 1,
}

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE = re.compile(rf'^({NAME})(\{{(.*)\}})? (\S+)$')
LABEL = re.compile(rf'\s*({NAME})="((?:[^"\\]|\\.)*)"\s*(,|$)')


def parse(text):
    """{name: (type, help, [(labels, value)])}; raises ValueError on a malformed line."""
    fams = {}
    for no, line in enumerate(text.splitlines(), 1):
        if not line:
            continue
        if line.startswith("# TYPE "):
            name, kind = line[7:].split(" ", 1)
            if kind not in ("gauge", "counter", "untyped", "summary", "histogram"):
                raise ValueError(f"line {no}: type {kind!r}")
            fams.setdefault(name, ["", "", []])[0] = kind
            continue
        if line.startswith("# HELP "):
            name, _, help_ = line[7:].partition(" ")
            fams.setdefault(name, ["", "", []])[1] = help_
            continue
        if line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise ValueError(f"line {no}: {line!r}")
        name, _, labels, value = m.groups()
        float(value)
        parsed, rest = {}, labels or ""
        while rest:
            lm = LABEL.match(rest)
            if not lm:
                raise ValueError(f"line {no}: labels {rest!r}")
            parsed[lm.group(1)] = lm.group(2)
            rest = rest[lm.end():]
        family = next((f for f in (name, re.sub(r"_(count|sum)$", "", name)) if f in fams), None)
        if family is None or not fams[family][0]:
            raise ValueError(f"line {no}: sample before its TYPE: {line!r}")
        fams[family][2].append((parsed, float(value)))
    return fams


def fetch(url, method="GET", body=None):
    """The body of `method url` (as guest for the API; Prometheus ignores the header)."""
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode(),
                                 method=method)
    req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    if body is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read().decode()


def run(prom, api, c):
    def check(name, problems):
        c.check(name, not problems, "; ".join(problems)[:600])

    # A queue with two ready messages, published through the management API.
    fetch(f"{api}/api/queues/%2F/prom-check-q", "PUT", {"durable": False})
    for body in ["ab", "cd"]:
        fetch(f"{api}/api/exchanges/%2F/amq.default/publish", "POST",
              {"properties": {}, "routing_key": "prom-check-q", "payload": body,
               "payload_encoding": "string"})
    deadline = time.time() + 20
    while True:
        per = parse(fetch(f"{prom}/metrics/per-object"))
        mine = [s for s in per.get("rabbitmq_queue_messages_ready", ["", "", []])[2]
                if s[0].get("queue") == "prom-check-q"]
        if (mine and mine[0][1] == 2) or time.time() > deadline:
            break
        time.sleep(0.5)
    for path in ["/metrics", "/metrics/per-object",
                 "/metrics/detailed?family=queue_coarse_metrics&family=channel_metrics"]:
        try:
            parse(fetch(prom + path))
            check(f"{path}: every line parses", [])
        except ValueError as e:
            check(f"{path}: every line parses", [str(e)])
    agg = parse(fetch(f"{prom}/metrics"))
    check("/metrics: names and types", [
        f"{n}: {agg.get(n, ['missing'])[0]}, expected {t}" for n, t in AGGREGATED
        if agg.get(n, [None])[0] != t])
    check("/metrics: HELP on every family", [n for n, _ in AGGREGATED if n in agg and not agg[n][1]])
    check("/metrics: build and identity labels", [
        f"{n} lacks {l}" for n, ls in [("rabbitmq_build_info", ["rabbitmq_version"]),
                                       ("rabbitmq_identity_info", ["rabbitmq_node", "rabbitmq_cluster"])]
        for l in ls if not agg.get(n, ["", "", [({}, 0)]])[2] or l not in agg[n][2][0][0]])
    check("/metrics/per-object: a queue sample with vhost and queue labels",
          [] if mine and mine[0][0].get("vhost") == "/" and mine[0][1] == 2
          else [f"prom-check-q ready samples: {mine}"])
    det = parse(fetch(f"{prom}/metrics/detailed?family=queue_coarse_metrics"))
    dq = [s for s in det.get("rabbitmq_detailed_queue_messages_ready", ["", "", []])[2]
          if s[0].get("queue") == "prom-check-q"]
    check("/metrics/detailed?family=queue_coarse_metrics", [
        *([] if det.get("rabbitmq_detailed_queue_messages_ready", [""])[0] == "gauge"
          else ["no rabbitmq_detailed_queue_messages_ready gauge"]),
        *([] if dq else ["no sample for prom-check-q"]),
        *([] if "rabbitmq_detailed_channel_messages_published_total" not in det
          else ["a family not asked for"]),
    ])
    dv = parse(fetch(f"{prom}/metrics/detailed?family=queue_coarse_metrics&vhost=prom-check-none"))
    check("/metrics/detailed with another vhost has no queue samples",
          [] if not dv.get("rabbitmq_detailed_queue_messages_ready", ["", "", []])[2]
          else ["samples of vhost / were included"])
    # The Grafana dashboard's metrics, on /metrics (where its queries read them).
    missing = {n for n in GRAFANA_OVERVIEW if n not in agg}
    check("/metrics: every metric of RabbitMQ's Grafana overview dashboard",
          [f"missing {n}" for n in sorted(missing)])
    check("/metrics: queue totals, disk space and socket limit have values", [
        f"{n}: {sum(v for _, v in agg.get(n, ['', '', []])[2])}, expected >= {want}"
        for n, want in NODE_AT_LEAST.items()
        if sum(v for _, v in agg.get(n, ["", "", []])[2]) < want])
    # Global counters move at the next statistics emission: poll.
    deadline = time.time() + 20
    while True:
        glob = parse(fetch(f"{prom}/metrics"))
        short = [f"{n}: {sum(v for _, v in glob.get(n, ['', '', []])[2])}, expected >= {want}"
                 for n, want in GLOBAL_AT_LEAST.items()
                 if sum(v for _, v in glob.get(n, ["", "", []])[2]) < want]
        if not short or time.time() > deadline:
            break
        time.sleep(0.5)
    check("/metrics: global message counters count the publishes", short + [
        f"{n} labels {ls}" for n in GLOBAL_AT_LEAST for ls, _ in glob.get(n, ["", "", []])[2]
        if ls.get("protocol") != "amqp091"])
    fetch(f"{api}/api/queues/%2F/prom-check-q", "DELETE")


def main():
    def url_target(ap, g):
        g.add_argument("--url", help="base URL of a running broker's Prometheus listener")
        ap.add_argument("--api", help="with --url: the management API's base URL")

    args = checklib.arguments(__doc__, url_target)
    if args.url:
        scope = contextlib.nullcontext()
        prom, api = args.url, args.api
    else:
        runner = checklib.load_runner()
        if args.against_rabbitmq:
            broker = checklib.rabbitmq(runner, ("rabbitmq_management", "rabbitmq_prometheus"),
                                       "prometheus.tcp.ip = 127.0.0.1\n")
            broker.prometheus_port = runner.free_port()
            with open(os.path.join(broker.base, "rabbitmq.conf"), "a") as f:
                f.write(f"prometheus.tcp.port = {broker.prometheus_port}\n")
        else:
            broker = runner.Warren()
        scope = checklib.started(runner, broker, [broker.management_port, broker.prometheus_port])
        prom = f"http://127.0.0.1:{broker.prometheus_port}"
        api = f"http://127.0.0.1:{broker.management_port}"
    c = checklib.Checks()
    with scope:
        run(prom, api, c)
    checklib.finish(f"prometheus ({prom})", c)


if __name__ == "__main__":
    main()
