#!/usr/bin/env bash
# Build the llmconfig-server image, and with `test` also run it and check it from outside.
#
#   deploy/image.sh build    # what `make image` runs
#   deploy/image.sh test     # what `make image-test` runs: build, then run and check
#   deploy/image.sh cold-start   # `make image-bench`: build, then time process start ->
#                                # SERVING inside the image against bare grpc.aio servers
#
# It sets up what it needs, so it works on a clean Debian machine as root (CI):
#   - Docker: Debian's docker.io when dockerd is missing; dockerd started in the background
#     when it is not running (and stopped again after `test` if this script started it).
#   - The base: PYTHON_IMAGE if given; else python:3.11-slim if present or pullable; else a
#     Python base made from Debian packages with mmdebstrap, from the mirror apt already uses,
#     with this machine's CA bundle so pip inside the build trusts what this machine trusts.
#     That base is kept as $BASE_TAG and reused by later runs.
#   - pip in the build reaches the package index through the host's network (--network host).
#
# Environment: IMAGE (tag to build, default llmconfig-server:dev), PYTHON_IMAGE, BASE_TAG,
# GRPCURL (default: grpcurl on PATH, `make` passes the venv's); for cold-start ROUNDS
# (default 15).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-llmconfig-server:dev}
OFFICIAL_BASE=python:3.11-slim
BASE_TAG=${BASE_TAG:-llmconfig-debian-python:bookworm}
SUITE=bookworm                    # Python 3.11, as in the official base
GRPCURL=${GRPCURL:-grpcurl}
DOCKERD_LOG=/var/log/llmconfig-dockerd.log
START=$SECONDS
STARTED_DOCKERD=""
CONTAINER=""
DOCKER=docker

say() { printf '[image %3ds] %s\n' "$((SECONDS - START))" "$*"; }
die() { printf '\nimage.sh: FAILED: %s\n' "$*" >&2; exit 1; }

cleanup() {
    if [[ -n $CONTAINER ]]; then
        "$DOCKER" rm -f "$CONTAINER" >/dev/null 2>&1 || true
    fi
    if [[ -n $STARTED_DOCKERD ]]; then
        say "stopping the dockerd this script started (pid $STARTED_DOCKERD)"
        kill "$STARTED_DOCKERD" 2>/dev/null || true
        # dockerd stops its containers and containerd before it exits; give it time.
        for _ in $(seq 30); do running "$STARTED_DOCKERD" || break; sleep 1; done
        # Reap it: nothing else on a machine without an init that reaps would.
        running "$STARTED_DOCKERD" || wait "$STARTED_DOCKERD" 2>/dev/null || true
    fi
}
trap cleanup EXIT

apt_updated=""
apt_install() {
    [[ $(id -u) == 0 ]] || die "need root to install the Debian package(s) $*; install them yourself"
    if [[ -z $apt_updated ]]; then
        say "apt-get update"
        apt-get update -qq || die "apt-get update failed"
        apt_updated=1
    fi
    say "installing Debian package(s): $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
        || die "apt-get install $* failed"
}

# PID names a process that runs (exists and is not a zombie).
running() {
    local state
    state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z ]]
}

ensure_docker() {
    # Debian's client (/usr/bin) before a standalone one elsewhere on PATH, which may be newer
    # than Debian's daemon.
    DOCKER=docker
    [[ -x /usr/bin/docker ]] && DOCKER=/usr/bin/docker
    if "$DOCKER" info >/dev/null 2>&1; then
        return    # a running engine: Docker Desktop, a docker group member, an earlier run
    fi
    command -v dockerd >/dev/null || apt_install docker.io
    DOCKER=/usr/bin/docker
    [[ -x $DOCKER ]] || DOCKER=docker
    # A dockerd killed without a chance to clean up (as at the end of a CI run) leaves pid
    # files behind, for itself and its containerd; a new dockerd refuses to start, or waits
    # for a dead containerd, while one names a process that still has an entry in /proc (an
    # unreaped zombie has one too).
    local pidfile
    for pidfile in /var/run/docker.pid /var/run/docker/containerd/containerd.pid; do
        if [[ -f $pidfile ]] && ! running "$(cat "$pidfile")"; then
            rm -f "$pidfile"
        fi
    done
    say "starting dockerd (log: $DOCKERD_LOG)"
    nohup dockerd >"$DOCKERD_LOG" 2>&1 &
    STARTED_DOCKERD=$!
    for _ in $(seq 60); do
        "$DOCKER" info >/dev/null 2>&1 && return
        running "$STARTED_DOCKERD" || { STARTED_DOCKERD=""; break; }
        sleep 1
    done
    tail -n 20 "$DOCKERD_LOG" >&2 || true
    die "dockerd did not come up within 60 s (see $DOCKERD_LOG)"
}

