#!/bin/sh
# Build mkfs.erofs from erofs-utils 1.8.6 (Debian trixie's source) for hyperd's root disks.
# Debian 12 ships erofs-utils 1.5, whose mkfs.erofs only packs a directory: every image
# would first be unpacked to disk. From 1.7 on, `mkfs.erofs --tar` builds the filesystem
# straight from a tar stream (hyperd/images/tarmerge.py). Cached outside the repo, keyed by
# the source tarball and this script; hyperd falls back to unpacking when it is absent.
# usage: tools/build-erofs-utils.sh OUTPUT_MKFS_EROFS
set -eu
out=${1:?usage: build-erofs-utils.sh OUTPUT_MKFS_EROFS}
version=1.8.6
sha256=5b221dc3fd6d151425b30534ede46fb7a90dc233a8659cba0372796b0a066547
url=http://deb.debian.org/debian/pool/main/e/erofs-utils/erofs-utils_$version.orig.tar.gz
cache_root=${HYPER_BUILD_CACHE:-/var/cache/hyper-build}
key=$( (echo "$sha256"; cat "$0") | sha256sum | cut -c1-16)
cache=$cache_root/erofs-utils-$key
if [ ! -x "$cache/mkfs.erofs" ]; then
    work=$cache_root/erofs-utils-build-$key
    rm -rf "$work"; mkdir -p "$work"
    echo "erofs-utils: cold build of $version into $work (key $key)" >&2
    curl -fsS --retry 3 -o "$work/src.tar.gz" "$url" \
        || { echo "erofs-utils: cannot download $url" >&2; exit 1; }
    echo "$sha256  $work/src.tar.gz" | sha256sum -c --quiet - \
        || { echo "erofs-utils: $url does not match sha256 $sha256" >&2; exit 1; }
    tar -C "$work" -xzf "$work/src.tar.gz"
    src=$work/erofs-utils-$version
    # only mkfs is needed; no compression (hyperd's images are uncompressed), no FUSE
    (cd "$src" && ./autogen.sh >/dev/null 2>&1 \
        && ./configure -q --disable-fuse --disable-lz4 --disable-lzma --without-zlib \
            --without-selinux --without-libzstd --without-qpl --without-xxhash \
        && make -s -j"$(nproc)" -C lib && make -s -C mkfs) >"$work/build.log" 2>&1 \
        || { tail -30 "$work/build.log" >&2; echo "erofs-utils: build failed" >&2; exit 1; }
    "$src/mkfs/mkfs.erofs" --help | grep -q -- '--tar' \
        || { echo "erofs-utils: the built mkfs.erofs has no --tar" >&2; exit 1; }
    mkdir -p "$cache"
    cp "$src/mkfs/mkfs.erofs" "$cache/mkfs.erofs.tmp"
    mv "$cache/mkfs.erofs.tmp" "$cache/mkfs.erofs"
    rm -rf "$work"
fi
mkdir -p "$(dirname "$out")"
cp "$cache/mkfs.erofs" "$out.tmp" && mv "$out.tmp" "$out"
