#!/usr/bin/env python3
"""TLS throughput and CPU per message: Warren and RabbitMQ 3.10, each plain and over TLS (the
same certificates), `warren-perf throughput` 1P/1C/1Q auto-ack, runs alternated so that
the shared machine's noise falls on every target alike; prints each run and the medians.

    scripts/perf-tls.py --warren target/release/warren --perf target/release/warren-perf \\
        [--sizes 16 1024] [--runs 3] [--duration 8] [--confirm 1000]

`--confirm WINDOW` bounds what the producer has in flight: without it RabbitMQ over TLS falls
behind the producer on a loaded machine, its memory alarm blocks the publisher and the run
cannot stop.

Starts and stops its own brokers on free loopback ports (RabbitMQ through conformance/run's
private node), generates its certificates with openssl in a temporary directory, and removes
everything it made.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "conformance"))
import checklib  # noqa: E402


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certs(d):
    """ca.pem and server.{pem,key} for localhost and 127.0.0.1."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{d}/ca.key",
            "-out", f"{d}/ca.pem", "-days", "2", "-subj", "/CN=perf-tls CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{d}/server.key",
            "-out", f"{d}/server.csr", "-subj", "/CN=localhost")
    with open(f"{d}/server.ext", "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.pem", "-CAkey",
            f"{d}/ca.key", "-CAcreateserial", "-out", f"{d}/server.pem", "-days", "2",
            "-extfile", f"{d}/server.ext")


class Warren:
    def __init__(self, runner, binary, d):
        self.port, self.ssl_port = runner.free_port(), runner.free_port()
        self.runner, self.binary, self.d = runner, binary, d
        self.proc = None

    def start(self):
        config = os.path.join(self.d, "warren.toml")
        with open(config, "w") as f:
            f.write(f'ssl_enabled = true\nssl_port = {self.ssl_port}\n\n[ssl_options]\n'
                    f'cacertfile = "{self.d}/ca.pem"\ncertfile = "{self.d}/server.pem"\n'
                    f'keyfile = "{self.d}/server.key"\nverify = "verify_none"\n')
        env = dict(os.environ, WARREN_CONFIG=config, WARREN_MANAGEMENT_ENABLED="false",
                   WARREN_PROMETHEUS_ENABLED="false")
        self.log = open(os.path.join(self.d, "warren.log"), "w")
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
             "--data-dir", os.path.join(self.d, "warren-data")],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        for p in (self.port, self.ssl_port):
            if not self.runner.wait_port(p, 30):
                raise SystemExit(f"warren did not listen on {p}")

    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(15)


def rabbitmq(runner, d):
    b = runner.RabbitMQ()
    b.ssl_port = runner.free_port()
    with open(os.path.join(b.base, "rabbitmq.conf"), "w") as f:
        f.write(f"listeners.ssl.default = {b.ssl_port}\nssl_options.cacertfile = {d}/ca.pem\n"
                f"ssl_options.certfile = {d}/server.pem\nssl_options.keyfile = {d}/server.key\n"
                "ssl_options.verify = verify_none\nssl_options.fail_if_no_peer_cert = false\n")
    b.pid = lambda: int(open(b.env["RABBITMQ_PID_FILE"]).read().strip())
    return b


def perf(binary, uri, cacert, pid, size, duration, confirm):
    cmd = [binary, "throughput", "--uri", uri, "--producers", "1", "--consumers", "1",
           "--queues", "1", "--size", str(size), "--duration", str(duration),
           "--broker-pid", str(pid), "--json"]
    if uri.startswith("amqps"):
        cmd += ["--cacert", cacert]
    if confirm:
        cmd += ["--confirm", str(confirm)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
    if out.returncode:
        raise SystemExit(f"warren-perf failed: {out.stderr}")
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warren", required=True)
    ap.add_argument("--perf", required=True)
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 1024])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--confirm", type=int, help="publish with confirms, this window")
    args = ap.parse_args()
    runner = checklib.load_runner()
    d = tempfile.mkdtemp(prefix="perf-tls-")
    results = {}
    try:
        make_certs(d)
        w, r = Warren(runner, os.path.abspath(args.warren), d), rabbitmq(runner, d)
        with checklib.started(runner, w), checklib.started(runner, r, [r.ssl_port]):
            targets = [
                ("warren plain", f"amqp://guest:guest@127.0.0.1:{w.port}/%2f", w.pid()),
                ("warren tls", f"amqps://guest:guest@localhost:{w.ssl_port}/%2f", w.pid()),
                ("rabbitmq plain", f"amqp://guest:guest@127.0.0.1:{r.port}/%2f", r.pid()),
                ("rabbitmq tls", f"amqps://guest:guest@localhost:{r.ssl_port}/%2f", r.pid()),
            ]
            for size in args.sizes:
                for run in range(args.runs):
                    for name, uri, pid in targets:
                        rep = perf(args.perf, uri, f"{d}/ca.pem", pid, size, args.duration,
                                   args.confirm)
                        rate = rep["consume_rate"]
                        cpu = rep.get("broker_cpu_us_per_msg")
                        results.setdefault((name, size), []).append((rate, cpu))
                        print(f"size {size} run {run} {name}: {rate:.0f} msg/s, "
                              f"broker CPU {cpu} us/msg", flush=True)
                        time.sleep(1)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("\nmedians (consumed msg/s, broker CPU us per message):")
    for (name, size), rows in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        rate = statistics.median(x for x, _ in rows)
        cpus = [c for _, c in rows if c is not None]
        cpu = statistics.median(cpus) if cpus else None
        print(f"  {size:>5} B  {name:<13} {rate:>9.0f}  {cpu}  (runs: {[round(x) for x, _ in rows]})")


if __name__ == "__main__":
    main()