have_image() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

# The Debian mirror apt is configured with (deb822 or one-line sources alike).
debian_mirror() {
    # shellcheck disable=SC2016  # $(REPO_URI) is apt's own placeholder, not the shell's
    apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Identifier: Packages' 2>/dev/null \
        | awk '$2 !~ /-(security|updates|backports)$/ { print $1; exit }'
}

# The CA bundle pip on this machine uses (a proxy's CA may be in it).
host_ca_bundle() {
    local cert=${PIP_CERT:-}
    [[ -n $cert ]] || cert=$(python3 -m pip config get global.cert 2>/dev/null || true)
    [[ -n $cert ]] || cert=/etc/ssl/certs/ca-certificates.crt
    [[ -f $cert ]] || die "no CA bundle at $cert"
    echo "$cert"
}

make_debian_base() {
    command -v mmdebstrap >/dev/null || apt_install mmdebstrap
    local mirror ca work
    mirror=$(debian_mirror)
    [[ -n $mirror ]] || mirror=http://deb.debian.org/debian/
    ca=$(host_ca_bundle)
    work=$(mktemp -d)
    say "making $BASE_TAG with mmdebstrap ($SUITE from $mirror; CA bundle $ca)"
    # The hooks put this machine's CA bundle in place and point pip at it ($1 is the new root,
    # expanded by mmdebstrap's shell).
    # shellcheck disable=SC2016
    mmdebstrap --quiet --variant=minbase \
        --include=python3,python3-pip,python3-venv,ca-certificates \
        --aptopt='Acquire::Check-Valid-Until "false"' --aptopt='APT::Install-Recommends "false"' \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --customize-hook="upload $ca /etc/ssl/certs/ca-certificates.crt" \
        --customize-hook='printf "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n" > "$1/etc/pip.conf"' \
        "$SUITE" "$work/base.tar" "deb $mirror $SUITE main" \
        || { rm -rf "$work"; die "mmdebstrap could not make the base"; }
    "$DOCKER" import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
        "$work/base.tar" "$BASE_TAG" >/dev/null || { rm -rf "$work"; die "docker import failed"; }
    rm -rf "$work"
}

choose_base() {
    if [[ -n ${PYTHON_IMAGE:-} ]]; then
        have_image "$PYTHON_IMAGE" || "$DOCKER" pull "$PYTHON_IMAGE" \
            || die "PYTHON_IMAGE=$PYTHON_IMAGE is neither present nor pullable"
        BASE=$PYTHON_IMAGE
    elif have_image "$OFFICIAL_BASE"; then
        BASE=$OFFICIAL_BASE
    elif have_image "$BASE_TAG"; then
        BASE=$BASE_TAG
        say "reusing the Debian base $BASE_TAG made by an earlier run"
    elif timeout 60 "$DOCKER" pull --quiet "$OFFICIAL_BASE" >/dev/null 2>&1; then
        BASE=$OFFICIAL_BASE
    else
        say "$OFFICIAL_BASE cannot be pulled here"
        make_debian_base
        BASE=$BASE_TAG
    fi
    say "base: $BASE"
}

