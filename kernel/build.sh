#!/bin/sh
# Build HyperKernel: tinyconfig + hyper.config on Debian's linux-source-6.1, output an
# uncompressed PVH vmlinux. The build is cached outside the repo, keyed by its inputs
# (source package version, the fragment, this script), so CI's warm path skips it.
# usage: kernel/build.sh OUTPUT_VMLINUX
set -eu
out=${1:?usage: build.sh OUTPUT_VMLINUX}
here=$(cd "$(dirname "$0")" && pwd)
src=/usr/src/linux-source-6.1.tar.xz
cache_root=${HYPER_BUILD_CACHE:-/var/cache/hyper-build}
[ -f "$src" ] || { echo "build.sh: $src missing (apt-get install linux-source-6.1)" >&2; exit 1; }
srcver=$(dpkg-query -W -f '${Version}' linux-source-6.1)
key=$( (echo "$srcver"; cat "$here/hyper.config" "$here/build.sh") | sha256sum | cut -c1-16)
cache=$cache_root/kernel-$key
if [ ! -f "$cache/vmlinux" ]; then
    work=$cache_root/kernel-build-$key
    rm -rf "$work"; mkdir -p "$work"
    echo "kernel: cold build into $work (key $key)" >&2
    tar -C "$work" -xf "$src"
    tree=$work/linux-source-6.1
    make -C "$tree" -s ARCH=x86_64 tinyconfig
    "$tree/scripts/kconfig/merge_config.sh" -m -O "$tree" "$tree/.config" "$here/hyper.config" >/dev/null
    make -C "$tree" -s ARCH=x86_64 olddefconfig
    # every option we asked for must have survived dependency resolution
    missing=$(grep -E '^CONFIG_[A-Z0-9_]+=' "$here/hyper.config" | while read -r line; do
        grep -qx "$line" "$tree/.config" || echo "$line"; done)
    [ -z "$missing" ] || { echo "kernel: options not applied:" $missing >&2; exit 1; }
    unwanted=$(sed -n 's/^# \(CONFIG_[A-Z0-9_]*\) is not set$/\1/p' "$here/hyper.config" | while read -r opt; do
        if grep -q "^$opt=" "$tree/.config"; then echo "$opt"; fi; done)
    [ -z "$unwanted" ] || { echo "kernel: options still set:" $unwanted >&2; exit 1; }
    make -C "$tree" -s ARCH=x86_64 -j"$(nproc)" vmlinux
    mkdir -p "$cache"
    cp "$tree/vmlinux" "$cache/vmlinux.tmp"
    strip --strip-debug "$cache/vmlinux.tmp" 2>/dev/null || true
    cp "$tree/.config" "$cache/config"
    mv "$cache/vmlinux.tmp" "$cache/vmlinux"
    rm -rf "$work"
fi
mkdir -p "$(dirname "$out")"
cp "$cache/vmlinux" "$out.tmp" && mv "$out.tmp" "$out"
echo "kernel: $out (key $key)" >&2
