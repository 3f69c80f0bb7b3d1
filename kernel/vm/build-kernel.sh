#!/usr/bin/env bash
# Builds the test VM's kernels from Debian 12's linux-source-6.1, once per
# (package version, config fragment, patch series): an unpatched kernel (what
# today's kernels expose) and the same kernel with kernel/patches applied.
#
#   kernel/vm/build-kernel.sh     # prints the unpatched and patched artifact directories
#                                 # and the pristine source tree
#
# Each artifact directory holds bzImage, mtty.ko, kernel.release and config. The cache
# lives in $DEVMIG_KERNEL_CACHE (default /var/cache/devmig-kernel): a second
# run with the same inputs builds nothing. Needs linux-source-6.1, flex, bison,
# bc, libelf-dev, cpio and a C toolchain (kernel/vm/run.sh installs them).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
kernel_dir="$(dirname "$here")"
cache="${DEVMIG_KERNEL_CACHE:-/var/cache/devmig-kernel}"
tarball=/usr/src/linux-source-6.1.tar.xz
jobs="$(nproc)"

log() { echo "build-kernel: $*" >&2; }

[ -r "$tarball" ] || { log "$tarball is missing (apt-get install linux-source-6.1)"; exit 1; }
pkg_version="$(dpkg-query -W -f '${Version}' linux-source-6.1)"

# Keys: what each kernel is built from. Changing the fragment, a patch, or this
# script's build steps (the version line below) gives a new key.
build_steps=2
base_key="$( { echo "linux-source-6.1 $pkg_version steps $build_steps"; cat "$kernel_dir/config.fragment"; } |
    sha256sum | cut -c1-16)"
patched_key="$( { echo "$base_key"; cat "$kernel_dir/patches/series";
    while read -r p; do [ -n "$p" ] && cat "$kernel_dir/patches/$p"; done < "$kernel_dir/patches/series"; } |
    sha256sum | cut -c1-16)"
base_out="$cache/kernels/unpatched-$base_key"
patched_out="$cache/kernels/patched-$patched_key"

src="$cache/src-$pkg_version"
obj="$cache/obj-$base_key"

# Kernels and build trees of other inputs are stale: keep the cache to one of each.
prune() {
    local old
    for old in "$cache"/kernels/unpatched-* "$cache"/kernels/patched-* "$cache"/obj-* "$cache"/src-*; do
        case "$old" in
            "$base_out" | "$patched_out" | "$obj" | "$src") ;;
            *) [ -e "$old" ] && rm -rf "$old" ;;
        esac
    done
    return 0
}

if [ -f "$base_out/done" ] && [ -f "$patched_out/done" ] && [ -f "$src/.devmig-pristine" ]; then
    log "cached: $base_out $patched_out"
    prune
    echo "$base_out" "$patched_out" "$src"
    exit 0
fi

mkdir -p "$cache/kernels"
exec 9>"$cache/lock"
flock 9

# The source tree is kept pristine between runs; a run killed while it was
# patched leaves the stamp "patched" and the tree is extracted again.
if [ ! -f "$src/.devmig-pristine" ]; then
    log "extracting $tarball ($pkg_version)"
    rm -rf "$src" "$obj"
    mkdir -p "$src"
    tar -xJf "$tarball" -C "$src" --strip-components=1
    touch "$src/.devmig-pristine"
fi

build() {
    make -s -C "$src" O="$obj" -j"$jobs" bzImage modules >"$obj/build.log" 2>&1 || {
        tail -40 "$obj/build.log" >&2
        log "kernel build failed (full log: $obj/build.log)"
        exit 1
    }
}

save() {
    local out="$1"
    rm -rf "$out.tmp"
    mkdir -p "$out.tmp"
    cp "$obj/arch/x86/boot/bzImage" "$out.tmp/"
    cp "$obj/samples/vfio-mdev/mtty.ko" "$out.tmp/"
    cp "$obj/include/config/kernel.release" "$out.tmp/"
    cp "$obj/.config" "$out.tmp/config"
    touch "$out.tmp/done"
    rm -rf "$out"
    mv "$out.tmp" "$out"
}

start=$SECONDS
if [ ! -f "$obj/.config" ]; then
    log "configuring (tinyconfig + config.fragment)"
    mkdir -p "$obj"
    make -s -C "$src" O="$obj" tinyconfig >/dev/null
    cat "$kernel_dir/config.fragment" >>"$obj/.config"
    make -s -C "$src" O="$obj" olddefconfig >/dev/null 2>&1
    # Every requested option must have survived olddefconfig.
    missing=0
    while read -r line; do
        case "$line" in
            CONFIG_*=*)
                grep -qx "$line" "$obj/.config" || { log "config: $line did not take"; missing=1; } ;;
            "# CONFIG_"*" is not set")
                opt="${line#\# }"; opt="${opt%% *}"
                ! grep -q "^$opt=" "$obj/.config" || { log "config: $opt is still set"; missing=1; } ;;
        esac
    done <"$kernel_dir/config.fragment"
    [ "$missing" = 0 ] || exit 1
fi

if [ ! -f "$base_out/done" ]; then
    log "building the unpatched kernel with $jobs jobs"
    build
    save "$base_out"
    log "unpatched kernel built in $((SECONDS - start)) s"
fi

if [ ! -f "$patched_out/done" ]; then
    log "applying kernel/patches"
    rm -f "$src/.devmig-pristine"
    while read -r p; do
        [ -n "$p" ] || continue
        patch -s -p1 -d "$src" <"$kernel_dir/patches/$p" || { log "patch $p does not apply"; exit 1; }
    done <"$kernel_dir/patches/series"
    log "building the patched kernel"
    build
    save "$patched_out"
    tac "$kernel_dir/patches/series" | while read -r p; do
        [ -n "$p" ] || continue
        patch -s -R -p1 -d "$src" <"$kernel_dir/patches/$p"
    done
    touch "$src/.devmig-pristine"
    log "both kernels ready after $((SECONDS - start)) s"
fi

prune
echo "$base_out" "$patched_out" "$src"
