#!/bin/sh
# Packs the guest initrd: a gzipped newc cpio holding /init (hyperstart),
# /dev/console (char 5,1) and the empty directories init mounts on.
# The archive is written directly (no mknod, no root), with fixed inode
# numbers and mtime 0, so the same binary always gives the same initrd.
# usage: mkinitrd.sh OUT [BINARY]
set -eu
out=${1:?usage: mkinitrd.sh OUT [BINARY]}
here=$(cd "$(dirname "$0")" && pwd)
bin=${2:-$here/hyperstart}
[ -f "$bin" ] || { echo "mkinitrd.sh: $bin missing (run make -C hyperstart)" >&2; exit 1; }

ino=1
pad() { n=$(( (4 - $1 % 4) % 4 )); [ "$n" -eq 0 ] || head -c "$n" /dev/zero; }

# entry NAME MODE NLINK SIZE RDEV_MAJOR RDEV_MINOR [FILE]
entry() {
    namesize=$(( ${#1} + 1 ))
    printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X' \
        "$ino" "$2" 0 0 "$3" 0 "$4" 0 0 "$5" "$6" "$namesize" 0
    printf '%s\000' "$1"
    pad $((110 + namesize))
    if [ -n "${7:-}" ]; then cat "$7"; pad "$4"; fi
    ino=$((ino + 1))
}

archive() {
    for d in dev proc sys run etc; do entry "$d" $((0040755)) 2 0 0 0; done
    entry tmp $((0041777)) 2 0 0 0
    entry dev/console $((0020600)) 1 0 5 1
    entry init $((0100755)) 1 "$(wc -c < "$bin")" 0 0 "$bin"
    ino=0
    entry TRAILER!!! 0 1 0 0 0
}

mkdir -p "$(dirname "$out")"
archive | gzip -9n > "$out.tmp"
mv "$out.tmp" "$out"
