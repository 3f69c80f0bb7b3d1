#!/bin/sh
# devmig against a booted kernel: runs inside the test VM (kernel/vm/run.sh)
# after /init has mounted /proc, /sys, /dev and /tmp and loaded nothing.
#
#   tests.sh patched|unpatched
#
# Prints one "DEVMIG-TEST ok|FAIL <name>" line per test, "DEVMIG-PROBE"
# lines (the probe of the real tree and of its simfs twin, for the host to
# diff), "DEVMIG-BENCH" lines, and exits non-zero when a test failed.
mode="$1"
here=/devmig
sys=/sys
mtty=$sys/devices/virtual/mtty/mtty
types=$mtty/mdev_supported_types
sim=/tmp/sim
fails=0

ok() { echo "DEVMIG-TEST ok $1"; }
fail() {
    echo "DEVMIG-TEST FAIL $1: $2"
    fails=$((fails + 1))
}
# run CMD...: sets OUT (stdout and stderr) and RC.
run() {
    OUT=$("$@" 2>&1)
    RC=$?
}
# expect NAME RC PATTERN CMD...: CMD exits RC and its output matches the
# extended regex PATTERN ('' matches anything).
expect() {
    name="$1" want="$2" pattern="$3"
    shift 3
    run "$@"
    if [ "$RC" != "$want" ]; then
        fail "$name" "exit $RC, wanted $want: $*: $OUT"
    elif [ -n "$pattern" ] && ! printf '%s\n' "$OUT" | grep -Eq -- "$pattern"; then
        fail "$name" "output does not match /$pattern/: $*: $OUT"
    else
        ok "$name"
    fi
}
# eventually SECONDS CMD...: polls CMD every 0.1 s until it succeeds or the deadline passes.
eventually() {
    deadline=$(($(date +%s) + $1))
    shift
    while ! "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

U1=c0ffee00-0000-4000-8000-000000000001
U2=c0ffee00-0000-4000-8000-000000000002
U3=c0ffee00-0000-4000-8000-000000000003
U4=c0ffee00-0000-4000-8000-000000000004

echo "DEVMIG-INFO kernel $(uname -r) mode $mode"
insmod /lib/modules/mtty.ko || { fail insmod "mtty.ko did not load"; exit 1; }
echo "DEVMIG-INFO mtty $(cat /sys/module/mtty/version)"

# The emulated twin, mounted beside the real tree.
mkdir -p $sim
spec=$here/mtty-host.toml
[ "$mode" = patched ] || spec=$here/mtty-host-unpatched.toml
# One vCPU: polling the FUSE device would take it from the very checks it serves.
devmig sim mount --no-busy-poll --spec "$spec" $sim >/tmp/sim.log 2>&1 &
sim_pid=$!
eventually 20 test -d $sim/sys/devices/virtual/mtty/mtty || { fail simfs "not mounted: $(cat /tmp/sim.log)"; exit 1; }

# --- the probe: the real tree and simfs, same script, before any test touches them
for tree in kernel simfs; do
    root=$sys
    [ $tree = simfs ] && root=$sim/sys
    devmig sim probe --root $root $here/probe-mtty.txt >/tmp/probe.$tree 2>&1 ||
        fail "probe-$tree" "$(tail -3 /tmp/probe.$tree)"
    sed "s/^/DEVMIG-PROBE $tree /" /tmp/probe.$tree
done

for u in $U1 $U2; do echo $u >$types/mtty-2/create; done
echo $U3 >$types/mtty-1/create
for u in $U1 $U2; do echo $u >$sim/sys/devices/virtual/mtty/mtty/mdev_supported_types/mtty-2/create; done
echo $U3 >$sim/sys/devices/virtual/mtty/mtty/mdev_supported_types/mtty-1/create

if [ "$mode" = patched ]; then
    # --- the driver itself
    expect type-shows-version 0 '^mtty-v1-0\.1\.0-mtty-2$' cat $types/mtty-2/migration_version
    expect mdev-shows-version 0 '^mtty-v1-0\.1\.0-mtty-1$' cat /sys/bus/mdev/devices/$U3/migration_version
    echo "write ${types#/sys/}/mtty-1/migration_version $(cat $types/mtty-2/migration_version)" >/tmp/refuse.probe
    expect store-refuses-with-einval 0 'mtty-2" ! write EINVAL$' devmig sim probe --root $sys /tmp/refuse.probe
    dmesg | grep -q 'migration_version "mtty-v1-0.1.0-mtty-2" refused: different number of ports' &&
        ok driver-logs-why || fail driver-logs-why "$(dmesg | tail -5)"

    # --- one table of source strings through the kernel's store() and devmig's model (simfs):
    # each row into both types, with and without a trailing newline, as probe writes.
    : >/tmp/versions.probe
    while IFS= read -r row; do
        case "$row" in '#'* | '') continue ;; esac
        esc=$(printf '%s' "$row" | sed 's/\\/\\\\/g; s/\t/\\t/g; s/ /\\x20/g')
        for target in mtty-1 mtty-2; do
            for nl in '' '\n'; do
                echo "write devices/virtual/mtty/mtty/mdev_supported_types/$target/migration_version $esc$nl"
            done
        done >>/tmp/versions.probe
    done <$here/mtty-versions.txt
    devmig sim probe --root $sys /tmp/versions.probe >/tmp/rows.kernel 2>&1
    devmig sim probe --root $sim/sys /tmp/versions.probe >/tmp/rows.model 2>&1
    paste -d '|' /tmp/rows.kernel /tmp/rows.model | sed 's/^/DEVMIG-ROW /'
    rows=$(wc -l </tmp/versions.probe)
    accepted=$(grep -c ' ok$' /tmp/rows.kernel)
    refused=$(grep -c ' ! write EINVAL$' /tmp/rows.kernel)
    if ! cmp -s /tmp/rows.kernel /tmp/rows.model; then
        fail version-table "the kernel and the model differ: $(diff /tmp/rows.kernel /tmp/rows.model | head -20)"
    elif [ "$rows" -lt 100 ] || [ $((accepted + refused)) != "$rows" ] || [ "$accepted" = 0 ]; then
        fail version-table "$rows rows, $accepted accepted, $refused refused with EINVAL: $(head -3 /tmp/rows.kernel)"
    else
        ok "version-table-$rows-rows-agree-$accepted-accepted-$refused-refused"
    fi

    # --- devmig on the real sysfs
    expect list 0 "$U1 +mdev +mtty-2 +mtty .* kernel" devmig list
    expect show 0 'mtty-2' devmig show $U1
    expect version 0 '^mtty-v1-0\.1\.0-mtty-2$' sh -c "devmig version $U1 2>/dev/null"
    expect version-source-kernel 0 'source: kernel \(mtty\)' sh -c "devmig version $U1 2>&1 >/dev/null"
    expect check-identical 0 'verdict: identical' devmig check $U1 $U2
    expect check-compatible 0 'verdict: compatible' devmig check --version mtty-v1-0.0.5-mtty-2 $U2
    expect check-incompatible 1 'target_rejected: .*EINVAL' devmig check $U1 $U3
    expect check-json-kernel 1 '"source": "kernel"' devmig -o json check $U1 $U3
    expect check-newer-minor 1 'mtty.driver_version_minor' devmig check --version mtty-v1-0.2.0-mtty-2 $U2
    expect explain 1 'mtty.ports' devmig explain $U1 $U3
    expect explain-compatible 0 'mtty.driver_version_minor' devmig explain --version mtty-v1-0.0.5-mtty-2 $U2
    expect match 0 "$U2" devmig match $U1
    expect match-type 0 'mtty/mtty-2' devmig match $U1
    expect match-excludes-incompatible 0 "$U3 +excluded" devmig match $U1

    # --- step-a attributes come from the kernel's own string
    expect attributes-from-kernel-string 0 "model mtty; from the kernel's migration_version" devmig attributes $U1
    expect attributes-kernel-prefix 0 'kernel.prefix +string +mtty' devmig attributes $U1

    # --- opaque vendors: devmig's mtty model switched off, the real driver alone judges
    nm="devmig --no-model mtty"
    expect opaque-list 0 "$U1 +mdev +mtty-2 +mtty .* kernel" $nm list
    expect opaque-attributes 0 'model opaque; opaque: no vendor model knows this driver' $nm attributes $U1
    expect opaque-step-a-by-prefix 0 'step a requires: kernel.prefix == mtty$' $nm match $U1
    expect opaque-step-a-never-excludes 0 "$U3 +passed +incompatible +target_rejected" $nm match $U1
    run $nm match $U1
    first=$(printf '%s\n' "$OUT" | sed -n 4p)
    case "$first" in *identical*) ok opaque-identical-first ;; *) fail opaque-identical-first "$OUT" ;; esac
    expect opaque-check-by-the-driver 1 'target_rejected: .*EINVAL' $nm check $U1 $U3
    expect opaque-explain 1 'opaque\): only the driver.s write can judge' $nm explain $U1 $U3
    expect opaque-compatible-by-the-driver 0 'verdict: compatible' $nm check --version mtty-v1-0.0.9-mtty-2 $U2

    # --- the check through the kernel and through simfs, in this run
    devmig bench check --version "$(cat $types/mtty-2/migration_version)" --target $U2 \
        --root / --root $sim --rounds 20 --per-round 25 >/tmp/bench.out 2>&1 &&
        ok bench-check || fail bench-check "$(cat /tmp/bench.out)"
    sed 's/^/DEVMIG-BENCH /' /tmp/bench.out