build() {
    say "docker build -t $IMAGE (PYTHON_IMAGE=$BASE)"
    local t0=$SECONDS
    # The classic builder: Debian's docker.io has no buildx. --network host: pip in the build
    # uses the host's network, which is the only way out on some machines.
    DOCKER_BUILDKIT=0 "$DOCKER" build --quiet --network host \
        --build-arg PYTHON_IMAGE="$BASE" -t "$IMAGE" . >/dev/null \
        || die "docker build failed (rerun without --quiet to see the step)"
    local size
    size=$("$DOCKER" image inspect --format '{{.Size}}' "$IMAGE")
    say "built $IMAGE in $((SECONDS - t0)) s: $((size / 1000000)) MB"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

run_checks() {
    command -v "$GRPCURL" >/dev/null || die "grpcurl not found (GRPCURL=$GRPCURL; make install provides it)"
    local port target out uid code t0
    port=$(free_port)
    target=127.0.0.1:$port
    # A run that was killed may have left its container behind.
    "$DOCKER" ps --all --quiet --filter name=llmconfig-image-test- | xargs -r "$DOCKER" rm -f >/dev/null
    CONTAINER=llmconfig-image-test-$$
    # --read-only: the same constraint as the Kubernetes manifests' readOnlyRootFilesystem.
    say "docker run $IMAGE on $target (--network host, --read-only)"
    "$DOCKER" run --detach --name "$CONTAINER" --network host --read-only \
        -e STIGMER_LLMCONFIG_LISTEN="$target" "$IMAGE" >/dev/null || die "docker run failed"

    for _ in $(seq 60); do
        out=$("$GRPCURL" -plaintext -max-time 2 "$target" grpc.health.v1.Health/Check 2>&1) && break
        [[ $("$DOCKER" inspect --format '{{.State.Running}}' "$CONTAINER") == true ]] || {
            "$DOCKER" logs "$CONTAINER" >&2; die "the container exited before serving"; }
        sleep 0.5
    done
    [[ $out == *'"status": "SERVING"'* ]] || {
        "$DOCKER" logs "$CONTAINER" >&2; die "grpc.health.v1 did not answer SERVING: $out"; }
    say "ok: grpc.health.v1 SERVING"

    out=$("$GRPCURL" -plaintext -max-time 5 -d '{"overrides": {"model": "qwen2.5-coder:14b"}}' \
        "$target" llmconfig.v1.LLMConfigService/ResolveLLMConfig 2>&1) \
        || die "ResolveLLMConfig through grpcurl failed: $out"
    [[ $out == *'"provider": "ollama"'* && $out == *'"model": "qwen2.5-coder:14b"'* ]] \
        || die "ResolveLLMConfig answered something unexpected: $out"
    say "ok: ResolveLLMConfig through grpcurl"

    # The uid of the container's processes as the engine's host sees them.
    uid=$("$DOCKER" top "$CONTAINER" -o pid,uid | awk 'NR > 1 { print $2 }' | sort -u)
    [[ $uid == 10001 ]] || die "the server runs as uid ${uid:-?}, expected 10001"
    say "ok: the server process runs as uid $uid"

    t0=$SECONDS
    "$DOCKER" stop --time 10 "$CONTAINER" >/dev/null
    code=$("$DOCKER" inspect --format '{{.State.ExitCode}}' "$CONTAINER")
    [[ $code == 0 ]] || { "$DOCKER" logs "$CONTAINER" >&2; die "docker stop: exit code $code, expected 0"; }
    say "ok: docker stop -> exit code 0 after $((SECONDS - t0)) s"
}

# bench/image_cold_start.py inside the image, with bench/ mounted read-only: the image's own
# Python and installed package (no editable-install finder), --network none, --read-only.
cold_start() {
    local runs=${ROUNDS:-15}
    "$DOCKER" ps --all --quiet --filter name=llmconfig-image-bench- | xargs -r "$DOCKER" rm -f >/dev/null
    CONTAINER=llmconfig-image-bench-$$
    say "cold start inside $IMAGE: $runs rounds each, then one -X importtime start"
    "$DOCKER" run --rm --name "$CONTAINER" --network none --read-only \
        -v "$PWD/bench:/bench:ro" --entrypoint python "$IMAGE" \
        /bench/image_cold_start.py --rounds "$runs" --importtime \
        || die "the cold-start measurement failed"
    CONTAINER=""
}

case ${1:-} in
    build) ensure_docker; choose_base; build
           STARTED_DOCKERD="" ;;   # keep the daemon for the image just built
    test)  ensure_docker; choose_base; build; run_checks
           say "image-test passed" ;;
    cold-start) ensure_docker; choose_base; build; cold_start ;;
    *)     echo "usage: $0 build|test|cold-start" >&2; exit 2 ;;
esac
