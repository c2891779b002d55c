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
tini -s -- libvirtd -p /run/libvirt/libvirtd.pid </dev/null &
for _ in $(seq 100); do
    [ -S /run/libvirt/libvirt-sock ] && break
    sleep 0.1
done
exec "${PYTHON:-python3}" -m hyperd.main --config "$1"
