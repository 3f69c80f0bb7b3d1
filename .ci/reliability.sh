#!/usr/bin/env bash
# The reliability suite's API fuzzing: schemathesis (PyPI) against the agent's and the fleet's
# OpenAPI documents, on a live agent over a mounted simfs host and a live `sim fleet`, with an
# admin token and a read token. Fails on any 5xx, any response that breaks its documented
# schema, status code or content type. Bounded: each run has a time budget.
# Usage: .ci/reliability.sh PATH/TO/devmig   (run as root: it mounts FUSE)
set -euo pipefail
devmig=$(realpath "$1")
cd "$(dirname "$0")/.."
budget=${DEVMIG_FUZZ_SECONDS:-45}
work=$(mktemp -d /tmp/devmig-reliability-XXXXXX)
venv=${DEVMIG_FUZZ_VENV:-/var/cache/devmig-ci/schemathesis-venv}
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    umount -l "$work/mnt" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# schemathesis in its own venv, cached across runs (pinned version).
if [ ! -x "$venv/bin/schemathesis" ] || ! "$venv/bin/schemathesis" --version | grep -q ' 4.32.5$'; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'schemathesis==4.32.5'
fi
st() {
    # positive_data_acceptance is left out: the documents describe shapes, and a request of a
    # valid shape may still be refused with a documented 400 (an unknown vendor version).
    timeout $((budget + 60)) "$venv/bin/schemathesis" run "$@" --max-time "$budget" -w 2 \
        --phases examples,fuzzing,stateful \
        --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance
}
wait_for() { # URL: poll (bounded) until it answers
    for _ in $(seq 200); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
    echo "$1 never answered" >&2
    return 1
}

echo "== agent: simfs host-a, admin and read tokens"
mkdir -p "$work/mnt" "$work/state"
admin=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
reader=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
(umask 077; printf '[[token]]\nname = "fuzz-admin"\nscope = "admin"\nsecret = "%s"\n[[token]]\nname = "fuzz-read"\nscope = "read"\nsecret = "%s"\n' \
    "$admin" "$reader" > "$work/tokens.toml")
"$devmig" sim mount --spec crates/devmig-simfs/specs/host-a.toml "$work/mnt" > "$work/mount.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -e "$work/mnt/sys/bus" ] && break; sleep 0.1; done
"$devmig" --sysfs-root "$work/mnt" agent --listen 127.0.0.1:7391 --token-file "$work/tokens.toml" \
    --state-dir "$work/state" > "$work/agent.log" 2>&1 &
pids+=($!)
wait_for http://127.0.0.1:7391/healthz
st crates/devmig-agent/openapi.json --url http://127.0.0.1:7391 -H "Authorization: Bearer $admin"
budget=$((budget / 2)) st crates/devmig-agent/openapi.json --url http://127.0.0.1:7391 -H "Authorization: Bearer $reader"

echo "== fleet: sim fleet of 3 hosts, admin token"
"$devmig" sim fleet --hosts 3 --devices 8 --seed 7 --dir "$work/fleet" --listen 127.0.0.1:7392 > "$work/fleet.log" 2>&1 &
pids+=($!)
wait_for http://127.0.0.1:7392/healthz
for _ in $(seq 300); do grep -q '^try' "$work/fleet.log" && break; sleep 0.1; done
fleet_admin=$(awk '/name = "admin"/{f=1} f && /^secret/{gsub(/"/, "", $3); print $3; exit}' "$work/fleet/fleet-tokens.toml")
curl -sf -H "Authorization: Bearer $fleet_admin" http://127.0.0.1:7392/api/v1/openapi.json > "$work/fleet-openapi.json"
st "$work/fleet-openapi.json" --url http://127.0.0.1:7392 -H "Authorization: Bearer $fleet_admin"
echo "reliability: schemathesis found no 5xx and no response outside the documents"
