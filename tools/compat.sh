#!/bin/bash
# docker-py's own integration suite against a throwaway hyperd (`make compat`).
#   tools/compat.sh [SUITE_DIR] [extra run.sh/pytest args]
# The daemon runs with networking in a network namespace of its own (its own libvirtd and
# virtlogd, as tests/net does), so published ports and user networks work and no traffic
# leaves the namespace. Prints the suite's last line: "docker-py: N passed, N failed".
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
suite=${1:-$here/../shared/suites/docker-py}
shift || true
[ -x "$suite/run.sh" ] || { echo "compat: no suite at $suite (give its directory)" >&2; exit 2; }
VENV=${VENV:-/opt/hyper/venv}
work=$(mktemp -d /var/tmp/hyper-compat-XXXXXX)
chmod 755 "$work"
cat > "$work/config" <<EOF
root = "$work/root"
run_dir = "$work/run"
socket = "$work/run/hyperd.sock"
kernel = "$here/build/vmlinux"
initrd = "$here/build/initrd.img"
log_level = "info"
bridge = "hyper0"
EOF
sock=$work/run/hyperd.sock

cleanup() {
    holder=$(cat "$work/holder.pid" 2>/dev/null || true)
    [ -n "${unshare_pid:-}" ] && pkill -TERM -P "$unshare_pid" 2>/dev/null || true
    sleep 2
    if [ -n "$holder" ]; then
        for d in $(nsenter -t "$holder" -m -n virsh list --name 2>/dev/null); do
            nsenter -t "$holder" -m -n virsh destroy "$d" >/dev/null 2>&1 || true
        done
        for f in libvirtd virtlogd; do
            p=$(nsenter -t "$holder" -m cat "/run/libvirt/$f.pid" 2>/dev/null || true)
            [ -n "$p" ] && kill "$p" 2>/dev/null || true
        done
        kill "$holder" 2>/dev/null || true
    fi
    echo "compat: daemon log kept in $work/hyperd.log" >&2
    rm -rf "$work/root"
}
trap cleanup EXIT

"$here/tools/start-libvirt.sh"   # /dev/kvm permissions, as for the tests
cd "$here"
PYTHON="$VENV/bin/python" setsid unshare --net --mount --fork tests/net/netns-daemon.sh \
    "$work/config" "$work/holder.pid" >>"$work/hyperd.log" 2>&1 </dev/null &
unshare_pid=$!
for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.3; done
[ -S "$sock" ] || { echo "compat: hyperd did not come up; see $work/hyperd.log" >&2; exit 1; }
export DOCKER_HOST=unix://$sock
"$VENV/bin/python" -m hyperd.images.builtin busybox "$work/busybox.tar"
docker load -i "$work/busybox.tar" >/dev/null
"$suite/run.sh" "$@"
