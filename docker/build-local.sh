#!/usr/bin/env bash
# The container image, proven end to end on a machine that has podman but cannot pull images
# from a registry (this project's machines): makes the base images from Debian's packages,
# builds docker/Dockerfile, runs the container, waits for its HEALTHCHECK, publishes and
# consumes a persistent message with pika from the host through the published port, restarts
# the container and finds the message again in the volume, then removes everything it made.
#
#   docker/build-local.sh [--source | --prebuilt] [--keep]
#
#   --source    (default) the Dockerfile's Rust builder stage compiles Warren inside the build,
#               on a local Rust base image made from debootstrap plus the host's toolchain
#               (the toolchain rustc on the PATH belongs to; crates come from crates.io)
#   --prebuilt  `--target prebuilt`: the image gets the host's target/release/warren (built here
#               with `cargo build --release --locked --bin warren` if missing); fast
#   --keep      leave the image, container and volume for inspection
#
# Needs root; installs podman, runc (for hosts with cgroups v1/hybrid), debootstrap and python3
# from Debian's packages when missing. The base images stay in podman's storage
# (localhost/warren-base/*; `podman rmi` them to start over), the pika venv in
# $WARREN_DOCKER_WORK (default /var/tmp/warren-docker). Exit status 0 only if every step passed. Not part of scripts/test-all (minutes, and needs podman): see docs/operations.md.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
MODE=source
KEEP=0
for arg in "$@"; do
    case "$arg" in
        --source) MODE=source ;;
        --prebuilt) MODE=prebuilt ;;
        --keep) KEEP=1 ;;
        *) echo "usage: $0 [--source|--prebuilt] [--keep]" >&2; exit 2 ;;
    esac
done

