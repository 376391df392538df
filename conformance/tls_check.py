#!/usr/bin/env python3
"""TLS checked the same way on RabbitMQ 3.10 and on Warren, with two client libraries (pika and
Node's amqplib): amqps with the server verified against a CA, TLS 1.2 and 1.3, client
certificates under verify_peer, SASL EXTERNAL (the user named by the certificate's distinguished
name, RabbitMQ's default `ssl_cert_login_from`), its refusals (no certificate, unknown user), a
certificate from another CA refused, fail_if_no_peer_cert, and the management API over HTTPS.

    conformance/tls_check.py --against-rabbitmq   # a private node, its own rabbitmq.conf
    conformance/tls_check.py --against-warren     # this tree's release build, its own TOML file

Certificates are made at run time with the openssl command (Debian's), never committed. Two
phases: verify_peer without, then with, fail_if_no_peer_cert (each starts its broker).
"""

import base64
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import checklib  # noqa: E402  (same directory)
VENV_PY = os.path.join(HERE, ".deps", "venv", "bin", "python")
NODE_MODULES = os.path.join(HERE, "node", "node_modules")
# The distinguished name RabbitMQ derives from the client certificate's subject
# /C=US/O=Acme, Inc./CN=tls-client: last RDN first, `,` escaped.
CLIENT_DN = "CN=tls-client,O=Acme\\, Inc.,C=US"
REFUSED = ("ACCESS_REFUSED - Login was refused using authentication mechanism EXTERNAL. "
           "For details see the broker logfile.")


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_certs(d):
    """ca.pem, server.{pem,key} for localhost/127.0.0.1, client.{pem,key} and, from another CA,
    rogue.{pem,key}."""
    for ca in ("ca", "rogue-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{d}/{ca}.key",
                "-out", f"{d}/{ca}.pem", "-days", "2", "-subj", f"/CN=Warren check {ca}")
    for name, ca, subj, san in [
        ("server", "ca", "/CN=localhost", "DNS:localhost,IP:127.0.0.1"),
        ("client", "ca", "/C=US/O=Acme, Inc./CN=tls-client", "DNS:client.example"),
        ("rogue", "rogue-ca", "/CN=tls-client", "DNS:client.example"),
    ]:
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{d}/{name}.key",
                "-out", f"{d}/{name}.csr", "-subj", subj)
        with open(f"{d}/{name}.ext", "w") as f:
            f.write(f"subjectAltName={san}\n")
        openssl("x509", "-req", "-in", f"{d}/{name}.csr", "-CA", f"{d}/{ca}.pem", "-CAkey",
                f"{d}/{ca}.key", "-CAcreateserial", "-out", f"{d}/{name}.pem", "-days", "2",
                "-extfile", f"{d}/{name}.ext")


# ------------------------------------------------------------------ brokers


def rabbitmq(runner, d, fail_if_no_peer_cert):
    b = runner.RabbitMQ()
    b.ssl_port, b.management_port, b.management_ssl_port = (runner.free_port() for _ in range(3))
    with open(os.path.join(b.base, "enabled_plugins"), "w") as f:
        f.write("[rabbitmq_management,rabbitmq_auth_mechanism_ssl].\n")
    with open(os.path.join(b.base, "rabbitmq.conf"), "w") as f:
        f.write(f"""listeners.ssl.default = {b.ssl_port}
ssl_options.cacertfile = {d}/ca.pem
ssl_options.certfile = {d}/server.pem
ssl_options.keyfile = {d}/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = {str(fail_if_no_peer_cert).lower()}
auth_mechanisms.1 = PLAIN
auth_mechanisms.2 = AMQPLAIN
auth_mechanisms.3 = EXTERNAL
management.tcp.port = {b.management_port}
management.tcp.ip = 127.0.0.1
management.ssl.port = {b.management_ssl_port}
management.ssl.ip = 127.0.0.1
management.ssl.cacertfile = {d}/ca.pem
management.ssl.certfile = {d}/server.pem
management.ssl.keyfile = {d}/server.key
""")
    return b


