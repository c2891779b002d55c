"""`docker run` and `docker exec` with the real docker CLI: output, stdin, ttys, exit codes."""

from __future__ import annotations

import fcntl
import http.client
import json
import os
import pty
import select
import socket
import struct
import termios
import time

import pytest

pytestmark = pytest.mark.vm
IMG = "busybox"


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost")
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.unix_path)


def test_run_attached_keeps_streams_apart_and_returns_the_containers_code(docker):
    res = docker("run", "--rm", IMG, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert res.returncode == 7, res
    assert res.stdout == b"out\n" and res.stderr == b"err\n"


def test_run_detached_prints_the_id_and_wait_returns_the_code(docker, name):
    cid = docker.ok("run", "-d", "--name", name, IMG, "sh", "-c", "exit 5").strip()
    assert len(cid) == 64
    assert docker.ok("wait", name).strip() == "5"
    created = docker.ok("create", IMG, "true").strip()
    assert docker.ok("wait", created).strip() == "0"  # as Docker: created is not running
    docker.ok("rm", name, created)


def test_wait_next_exit_answers_headers_before_start(hyperd, docker):
    """The docker CLI's run waits (next-exit) before it starts, and blocks until the
    response's headers arrive: they must come at once, the body at the exit."""
    created = docker.ok("create", IMG, "sh", "-c", "exit 3").strip()
    conn = UnixHTTPConnection(str(hyperd.socket))
    conn.request("POST", f"/v1.41/containers/{created}/wait?condition=next-exit")
    conn.sock.settimeout(10)
    resp = conn.getresponse()  # would time out if the headers waited for the exit
    assert resp.status == 200
    docker.ok("start", created)
    conn.sock.settimeout(120)
    assert json.loads(resp.read()) == {"StatusCode": 3, "Error": None}
    docker.ok("rm", created)


@pytest.mark.parametrize(
    "args, code",
    [
        (["run", "--rm", IMG, "no-such-command"], 127),
        (["run", "--rm", IMG, "/etc/passwd"], 126),
        (["run", "--rm", "--pull", "never", "no-such-image-here"], 125),
        (["run", "--rm", "--no-such-flag", IMG, "true"], 125),
        (["run", "--rm", "--restart", "sometimes", IMG, "true"], 125),
    ],
)
def test_run_exit_codes_follow_docker(docker, args, code):
    res = docker(*args)
    assert res.returncode == code, res


def test_run_stdin_pipe_is_binary_safe(docker):
    data = bytes(range(256)) * 1024
    res = docker("run", "--rm", "-i", IMG, "cat", input=data)
    assert res.returncode == 0 and res.stdout == data


def _pty_run(docker, *args: str, rows: int = 24, cols: int = 80, timeout: float = 120):
    """Run docker under a terminal of the given size; (exit code, output)."""
    pid, fd = pty.fork()
    if pid == 0:  # child: the docker CLI on the terminal
        os.execvpe("docker", ["docker", *args], docker.env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    out = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), out


def test_run_tty_gets_a_terminal_of_the_clients_size(docker):
    code, out = _pty_run(docker, "run", "--rm", "-it", IMG, "sh", "-c", "tty; stty size; exit 4")
    assert code == 4, out
    assert b"/dev/pts/" in out and b"24 80" in out


def test_exec_output_stdin_codes_and_tty(docker, name):
    docker.ok("run", "-d", "--name", name, IMG, "sleep", "600")
    try:
        assert docker.ok("exec", name, "echo", "hi") == "hi\n"
        assert docker("exec", name, "sh", "-c", "exit 9").returncode == 9
        assert docker("exec", name, "no-such-command").returncode in (126, 127)
        assert docker.ok("exec", "-i", name, "cat", input=b"piped\n") == "piped\n"
        env = docker.ok("exec", "-e", "FOO=bar", "-w", "/tmp", name, "sh", "-c", "echo $FOO; pwd")
        assert env == "bar\n/tmp\n"
        code, out = _pty_run(docker, "exec", "-it", name, "sh", "-c", "tty; stty size", rows=30)
        assert code == 0 and b"/dev/pts/" in out and b"30 80" in out
        assert docker("exec", "no-such-container", "true").returncode == 1
    finally:
        docker("rm", "-f", name)


def test_attach_sends_stdin_and_returns_the_exit_code(docker, name):
    docker.ok("run", "-d", "-i", "--name", name, IMG, "sh", "-c", "read x; echo got $x; exit 6")
    res = docker("attach", name, input=b"hello\n")
    assert res.returncode == 6, res
    assert res.stdout == b"got hello\n"
    docker.ok("rm", name)


def test_logs_follow_streams_until_the_container_exits(docker, name):
    docker.ok(
        "run", "-d", "--name", name, IMG, "sh", "-c", "for i in 1 2 3; do echo $i; sleep 1; done"
    )
    assert docker.ok("logs", "-f", name, timeout=120) == "1\n2\n3\n"
    assert docker.ok("logs", "--tail", "1", name) == "3\n"
    stamped = docker.ok("logs", "-t", name).splitlines()
    assert len(stamped) == 3 and stamped[0].endswith(" 1") and "T" in stamped[0]
    docker.ok("rm", name)