else
    # --- today's kernels: no attribute; devmig says so and answers from its model
    [ ! -e $types/mtty-2/migration_version ] && [ ! -e /sys/bus/mdev/devices/$U1/migration_version ] &&
        ok no-attribute || fail no-attribute "an unpatched mtty shows migration_version"
    expect list 0 "$U1 +mdev +mtty-2 +mtty .* model" devmig list
    expect version-from-model 0 'source: model \(mtty\)' sh -c "devmig version $U1 2>&1 >/dev/null"
    expect check-unsupported-kernel 0 "kernel: +unsupported: the target has no migration_version; devmig's mtty model" devmig explain $U1 $U2
    expect check-model-incompatible 1 'mtty.ports' devmig check $U1 $U3
    expect attributes-from-facts 0 'model mtty; from sysfs facts' devmig attributes $U1
    expect no-model-no-attribute-nothing-to-say 1 'no vendor model' devmig --no-model mtty attributes $U1
fi

# --- a type claim through a real agent creates a real mdev; its release removes it
mkdir -p /tmp/agent
printf '[[token]]\nname = "vm"\nscope = "admin"\nsecret = "vm-test-secret-0123456789"\n' >/tmp/agent/tokens.toml
echo vm-test-secret-0123456789 >/tmp/agent/secret
chmod 600 /tmp/agent/tokens.toml /tmp/agent/secret
devmig agent --listen 127.0.0.1:7070 --token-file /tmp/agent/tokens.toml --state-dir /tmp/agent \
    >/tmp/agent/log 2>&1 &