def warren(runner, d, fail_if_no_peer_cert):
    b = runner.Warren()
    b.ssl_port, b.management_ssl_port = runner.free_port(), runner.free_port()
    path = os.path.join(b.data, "warren.toml")
    with open(path, "w") as f:
        f.write(f"""ssl_enabled = true
ssl_port = {b.ssl_port}
auth_mechanisms = ["PLAIN", "AMQPLAIN", "EXTERNAL"]

[ssl_options]
cacertfile = "{d}/ca.pem"
certfile = "{d}/server.pem"
keyfile = "{d}/server.key"
verify = "verify_peer"
fail_if_no_peer_cert = {str(fail_if_no_peer_cert).lower()}

[management_ssl]
enabled = true
port = {b.management_ssl_port}
cacertfile = "{d}/ca.pem"
certfile = "{d}/server.pem"
keyfile = "{d}/server.key"
""")
    b.extra_env = {"WARREN_CONFIG": path}
    return b


# ------------------------------------------------------------------ clients

PIKA = r'''
import json, ssl, sys, pika
port, d, mode, version = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = ssl.create_default_context(cafile=f"{d}/ca.pem")
if version == "1.2":
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
elif version == "1.3":
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
if mode in ("external", "plain-cert"):
    ctx.load_cert_chain(f"{d}/client.pem", f"{d}/client.key")
elif mode == "rogue":
    ctx.load_cert_chain(f"{d}/rogue.pem", f"{d}/rogue.key")
creds = (pika.credentials.ExternalCredentials() if mode in ("external", "external-nocert")
         else pika.PlainCredentials("guest", "guest"))
params = pika.ConnectionParameters(host="127.0.0.1", port=port, credentials=creds,
                                   ssl_options=pika.SSLOptions(ctx, "localhost"),
                                   connection_attempts=1, socket_timeout=10)
try:
    conn = pika.BlockingConnection(params)
except pika.exceptions.ProbableAccessDeniedError as e:
    print(json.dumps({"result": "refused", "text": str(e.args[1]) if len(e.args) > 1 else str(e)})); sys.exit()
except pika.exceptions.ProbableAuthenticationError as e:
    print(json.dumps({"result": "refused", "text": str(e.args[1]) if len(e.args) > 1 else str(e)})); sys.exit()
except pika.exceptions.AMQPConnectionError as e:
    print(json.dumps({"result": "no-connection", "text": repr(e)})); sys.exit()
ch = conn.channel()
q = ch.queue_declare("", exclusive=True).method.queue
ch.basic_publish("", q, b"over tls")
body = None
for _ in range(50):
    m, p, body = ch.basic_get(q, auto_ack=True)
    if m:
        break
    conn.sleep(0.05)
version = conn._impl._transport._sock.version()
conn.close()
print(json.dumps({"result": "ok", "body": body.decode() if body else None, "tls": version}))
'''

AMQPLIB = r'''
const amqp = require('amqplib');
const fs = require('fs');
const [port, d, mode] = process.argv.slice(-3);
const opts = {ca: [fs.readFileSync(`${d}/ca.pem`)], servername: 'localhost'};
if (mode === 'external' || mode === 'plain-cert') {
  opts.cert = fs.readFileSync(`${d}/client.pem`);
  opts.key = fs.readFileSync(`${d}/client.key`);
}
if (mode.startsWith('external')) opts.credentials = amqp.credentials.external();
const user = mode.startsWith('external') ? '' : 'guest:guest@';
(async () => {
  let conn;
  try {
    conn = await amqp.connect(`amqps://${user}127.0.0.1:${port}/`, opts);
  } catch (e) {
    const text = String(e.message || e);
    console.log(JSON.stringify({result: text.includes('ACCESS_REFUSED') ? 'refused' : 'no-connection', text}));
    return;
  }
  const ch = await conn.createChannel();
  const q = (await ch.assertQueue('', {exclusive: true})).queue;
  ch.sendToQueue(q, Buffer.from('over tls'));
  let m = false;
  for (let i = 0; i < 50 && !m; i++) {
    m = await ch.get(q, {noAck: true});
    if (!m) await new Promise(r => setTimeout(r, 50));
  }
  await conn.close();
  console.log(JSON.stringify({result: 'ok', body: m ? m.content.toString() : null}));
})().catch(e => { console.log(JSON.stringify({result: 'error', text: String(e)})); });
'''


def run_client(kind, port, d, mode, version="any"):
    if kind == "pika":
        cmd = [VENV_PY, "-c", PIKA, str(port), d, mode, version]
        env = dict(os.environ)
    else:
        cmd = ["node", "-e", AMQPLIB, "--", str(port), d, mode]
        env = dict(os.environ, NODE_PATH=NODE_MODULES)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    except subprocess.TimeoutExpired:
        return {"result": "timeout"}
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"result": "crash", "text": (r.stderr or r.stdout)[-400:]}
    return json.loads(lines[-1])


