#!/usr/bin/env bash
# The devmig test VM: boots Debian 12's linux-source-6.1 under QEMU (TCG),
# once with kernel/patches applied and once without, runs devmig, the agent,
# mdevctl and the sysfs probe against the real kernel inside it
# (kernel/vm/guest/tests.sh), and fails when any test fails or the probe of
# the real tree and of simfs differ in a line kernel/vm/fidelity/ does not list.
#
#   kernel/vm/run.sh [--devmig PATH] [--mdevctl PATH] [--out DIR] [--mode patched|unpatched]...
#
# Defaults: target/debug/devmig, the mdevctl on PATH, results in target/vm,
# both modes. Needs root to install packages (--install-packages: apt-get
# install of what the build and QEMU need) and to write the kernel cache
# (kernel/vm/build-kernel.sh).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
devmig="$repo/target/debug/devmig"
mdevctl="$(command -v mdevctl || true)"
out="$repo/target/vm"
modes=()
install=0
while [ $# -gt 0 ]; do
    case "$1" in
        --devmig) devmig="$2"; shift 2 ;;
        --mdevctl) mdevctl="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --mode) modes+=("$2"); shift 2 ;;
        --install-packages) install=1; shift ;;
        *) echo "run.sh: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
    esac
done
[ ${#modes[@]} -gt 0 ] || modes=(patched unpatched)

log() { echo "vm: $*" >&2; }

packages=(linux-source-6.1 qemu-system-x86 busybox-static flex bison bc libelf-dev libssl-dev cpio build-essential kmod ca-certificates)
if [ "$install" = 1 ]; then
    missing=()
    for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
fi
for tool in qemu-system-x86_64 cpio; do
    command -v "$tool" >/dev/null || { log "$tool is missing (run with --install-packages)"; exit 1; }
done
[ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1 ||
    { log "a static /bin/busybox is missing (run with --install-packages: busybox-static)"; exit 1; }
[ -x "$devmig" ] || { log "$devmig is missing (cargo build -p devmig)"; exit 1; }
[ -n "$mdevctl" ] && [ -x "$mdevctl" ] || { log "mdevctl is missing (cargo install mdevctl)"; exit 1; }

built="$("$here/build-kernel.sh")"
read -r unpatched patched src <<<"$built"

# The patch series in the kernel's style.
perl "$src/scripts/checkpatch.pl" --no-tree -q "$repo"/kernel/patches/*.patch ||
    { log "checkpatch found problems in kernel/patches"; exit 1; }
log "kernel/patches: checkpatch clean"

# The initramfs: busybox, devmig and mdevctl with their shared libraries, the
# guest scripts. Rebuilt every run (a few seconds), never cached.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
root="$work/root"
mkdir -p "$root"/{bin,dev,proc,sys,tmp,run,etc,lib/modules,devmig}
cp /bin/busybox "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
objcopy --strip-debug "$devmig" "$root/bin/devmig"
objcopy --strip-debug "$mdevctl" "$root/bin/mdevctl"
for bin in "$root/bin/devmig" "$root/bin/mdevctl"; do
    ldd "$bin" | awk '/=> \// {print $3} /^[ \t]*\/lib/ {print $1}' | while read -r lib; do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
done
# The HTTP client loads the platform's CA roots even for http:// (the agent test).
mkdir -p "$root/etc/ssl/certs"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/" 2>/dev/null ||
    { log "/etc/ssl/certs/ca-certificates.crt is missing (apt-get install ca-certificates)"; exit 1; }
cp "$here/guest/init" "$root/init"
cp "$here"/guest/{tests.sh,probe-mtty.txt,mtty-versions.txt,mtty-host.toml,mtty-host-unpatched.toml} "$root/devmig/"

mkdir -p "$out"
status=0
for mode in "${modes[@]}"; do
    case "$mode" in
        patched) kdir="$patched" ;;
        unpatched) kdir="$unpatched" ;;
        *) log "unknown mode $mode (patched or unpatched)"; exit 2 ;;
    esac
    cp "$kdir/mtty.ko" "$root/lib/modules/mtty.ko"
    (cd "$root" && find . | cpio -o -H newc --quiet) >"$work/initramfs.cpio"
    dir="$out/$mode"
    rm -rf "$dir"
    mkdir -p "$dir"
    log "booting the $mode kernel $(cat "$kdir/kernel.release") under QEMU (TCG)"
    start=$SECONDS
    # QEMU's NVMe controller with SR-IOV (2 VFs): the guest's ground truth for SR-IOV shapes.
    timeout 900 qemu-system-x86_64 -machine q35 -accel tcg -cpu max -m 1024 -smp 1 -nographic -no-reboot -nic none \
        -device nvme-subsys,id=subsys0 \
        -device nvme,serial=devmig,subsys=subsys0,sriov_max_vfs=2,sriov_vq_flexible=4,sriov_vi_flexible=2,max_ioqpairs=8,msix_qsize=8 \
        -kernel "$kdir/bzImage" -initrd "$work/initramfs.cpio" \
        -append "console=ttyS0 panic=-1 quiet tsc=reliable devmig.mode=$mode" </dev/null >"$dir/console.log" 2>&1 ||
        log "QEMU exited with $? (see $dir/console.log)"
    # Serial output without carriage returns and the firmware's terminal escapes.
    # The first line the guest prints may follow the firmware's last text on the same line.
    tr -d '\r' <"$dir/console.log" |
        sed 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g; /^DEVMIG-/!s/^.*\(DEVMIG-[A-Z]* \)/\1/' >"$dir/console.txt"
    log "$mode run took $((SECONDS - start)) s"
    sed -n 's/^DEVMIG-INFO //p' "$dir/console.txt" | sed 's/^/vm: /' >&2

    # Tests.
    grep '^DEVMIG-TEST ' "$dir/console.txt" >"$dir/tests.txt" || true
    passed=$(grep -c '^DEVMIG-TEST ok ' "$dir/tests.txt" || true)
    failed=$(grep -c '^DEVMIG-TEST FAIL ' "$dir/tests.txt" || true)
    grep '^DEVMIG-TEST FAIL ' "$dir/tests.txt" >&2 || true
    exit_line=$(grep '^DEVMIG-EXIT ' "$dir/console.txt" || true)
    if [ -z "$exit_line" ]; then
        log "$mode: the guest never finished (last lines of $dir/console.txt:)"
        tail -30 "$dir/console.txt" >&2
        status=1
        continue
    fi
    log "$mode: $passed tests passed, $failed failed"
    [ "$failed" = 0 ] && [ "$exit_line" = "DEVMIG-EXIT 0" ] && [ "$passed" -gt 0 ] || status=1

    # The probe: the real tree against simfs, held against the fidelity list.
    sed -n 's/^DEVMIG-PROBE kernel //p' "$dir/console.txt" >"$dir/probe.kernel"
    sed -n 's/^DEVMIG-PROBE simfs //p' "$dir/console.txt" >"$dir/probe.simfs"
    sed -n 's/^DEVMIG-ROW //p' "$dir/console.txt" >"$dir/version-table.txt"
    sed -n 's/^DEVMIG-BENCH //p' "$dir/console.txt" >"$dir/bench.txt"
    sed -n 's/^DEVMIG-SRIOV //p' "$dir/console.txt" >"$dir/probe.sriov"
    if [ ! -s "$dir/probe.kernel" ] || [ ! -s "$dir/probe.simfs" ]; then
        log "$mode: the probe printed nothing"
        status=1
        continue
    fi
    if ! "$here/fidelity.sh" "$dir/probe.kernel" "$dir/probe.simfs" "$here/fidelity/mtty-$mode.txt" >"$dir/fidelity.txt"; then
        cat "$dir/fidelity.txt" >&2
        status=1
    else
        log "$mode: $(cat "$dir/fidelity.txt")"
    fi
done
[ "$status" = 0 ] && log "all VM runs passed (results in $out)" || log "VM runs FAILED (results in $out)"
exit "$status"