agent_pid=$!
if eventually 30 wget -q -O /dev/null http://127.0.0.1:7070/healthz; then
    ok agent-up
    before=$(ls /sys/bus/mdev/devices | wc -l)
    expect claim-type 0 'created mdev: +true' devmig --token-file /tmp/agent/secret claim http://127.0.0.1:7070 \
        --version "$(devmig version $U1 2>/dev/null)" --migration-id vm-1 --type mtty/mtty-2
    claimed=$(devmig --token-file /tmp/agent/secret -o json claims http://127.0.0.1:7070 |
        sed -n 's/.*"device": "\([0-9a-f-]\{36\}\)".*/\1/p' | head -1)
    if [ -n "$claimed" ] && [ -e /sys/bus/mdev/devices/$claimed ] &&
        [ "$(ls /sys/bus/mdev/devices | wc -l)" = $((before + 1)) ]; then
        ok claim-created-a-real-mdev
    else
        fail claim-created-a-real-mdev "device '$claimed', mdevs: $(ls /sys/bus/mdev/devices)"
    fi
    claim_id=$(devmig --token-file /tmp/agent/secret -o json claims http://127.0.0.1:7070 |
        sed -n 's/.*"id": "\([^"]*\)".*/\1/p' | head -1)
    expect release 0 '' devmig --token-file /tmp/agent/secret release http://127.0.0.1:7070 "$claim_id"
    if [ -n "$claimed" ] && [ ! -e /sys/bus/mdev/devices/$claimed ]; then
        ok release-removed-the-mdev
    else
        fail release-removed-the-mdev "device '$claimed' still there: $(ls /sys/bus/mdev/devices)"
    fi
