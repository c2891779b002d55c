#!/bin/sh
# Install every system package hyper needs on Debian 12, then the Python package into
# its own virtualenv (VENV, default /opt/hyper/venv) with `hyper`/`hyperd` on PATH.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-/opt/hyper/venv}
PYTHON=${PYTHON:-python3}
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Packages must not start services (nginx is installed only to build a test image).
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
fi
apt-get install -y -qq --no-install-recommends \
    ca-certificates curl make gcc libc6-dev pkg-config xz-utils cpio gzip \
    python3 python3-venv python3-dev \
    qemu-system-x86 libvirt-daemon-system libvirt-clients libvirt-dev libxml2-utils \
    linux-source-6.1 flex bison bc libelf-dev libssl-dev \
    libjansson-dev busybox-static e2fsprogs erofs-utils \
    autoconf automake libtool uuid-dev \
    docker-registry umoci skopeo apache2-utils \
    iproute2 iptables util-linux procps nginx-light wrk tini \
    docker-compose >/dev/null
# docker-compose (1.29, on docker-py) drives hyperd in tests/net. The docker CLI is a
# client the tests drive against hyperd; Debian ships it in docker.io
# (its dockerd is never started: policy-rc.d above, and no systemd).
if ! command -v docker >/dev/null 2>&1; then
    apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q -e "$here[test]" --config-settings editable_mode=compat
for cmd in hyper hyperd; do
    ln -sf "$VENV/bin/$cmd" "/usr/local/bin/$cmd"
done