# ------------------------------------------------------------------ HTTPS


def https(port, d, method, path, body=None):
    ctx = ssl.create_default_context(cafile=f"{d}/ca.pem")
    req = urllib.request.Request(f"https://localhost:{port}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    if body is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
            raw = r.read()
            return r.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        return e.code, None


# ------------------------------------------------------------------ checks


def phase_verify_peer(c, b, d):
    port = b.ssl_port
    for kind in ("pika", "amqplib"):
        r = run_client(kind, port, d, "plain")
        c.check(f"{kind}: PLAIN over TLS, server verified by CA",
                r.get("result") == "ok" and r.get("body") == "over tls", r)
        r = run_client(kind, port, d, "plain-cert")
        c.check(f"{kind}: PLAIN over TLS with a client certificate",
                r.get("result") == "ok", r)
    for version, want in (("1.2", "TLSv1.2"), ("1.3", "TLSv1.3")):
        r = run_client("pika", port, d, "plain", version)
        c.check(f"pika: TLS {version}", r.get("result") == "ok" and r.get("tls") == want, r)
    # EXTERNAL before the certificate's user exists: refused with RabbitMQ's text.
    for kind in ("pika", "amqplib"):
        r = run_client(kind, port, d, "external")
        c.check(f"{kind}: EXTERNAL for an unknown user is refused",
                r.get("result") == "refused" and REFUSED in r.get("text", ""), r)
        r = run_client(kind, port, d, "external-nocert")
        c.check(f"{kind}: EXTERNAL without a client certificate is refused",
                r.get("result") == "refused" and REFUSED in r.get("text", ""), r)
    # The user named by the DN, made through the management API over HTTPS.
    status, overview = https(b.management_ssl_port, d, "GET", "/api/overview")
    protocols = {(l.get("protocol"), l.get("port")) for l in (overview or {}).get("listeners", [])}
    c.check("HTTPS management API: GET /api/overview", status == 200, status)
    c.check("overview lists the amqp/ssl and https listeners",
            ("amqp/ssl", port) in protocols and ("https", b.management_ssl_port) in protocols,
            protocols)
    user = urllib.parse.quote(CLIENT_DN, safe="")
    s1, _ = https(b.management_ssl_port, d, "PUT", f"/api/users/{user}",
                  {"password": "unused-x", "tags": ""})
    s2, _ = https(b.management_ssl_port, d, "PUT", f"/api/permissions/%2F/{user}",
                  {"configure": ".*", "write": ".*", "read": ".*"})
    c.check("HTTPS management API: PUT user and permissions", (s1, s2) == (201, 201), (s1, s2))
    for kind in ("pika", "amqplib"):
        r = run_client(kind, port, d, "external")
        c.check(f"{kind}: EXTERNAL logs in {CLIENT_DN}",
                r.get("result") == "ok" and r.get("body") == "over tls", r)
    r = run_client("pika", port, d, "rogue")
    c.check("a client certificate from another CA fails the TLS handshake",
            r.get("result") == "no-connection", r)


def phase_fail_if_no_peer_cert(c, b, d):
    for kind in ("pika", "amqplib"):
        r = run_client(kind, b.ssl_port, d, "plain")
        c.check(f"{kind}: fail_if_no_peer_cert refuses a client without a certificate",
                r.get("result") == "no-connection", r)
        r = run_client(kind, b.ssl_port, d, "plain-cert")
        c.check(f"{kind}: fail_if_no_peer_cert admits a client with one",
                r.get("result") == "ok", r)


def main():
    args = checklib.arguments(__doc__)
    runner = checklib.load_runner()
    runner.ensure_python()
    runner.ensure_node()
    d = tempfile.mkdtemp(prefix="tls-check-")
    c = checklib.Checks()
    make = rabbitmq if args.against_rabbitmq else warren
    try:
        make_certs(d)
        for fail, phase in ((False, phase_verify_peer), (True, phase_fail_if_no_peer_cert)):
            b = make(runner, d, fail)
            with checklib.started(runner, b, [b.ssl_port, b.management_ssl_port]):
                print(f"{b.version()}: verify_peer, fail_if_no_peer_cert = {str(fail).lower()}")
                phase(c, b, d)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    checklib.finish("tls", c)


if __name__ == "__main__":
    main()