# Debian's packages for what is missing (the engine, runc for cgroups v1 hosts, debootstrap).
missing=()
for tool in podman runc debootstrap python3; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing ${missing[*]} (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" python3-venv >/dev/null
fi

WORK="${WARREN_DOCKER_WORK:-/var/tmp/warren-docker}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
TAG="localhost/warren:proof-$$"
NAME="warren-proof-$$"
VOLUME="warren-proof-data-$$"
DEBIAN_BASE=localhost/warren-base/debian:bookworm-slim
RUST_BASE=localhost/warren-base/rust:bookworm
mkdir -p "$WORK"

step() { printf '\n== %s (%s)\n' "$*" "$(date -u +%T)"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# Host quirks, detected rather than assumed. With cgroups v1 or hybrid (no cgroup.controllers
# at the root), crun refuses to start containers: use runc. Without CAP_SYS_RESOURCE podman's
# default ulimits (nofile 1048576) cannot be set: ask for the host's own hard limit instead.
PODMAN=(podman)
RUN_FLAGS=()
if [ ! -e /sys/fs/cgroup/cgroup.controllers ] && command -v runc >/dev/null; then
    PODMAN+=(--runtime runc)
fi
CAP_EFF="$(awk '/^CapEff/ {print $2}' /proc/self/status)"
if [ $(( (0x${CAP_EFF:-0} >> 24) & 1 )) -eq 0 ]; then # bit 24: CAP_SYS_RESOURCE
    RUN_FLAGS+=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit nproc=4096:4096)
fi

cleanup() {
    if [ "$KEEP" = 1 ]; then
        echo "kept: container $NAME, volume $VOLUME, image $TAG"
        return
    fi
    "${PODMAN[@]}" rm -f -t 5 "$NAME" >/dev/null 2>&1 || true
    "${PODMAN[@]}" volume rm -f "$VOLUME" >/dev/null 2>&1 || true
    "${PODMAN[@]}" rmi -f "$TAG" >/dev/null 2>&1 || true
    rm -rf "$WORK/context-$$"
}
trap cleanup EXIT

# A root filesystem from Debian's packages, imported as an image (cached).
make_base() {
    local image=$1 dir=$2 include=$3
    shift 3
    if "${PODMAN[@]}" image exists "$image"; then
        echo "$image: cached"
        return
    fi
    rm -rf "$dir"
    debootstrap --variant=minbase ${include:+--include="$include"} bookworm "$dir" "$MIRROR" \
        >"$dir.log" 2>&1 || { tail -20 "$dir.log"; fail "debootstrap $image"; }
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
    "$@" # extra setup of the tree
    tar -C "$dir" -c . | "${PODMAN[@]}" import \
        --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV CARGO_HOME=/usr/local/cargo' \
        --change 'CMD ["/bin/bash"]' - "$image" >/dev/null
    rm -rf "$dir"
    echo "$image: made from $MIRROR"
}

# The host's Rust toolchain (its bin and lib; docs left out) as /usr/local/cargo, and the
# host's CA bundle: a host behind a TLS-inspecting proxy reaches crates.io only with its CA.
add_rust() {
    local sysroot
    sysroot="$(rustc --print sysroot)"
    mkdir -p "$WORK/rustfs/usr/local/cargo"
    cp -a "$sysroot/bin" "$sysroot/lib" "$WORK/rustfs/usr/local/cargo/"
    cp /etc/ssl/certs/ca-certificates.crt "$WORK/rustfs/etc/ssl/certs/ca-certificates.crt"
}

step "base images"
make_base "$DEBIAN_BASE" "$WORK/debianfs" "" true
if [ "$MODE" = source ]; then
    make_base "$RUST_BASE" "$WORK/rustfs" gcc,libc6-dev,ca-certificates add_rust
    "${PODMAN[@]}" run --rm "${RUN_FLAGS[@]}" "$RUST_BASE" cargo --version
fi

step "build docker/Dockerfile ($MODE)"
BUILD=("${PODMAN[@]}" build --format docker "${RUN_FLAGS[@]}" -f "$ROOT/docker/Dockerfile"
    --build-arg DEBIAN_IMAGE="$DEBIAN_BASE" -t "$TAG")
start=$(date +%s)
if [ "$MODE" = source ]; then
    # Host networking for the builder's crates.io downloads: the default bridge needs
    # nothing else, but some hosts filter forwarded traffic.
    "${BUILD[@]}" --network host --build-arg RUST_IMAGE="$RUST_BASE" "$ROOT"
else
    if [ ! -x "$ROOT/target/release/warren" ]; then
        (cd "$ROOT" && cargo build --release --locked --bin warren)
    fi
    mkdir -p "$WORK/context-$$"
    cp "$ROOT/target/release/warren" "$WORK/context-$$/warren"
    "${BUILD[@]}" --target prebuilt "$WORK/context-$$"
fi
echo "built $TAG in $(( $(date +%s) - start )) s"
"${PODMAN[@]}" image inspect "$TAG" --format \
    'user={{.Config.User}} volumes={{.Config.Volumes}} ports={{.Config.ExposedPorts}} healthcheck={{.Config.Healthcheck.Test}}'

step "run"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
AMQP=$(free_port) HTTP=$(free_port) PROM=$(free_port)
"${PODMAN[@]}" volume create "$VOLUME" >/dev/null
# podman schedules periodic health checks with systemd timers; without systemd it logs
# "unable to get systemd connection" (harmless) and `podman healthcheck run` below runs the
# image's HEALTHCHECK on demand.
"${PODMAN[@]}" run -d --name "$NAME" "${RUN_FLAGS[@]}" --health-interval=disable \
    -p "127.0.0.1:$AMQP:5672" -p "127.0.0.1:$HTTP:15672" -p "127.0.0.1:$PROM:15692" \
    -v "$VOLUME:/var/lib/warren" "$TAG" >/dev/null
echo "container $NAME: AMQP 127.0.0.1:$AMQP, management 127.0.0.1:$HTTP, Prometheus 127.0.0.1:$PROM"

# The image's HEALTHCHECK command, run as the engine runs it (podman without systemd runs
# health checks on demand).
wait_healthy() {
    for _ in $(seq 1 60); do
        if "${PODMAN[@]}" healthcheck run "$NAME" >/dev/null 2>&1; then
            "${PODMAN[@]}" inspect "$NAME" --format 'health: {{.State.Health.Status}}'
            return 0
        fi
        sleep 1
    done
    "${PODMAN[@]}" logs "$NAME" | tail -20
    fail "container not healthy after 60 s"
}
wait_healthy
"${PODMAN[@]}" exec "$NAME" warren healthcheck
echo "process: $("${PODMAN[@]}" exec "$NAME" sh -c 'id; ls -ln /var/lib/warren' | tr '\n' ' ')"
"${PODMAN[@]}" exec "$NAME" id -u | grep -qx 999 || fail "not running as uid 999"

step "management API and Prometheus from the host"
python3 - "$HTTP" "$PROM" <<'EOF'
import base64, json, sys, urllib.request
http, prom = sys.argv[1], sys.argv[2]
auth = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}
def get(url, headers=None):
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:
        return r.status, r.read().decode()
