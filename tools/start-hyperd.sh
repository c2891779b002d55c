#!/bin/sh
# Start hyperd in the background unless it already answers; log to /var/log/hyper.
# (No systemd here; on a systemd machine a unit running `hyperd` does the same.)
set -eu
sock=${HYPER_SOCKET:-/run/hyper/hyperd.sock}
if curl -sf --unix-socket "$sock" http://hyperd/_ping >/dev/null 2>&1; then
    exit 0
fi
mkdir -p /var/log/hyper
nohup hyperd --syslog >>/var/log/hyper/hyperd.log 2>&1 </dev/null &
i=0
until curl -sf --unix-socket "$sock" http://hyperd/_ping >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -ge 300 ]; then
        echo "start-hyperd: hyperd did not come up; see /var/log/hyper/hyperd.log" >&2
        tail -20 /var/log/hyper/hyperd.log >&2
        exit 1
    fi
    sleep 0.1
done
