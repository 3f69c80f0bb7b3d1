#!/usr/bin/env bash
# devmig-nova's checks, in the OpenStack venv (integrations/openstack-venv.sh):
#   1. mypy --strict on devmig_nova (Nova and oslo themselves are not read);
#   2. pytest: the client and the pre-check against real devmig agents over emulated hosts;
#   3. Nova 34.0.0's own vGPU live-migration functional tests, subclassed with devmig in the
#      loop, against a copy of Nova with patches/nova-34.0.0-devmig.patch applied.
# Usage: integrations/nova/run-tests.sh PATH/TO/devmig   (as root: the agents' hosts are FUSE mounts)
set -euo pipefail
export DEVMIG_BIN=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
venv=${DEVMIG_TEST_OPENSTACK_VENV:-/var/cache/devmig-ci/openstack-venv}
py="$venv/bin/python"
work=$(mktemp -d /tmp/devmig-nova-XXXXXX)
cleanup() {
    # The tests stop their hosts; this is the net for a test process that died first.
    for m in $(awk '$3 ~ /^fuse/ && $2 ~ /^\/tmp\/devmig-nova-/ {print $2}' /proc/mounts); do umount -l "$m" || true; done
    pkill -f -- '--catalog /tmp/devmig-nova-' || true
    rm -rf "$work"
}
trap cleanup EXIT
cd "$here"
echo "== mypy"
"$py" -m mypy
echo "== pytest (client, pre-check, agents file, device_spec read by Nova)"
PYTHONPATH="$here/src" "$py" -m pytest -q -p no:cacheprovider tests/test_precheck.py tests/test_device_spec.py
echo "== Nova's vGPU live-migration tests with devmig (patched Nova 34.0.0)"
site=$("$py" -c 'import nova, os; print(os.path.dirname(os.path.dirname(nova.__file__)))')
"$py" -c 'import nova.version as v; import sys; sys.exit(0 if v.version_string() == "34.0.0" else "the patch is for Nova 34.0.0, not " + v.version_string())'
cp -r "$site/nova" "$work/nova"
(cd "$work" && git apply -p1 "$here/patches/nova-34.0.0-devmig.patch")
# Nova's own log is long: it is shown only when a test fails.
if ! PYTHONPATH="$work:$here/src:$here/tests" timeout 900 "$py" -m unittest -v test_nova_vgpu >"$work/nova.log" 2>&1; then
    tail -300 "$work/nova.log"
    grep -E ' \.\.\. (ok|FAIL|ERROR)$|^Ran |^FAILED' "$work/nova.log" || true
    exit 1
fi
grep -E ' \.\.\. ok$|^Ran |^OK' "$work/nova.log"
