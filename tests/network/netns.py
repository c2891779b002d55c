"""Run a test body in a fresh network namespace, in a forked child.

Nothing a test does to links, addresses, iptables or ip_forward can reach the host's network:
the child unshares its network namespace (CLONE_NEWNET via libc, as os.unshare is 3.12+),
checks that it really is in a new one, brings its loopback up and runs the function. The
namespace dies with the child. The result (or the child's traceback) comes back over a pipe.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import select
import signal
import time
import traceback

CLONE_NEWNET = 0x40000000


def _unshare_net() -> None:
    before = os.readlink("/proc/self/ns/net")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")
    if os.readlink("/proc/self/ns/net") == before:
        raise RuntimeError("still in the parent's network namespace")


def _lo_up() -> None:
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="lo")[0], state="up")


def in_netns(fn, *args, timeout: float = 120.0, **kwargs):
    """``fn(*args, **kwargs)`` in a child process inside a new network namespace."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            os.close(r)
            _unshare_net()
            _lo_up()
            payload = pickle.dumps(("ok", fn(*args, **kwargs)))
        except BaseException:
            payload = pickle.dumps(("err", traceback.format_exc()))
            code = 1
        try:
            with os.fdopen(w, "wb") as out:
                out.write(payload)
        finally:
            os._exit(code)
    os.close(w)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                raise TimeoutError(f"test body in netns did not finish in {timeout} s")
            ready, _, _ = select.select([r], [], [], left)
            if ready:
                data = os.read(r, 1 << 16)
                if not data:
                    break
                chunks.append(data)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    if not chunks:
        raise RuntimeError("netns child died without a result")
    status, value = pickle.loads(b"".join(chunks))
    if status == "err":
        raise AssertionError(f"failed inside the network namespace:\n{value}")
    return value
