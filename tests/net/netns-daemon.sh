#!/bin/bash
# Runs inside `unshare --net --mount --fork`: a private /run/libvirt, loopback up, a
# holder process (its pid in HOLDER_FILE, for nsenter), our own virtlogd and libvirtd
# (so QEMU is spawned in this namespace), then hyperd.
# usage: netns-daemon.sh CONFIG HOLDER_FILE
set -euo pipefail
mount --make-rprivate /
mount -t tmpfs tmpfs /run/libvirt
ip link set lo up
sleep infinity &
echo $! > "$2"
virtlogd -d -p /run/libvirt/virtlogd.pid
# under tini as subreaper, as tools/start-libvirt.sh: ended QEMUs are reaped at once
if command -v tini >/dev/null 2>&1; then
    tini -s -- libvirtd -p /run/libvirt/libvirtd.pid </dev/null &
else
    libvirtd -d -p /run/libvirt/libvirtd.pid
fi
for _ in $(seq 100); do
    [ -S /run/libvirt/libvirt-sock ] && break
    sleep 0.1
done
[ -S /run/libvirt/libvirt-sock ] || { echo "netns-daemon: libvirtd did not come up" >&2; exit 1; }
exec "${PYTHON:-python3}" -m hyperd.main --config "$1"