else
    fail agent-up "$(cat /tmp/agent/log)"
fi
kill $agent_pid 2>/dev/null

# --- mdevctl against the real kernel
mkdir -p /etc/mdevctl.d/scripts.d/callouts /etc/mdevctl.d/scripts.d/notifiers \
    /usr/lib/mdevctl/scripts.d/callouts /usr/lib/mdevctl/scripts.d/notifiers
expect mdevctl-types 0 'mtty-2' mdevctl types
expect mdevctl-list 0 "$U1 mtty mtty-2" mdevctl list
expect mdevctl-start 0 '' mdevctl start -u $U4 -p mtty -t mtty-1
[ -e /sys/bus/mdev/devices/$U4 ] && ok mdevctl-start-created || fail mdevctl-start-created "no $U4"
expect mdevctl-stop 0 '' mdevctl stop -u $U4
[ ! -e /sys/bus/mdev/devices/$U4 ] && ok mdevctl-stop-removed || fail mdevctl-stop-removed "$U4 still there"

# --- SR-IOV as the kernel does it (QEMU's NVMe controller offers 2 VFs): the ground truth
# simfs's SR-IOV emulation is to be held against; the probe is kept in the results.
pf=
for d in /sys/bus/pci/devices/*; do
    [ -e "$d/sriov_totalvfs" ] && pf=${d##*/} && break
done
if [ -n "$pf" ]; then
    dev=bus/pci/devices/$pf
    cat >/tmp/sriov.probe <<PROBE
read $dev/sriov_totalvfs
write $dev/sriov_drivers_autoprobe 0
write $dev/sriov_numvfs 3
write $dev/sriov_numvfs 2
write $dev/sriov_numvfs 1
write $dev/sriov_numvfs x
list $(cd /sys && readlink -f $dev | sed 's|^/sys/||')
PROBE
    devmig sim probe --root /sys /tmp/sriov.probe >/tmp/sriov.out 2>&1 || fail sriov-probe "$(tail -3 /tmp/sriov.out)"
    for link in /sys/$dev/virtfn*; do
        echo "list $(readlink -f "$link" | sed 's|^/sys/||')"
    done >/tmp/sriov-vfs.probe
    devmig sim probe --root /sys /tmp/sriov-vfs.probe >>/tmp/sriov.out 2>&1 || fail sriov-vf-probe "$(tail -3 /tmp/sriov.out)"
    sed 's/^/DEVMIG-SRIOV /' /tmp/sriov.out
    expect sriov-total 0 '^2$' cat /sys/$dev/sriov_totalvfs
    grep -q "sriov_numvfs \"3\" ! write ERANGE$" /tmp/sriov.out && ok sriov-above-total-erange ||
        fail sriov-above-total-erange "$(grep sriov_numvfs /tmp/sriov.out)"
    grep -q "sriov_numvfs \"2\" ok$" /tmp/sriov.out && ok sriov-enable || fail sriov-enable "$(grep sriov_numvfs /tmp/sriov.out)"
    grep -q "sriov_numvfs \"1\" ! write EBUSY$" /tmp/sriov.out && ok sriov-change-while-enabled-ebusy ||
        fail sriov-change-while-enabled-ebusy "$(grep sriov_numvfs /tmp/sriov.out)"
    vf=$(readlink /sys/$dev/virtfn1)
    [ -n "$vf" ] && [ "$(readlink -f /sys/$dev/virtfn1/physfn)" = "$(readlink -f /sys/$dev)" ] &&
        ok sriov-virtfn-physfn || fail sriov-virtfn-physfn "virtfn1 -> '$vf'"
    expect sriov-vf-listed 0 'sriov_vf' devmig list
    echo 0 >/sys/$dev/sriov_numvfs
    [ ! -e /sys/$dev/virtfn0 ] && ok sriov-disable || fail sriov-disable "virtfn0 still there"
else
    fail sriov "no SR-IOV PF (QEMU's nvme with sriov_max_vfs)"
fi

kill $sim_pid 2>/dev/null
wait $sim_pid 2>/dev/null
echo "DEVMIG-INFO $fails failed"
[ "$fails" = 0 ]
