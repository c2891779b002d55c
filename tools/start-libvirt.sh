#!/bin/sh
# Start virtlogd and libvirtd when they are not running (machines without systemd).
set -eu
# What Debian's udev rule does where udev runs: /dev/kvm root:kvm 0660. Without it,
# libvirt (checking as libvirt-qemu) and QEMU (probing as root) disagree on whether KVM
# exists, and libvirt re-probes QEMU's capabilities (~50 s) on every domain start.
if [ -c /dev/kvm ] && getent group kvm >/dev/null; then
    chgrp kvm /dev/kvm && chmod 0660 /dev/kvm
fi
if ! pgrep -x virtlogd >/dev/null 2>&1; then
    virtlogd -d
fi
# Under tini as subreaper: libvirt runs each QEMU as an orphan, and a VM's stop waits until
# that zombie is reaped. Where PID 1 is no real init it reaps late (~2 s per VM stop here,
# so 50 'rm -f' took 23 s); tini reaps on SIGCHLD, as systemd would. (A libvirtd that is
# already running is kept as it is, and QEMUs that outlive a libvirtd restarted by other
# means are PID 1's again.)
log=/var/log/libvirt/libvirtd.log
pid=
if [ ! -S /run/libvirt/libvirt-sock ] || ! pgrep -x libvirtd >/dev/null 2>&1; then
    if command -v tini >/dev/null 2>&1; then
        mkdir -p /var/log/libvirt
        setsid tini -s -- libvirtd </dev/null >>"$log" 2>&1 &
        pid=$!
    else
        echo "start-libvirt: tini not installed (make deps): VM stops may wait on PID 1" >&2
        libvirtd -d
    fi
fi
i=0
until virsh -q -c qemu:///system version >/dev/null 2>&1; do
    i=$((i + 1))
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
        echo "start-libvirt: libvirtd exited; see $log" >&2
        tail -n 5 "$log" >&2
        exit 1
    fi
    [ $i -lt 100 ] || { echo "start-libvirt: libvirtd did not come up (see $log)" >&2; exit 1; }
    sleep 0.1
done