status, body = get(f"http://127.0.0.1:{http}/api/health/checks/local-alarms", auth)
assert status == 200 and json.loads(body)["status"] == "ok", body
status, body = get(f"http://127.0.0.1:{http}/api/overview", auth)
print("overview:", status, "rabbitmq_version", json.loads(body).get("rabbitmq_version"))
status, body = get(f"http://127.0.0.1:{prom}/metrics")
assert status == 200 and "rabbitmq_" in body, body[:200]
print("metrics:", status, len(body.splitlines()), "lines")
EOF

step "publish with pika through the published port"
if [ ! -x "$WORK/venv/bin/python" ]; then
    python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" install -q "$(grep '^pika==' "$ROOT/conformance/requirements.txt")"
fi
PY="$WORK/venv/bin/python"
BODY="persistent across restarts $$"
"$PY" - "$AMQP" "$BODY" "$HTTP" <<'EOF'
import base64, json, sys, urllib.request, pika
port, body, http = int(sys.argv[1]), sys.argv[2], sys.argv[3]
conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port,
        credentials=pika.PlainCredentials("guest", "guest")))
# Through the published port the broker sees a non-loopback peer: guest logs in only because
# the image sets WARREN_LOOPBACK_ONLY_DEFAULT_USER=false (as RabbitMQ's image).
req = urllib.request.Request(f"http://127.0.0.1:{http}/api/connections", headers={
    "Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
peers = [c["peer_host"] for c in json.load(urllib.request.urlopen(req, timeout=10))]
print("guest logged in from", peers)
ch = conn.channel()
ch.confirm_delivery()
ch.queue_declare("docker-proof", durable=True)
ch.basic_publish("", "docker-proof", body.encode(),
                 pika.BasicProperties(delivery_mode=2), mandatory=True)
print("published and confirmed:", body, "| server:", conn._impl.server_properties.get("product"))
conn.close()
EOF

step "restart (SIGTERM, then start on the same volume)"
"${PODMAN[@]}" stop -t 20 "$NAME" >/dev/null
echo "exit code: $("${PODMAN[@]}" inspect "$NAME" --format '{{.State.ExitCode}}')"
"${PODMAN[@]}" logs "$NAME" 2>&1 | tail -3
"${PODMAN[@]}" start "$NAME" >/dev/null
wait_healthy

step "consume after the restart"
"$PY" - "$AMQP" "$BODY" <<'EOF'
import sys, pika
port, body = int(sys.argv[1]), sys.argv[2]
conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", port,
        credentials=pika.PlainCredentials("guest", "guest")))
ch = conn.channel()
method, props, got = ch.basic_get("docker-proof", auto_ack=False)
assert method is not None, "the persistent message is gone after the restart"
assert got.decode() == body, got
assert props.delivery_mode == 2, props
ch.basic_ack(method.delivery_tag)
print("consumed after restart:", got.decode(), "| redelivered:", method.redelivered)
conn.close()
EOF

step "the health check fails against a closed port"
"${PODMAN[@]}" exec "$NAME" warren healthcheck --url http://127.0.0.1:1 >/dev/null 2>&1 \
    && fail "healthcheck passed against a closed API port"
echo "warren healthcheck against a closed port: exit 1 (as it should)"

step "stop"
"${PODMAN[@]}" stop -t 20 "$NAME" >/dev/null
echo "PROOF PASSED ($MODE)"
