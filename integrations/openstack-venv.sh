#!/usr/bin/env bash
# The OpenStack the tests run against, from PyPI, in one venv cached across runs:
# openstack-placement (served by gunicorn with SQLite in the Rust tests of
# crates/devmig-openstack), Nova with the test dependencies its functional tests need
# (integrations/nova's tests run Nova's own vGPU live-migration tests against devmig agents),
# and devmig-nova's own tooling (pytest, mypy). About a minute the first time, nothing after.
# Usage: integrations/openstack-venv.sh [VENV]   (default /var/cache/devmig-ci/openstack-venv)
set -euo pipefail
venv=${1:-${DEVMIG_TEST_OPENSTACK_VENV:-/var/cache/devmig-ci/openstack-venv}}
here=$(cd "$(dirname "$0")" && pwd)
stamp="$venv/.devmig-requirements"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && cmp -s "$stamp" "$here/openstack-requirements.txt"; then
    echo "openstack venv $venv is current"
    exit 0
fi
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q -r "$here/openstack-requirements.txt"
cp "$here/openstack-requirements.txt" "$stamp"
echo "openstack venv $venv built"
