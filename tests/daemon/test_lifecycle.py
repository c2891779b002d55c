"""hyperd + hyper against real VMs: run, ps, exec, logs, stop, start, rm, restart policy,
re-adoption after a daemon crash, a killed VM, concurrency and bad input."""

from __future__ import annotations

import concurrent.futures
import fcntl
import http.client
import json
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.vm
IMG = "busybox"


def _name() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


def _ok(res):
    assert res.returncode == 0, (res.returncode, res.stdout, res.stderr)
    return res.stdout.decode()


def _inspect(hyperd, name) -> dict:
    return json.loads(_ok(hyperd.hyper("inspect", name)))[0]


def test_run_prints_and_exits_with_the_containers_code(hyperd):
    res = hyperd.hyper("run", "--rm", IMG, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (res.stdout, res.stderr, res.returncode) == (b"out\n", b"err\n", 3)


@pytest.mark.parametrize(
    "cmd, code", [(["no-such-cmd"], 127), (["/etc/passwd"], 126), (["true"], 0)]
)
def test_exec_failures_use_docker_codes(hyperd, cmd, code):
    assert hyperd.hyper("run", "--rm", IMG, *cmd).returncode == code


def test_stdin_pipe_is_binary_safe(hyperd):
    assert hyperd.hyper("run", "--rm", "-i", IMG, "cat", input=b"hi\n").stdout == b"hi\n"
    data = os.urandom(1 << 20)
    res = hyperd.hyper("run", "--rm", "-i", IMG, "cat", input=data)
    assert res.returncode == 0 and res.stdout == data


def test_detached_lifecycle_round_trip(hyperd):
    name = _name()
    cid = _ok(
        hyperd.hyper(
            "run",
            "-d",
            "--name",
            name,
            IMG,
            "sh",
            "-c",
            "echo started; while true; do sleep 1; done",
        )
    ).strip()
    assert len(cid) == 64
    assert name in _ok(hyperd.hyper("ps"))
    assert cid[:12] in _ok(hyperd.hyper("ps", "-q"))
    assert _ok(hyperd.hyper("exec", name, "sh", "-c", "echo $((6*7))")) == "42\n"
    assert hyperd.hyper("exec", name, "sh", "-c", "exit 5").returncode == 5
    assert _ok(hyperd.hyper("exec", "-u", "nobody", name, "id", "-u")) == "65534\n"
    assert _ok(hyperd.hyper("logs", name)) == "started\n"
    _ok(hyperd.hyper("stop", "-t", "1", name))
    assert _inspect(hyperd, name)["State"]["Status"] == "exited"
    assert name not in _ok(hyperd.hyper("ps"))
    assert name in _ok(hyperd.hyper("ps", "-a"))
    _ok(hyperd.hyper("start", name))
    assert _inspect(hyperd, name)["State"]["Running"] is True
    deadline = time.time() + 30
    while _ok(hyperd.hyper("logs", name)) != "started\nstarted\n" and time.time() < deadline:
        time.sleep(0.2)
    assert _ok(hyperd.hyper("logs", name)) == "started\nstarted\n"
    assert hyperd.hyper("rm", name).returncode != 0  # running: needs -f
    _ok(hyperd.hyper("rm", "-f", name))
    assert name not in _ok(hyperd.hyper("ps", "-a"))
    assert hyperd.client().containers.list(all=True, filters={"name": name}) == []


def test_rm_removes_container_its_vm_and_files(hyperd):
    name = _name()
    cid = _ok(hyperd.hyper("create", "--rm", "--name", name, IMG, "true")).strip()
    _ok(hyperd.hyper("start", "-a", name))
    assert name not in _ok(hyperd.hyper("ps", "-a"))
    assert _vm_gone(f"hyper-{cid[:12]}")
    deadline = time.time() + 10
    while (hyperd.root / "containers" / cid).exists() and time.time() < deadline:
        time.sleep(0.2)
    assert not (hyperd.root / "containers" / cid).exists()


def test_logs_keep_streams_and_timestamps(hyperd):
    name = _name()
    _ok(hyperd.hyper("run", "--name", name, IMG, "sh", "-c", "echo a; echo b >&2"))
    res = hyperd.hyper("logs", name)
    assert (res.stdout, res.stderr) == (b"a\n", b"b\n")
    stamped = hyperd.hyper("logs", "-t", name)
    stamp = rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z "
    assert re.fullmatch(stamp + rb"a\n", stamped.stdout), stamped.stdout
    assert re.fullmatch(stamp + rb"b\n", stamped.stderr), stamped.stderr
    last = hyperd.hyper("logs", "--tail", "1", name)
    assert (last.stdout, last.stderr) == (b"", b"b\n")
    _ok(hyperd.hyper("rm", name))


def test_tty_gets_a_terminal_of_the_local_size(hyperd):
    main_fd, sub_fd = pty.openpty()
    fcntl.ioctl(sub_fd, termios.TIOCSWINSZ, struct.pack("HHHH", 31, 97, 0, 0))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hyperctl.cli",
            "run",
            "--rm",
            "-t",
            IMG,
            "sh",
            "-c",
            "tty; stty size",
        ],
        stdin=sub_fd,
        stdout=sub_fd,
        stderr=sub_fd,
        env=hyperd.env,
        start_new_session=True,
    )
    os.close(sub_fd)
    out = b""
    deadline = time.time() + 120
    while time.time() < deadline:
        ready, _, _ = select.select([main_fd], [], [], 1)
        if ready:
            try:
                chunk = os.read(main_fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    proc.wait(30)
    os.close(main_fd)
    text = out.replace(b"\r", b"").decode()
    assert "/dev/pts/" in text and "31 97" in text, text
    assert proc.returncode == 0


def test_restart_on_failure_2_restarts_exactly_twice(hyperd):
    name = _name()
    _ok(
        hyperd.hyper(
            "run",
            "-d",
            "--name",
            name,
            "--restart",
            "on-failure:2",
            IMG,
            "sh",
            "-c",
            "echo run; exit 1",
        )
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        st = _inspect(hyperd, name)
        if st["State"]["Status"] == "exited" and st["RestartCount"] == 2:
            break
        time.sleep(0.5)
    time.sleep(2)  # would a third restart come?
    st = _inspect(hyperd, name)
    assert (st["State"]["Status"], st["RestartCount"], st["State"]["ExitCode"]) == ("exited", 2, 1)
    assert _ok(hyperd.hyper("logs", name)) == "run\n" * 3
    _ok(hyperd.hyper("rm", name))


def test_daemon_killed_then_restarted_readopts_running_container(hyperd):
    name = _name()
    _ok(
        hyperd.hyper(
            "run",
            "-d",
            "--name",
            name,
            IMG,
            "sh",
            "-c",
            "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.5; done",
        )
    )
    hyperd.stop(signal.SIGKILL)
    time.sleep(1.5)  # output produced while no daemon listens
    hyperd.start()
    assert name in _ok(hyperd.hyper("ps"))
    assert _ok(hyperd.hyper("exec", name, "echo", "alive")) == "alive\n"
    time.sleep(1)
    ticks = _ok(hyperd.hyper("logs", name)).split("\n")[:-1]
    assert len(ticks) >= 4
    assert ticks == [f"tick {i}" for i in range(len(ticks))]  # nothing lost, in order
    _ok(hyperd.hyper("rm", "-f", name))


def test_daemon_sigterm_leaves_containers_running(hyperd):
    name = _name()
    _ok(hyperd.hyper("run", "-d", "--name", name, IMG, "sleep", "300"))
    vm = _inspect(hyperd, name)["Hyper"]["VM"]
    hyperd.stop(signal.SIGTERM)
    vms = subprocess.run(["virsh", "list", "--name"], capture_output=True, text=True).stdout
    assert vm in vms.split()
    hyperd.start()
    assert _inspect(hyperd, name)["State"]["Running"] is True
    _ok(hyperd.hyper("rm", "-f", name))


def test_vm_killed_marks_container_exited_without_leaks(hyperd):
    name = _name()
    cid = _ok(hyperd.hyper("run", "-d", "--name", name, IMG, "sleep", "300")).strip()
    vm = f"hyper-{cid[:12]}"
    pid = int(Path(f"/run/libvirt/qemu/{vm}.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 30
    while _inspect(hyperd, name)["State"]["Status"] != "exited" and time.time() < deadline:
        time.sleep(0.2)
    st = _inspect(hyperd, name)
    assert st["State"]["Status"] == "exited"
    assert st["Hyper"]["Reason"] == "qemu process died (killed or crashed)"
    assert name in _ok(hyperd.hyper("ps", "-a", "--filter", "status=exited"))
    assert _vm_gone(vm)
    _ok(hyperd.hyper("rm", name))


def _vm_gone(vm: str, timeout: float = 15) -> bool:
    """The domain disappears (teardown runs after the exit is recorded)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        vms = subprocess.run(["virsh", "list", "--all", "--name"], capture_output=True, text=True)
        if vm not in vms.stdout.split():
            return True
        time.sleep(0.2)
    return False


def test_ten_concurrent_runs_all_succeed(hyperd):
    def one(i):
        return hyperd.hyper("run", "--rm", IMG, "echo", f"n{i}", timeout=300)

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        results = list(pool.map(one, range(10)))
    assert [(r.returncode, r.stdout) for r in results] == [
        (0, f"n{i}\n".encode()) for i in range(10)
    ]


@pytest.mark.parametrize(
    "args, needle",
    [
        (["run", "--rm", "--pull", "never", "no-such-image-here"], "no-such-image-here"),
        (["run", "--rm", "no-such-image-here"], "docker.io"),
        (["run", "--rm", "-m", "lots", IMG, "true"], "lots"),
        (["run", "--rm", "--restart", "sometimes", IMG, "true"], "sometimes"),
        (["run", "--rm", "--cpus", "999", IMG, "true"], "CPU"),
        (["run", "--rm", "-m", "100g", IMG, "true"], "host memory"),
        (["stop", "no-such-container"], "no-such-container"),
        (["exec", "no-such-container", "true"], "no-such-container"),
        (["run", "--rm", "Bad:Ref!", "true"], "Bad:Ref!"),
    ],
)
def test_bad_input_is_one_clear_line_and_125(hyperd, args, needle):
    res = hyperd.hyper(*args)
    err = res.stderr.decode()
    assert res.returncode == 125, (res.returncode, err)
    # like docker, `run` may say it tries to pull first; the error itself is one line
    errors = [line for line in err.splitlines() if line.startswith("hyper: ")]
    assert len(errors) == 1 and needle in errors[0] and len(errors[0]) < 300, err
    if "--rm" in args:  # nothing is left behind, even when the start failed
        assert hyperd.client().containers.list(all=True, filters={"status": "created"}) == []
    assert hyperd.client().ping()


def test_name_clash_is_refused(hyperd):
    name = _name()
    _ok(hyperd.hyper("create", "--name", name, IMG, "true"))
    res = hyperd.hyper("create", "--name", name, IMG, "true")
    assert res.returncode == 125 and b"already in use" in res.stderr
    _ok(hyperd.hyper("rm", name))


def _raw_http(socket_path, method: str, path: str, body: bytes) -> tuple[int, dict]:
    conn = _UnixHTTPConnection(str(socket_path))
    conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read() or b"{}")


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.path)


@pytest.mark.parametrize(
    "method, path, body, status",
    [
        ("POST", "/containers/create", b"{not json", 400),
        ("POST", "/containers/create", b"[1, 2]", 400),
        ("POST", "/containers/create", b'{"Image": 5}', 400),
        ("POST", "/containers/create", b'{"Image": "busybox", "Cmd": 7}', 400),
        ("POST", "/containers/create", b'{"Image": "busybox", "HostConfig": {"Memory": "x"}}', 400),
        ("POST", "/containers/nope/kill?signal=SIGNOPE", b"", 404),
        ("GET", "/containers/json?filters=%7Bbad", b"", 400),
        ("GET", "/containers/json?filters=%7B%22colour%22%3A%5B%22red%22%5D%7D", b"", 400),
        ("POST", "/containers/create?name=..bad", b'{"Image": "busybox", "Cmd": ["true"]}', 400),
    ],
)
def test_malformed_api_requests_get_clear_errors(hyperd, method, path, body, status):
    code, payload = _raw_http(hyperd.socket, method, path, body)
    assert code == status and payload.get("message"), (code, payload)
    assert hyperd.client().ping()


def test_restart_leaves_other_daemons_vms_alone(hyperd, guest_assets):
    from hyperd.vm import designer
    from hyperd.vm.virt import Hypervisor

    name = f"hyper-{uuid.uuid4().hex[:12]}"
    run = hyperd.workdir / "foreign"
    run.mkdir(exist_ok=True)
    spec = designer.VMSpec(
        name=name,
        uuid=str(uuid.uuid4()),
        kernel=guest_assets.kernel,
        initrd=guest_assets.initrd,
        control_socket=str(run / "c.sock"),
        stream_socket=str(run / "s.sock"),
        console_log=str(run / "console.log"),
        metadata={"root": "/var/lib/another-hyperd"},
    )
    hv = Hypervisor()
    hv.create(
        designer.design(spec, "qemu" if "tcg" in _ok(hyperd.hyper("info")) else "kvm").to_xml()
    )
    try:
        hyperd.stop(signal.SIGTERM)
        hyperd.start()
        assert hv.state(name) == "running"
    finally:
        hv.destroy(name)


@pytest.mark.parametrize(
    "method, path, body, field",
    [
        ("POST", "/containers/create", {"Image": IMG, "Labels": ["a=b"]}, "Labels"),
        (
            "POST",
            "/containers/create",
            {"Image": IMG, "HostConfig": {"RestartPolicy": "always"}},
            "HostConfig.RestartPolicy",
        ),
        ("POST", "/containers/create", {"Image": IMG, "WorkingDir": 7}, "WorkingDir"),
        ("POST", "/containers/create", {"Image": IMG, "Hostname": "h" * 300}, "Hostname"),
        ("POST", "/containers/create", {"Image": IMG, "StopSignal": "BOGUS"}, "StopSignal"),
        (
            "POST",
            "/containers/create",
            {"Image": IMG, "HostConfig": {"Memory": 1 << 60}},
            "HostConfig.Memory",
        ),
        ("GET", '/containers/json?filters={"status":[5]}', None, "status"),
        ("GET", "/events?since=abc", None, "since"),
        (
            "POST",
            "/containers/create",
            {"Image": IMG, "HostConfig": {"ConsoleSize": ["24", "80"]}},
            "HostConfig.ConsoleSize",
        ),
    ],
)
def test_malformed_fields_are_400_naming_the_field(hyperd, method, path, body, field):
    """Each malformed input the core used to take (500s, or failures only at start) is a 400
    at create time that names the field; the daemon answers on."""
    raw = json.dumps(body).encode() if body is not None else b""
    code, payload = _raw_http(hyperd.socket, method, path.replace('"', "%22"), raw)
    assert code == 400 and field in payload["message"], (code, payload)
    assert hyperd.client().ping()


def test_exec_console_size_of_the_wrong_type_is_400(hyperd):
    name = _name()
    _ok(hyperd.hyper("run", "-d", "--name", name, IMG, "sleep", "60"))
    try:
        code, created = _raw_http(
            hyperd.socket, "POST", f"/containers/{name}/exec", b'{"Cmd": ["true"]}'
        )
        assert code == 201
        body = json.dumps({"Detach": True, "ConsoleSize": ["24", "80"]}).encode()
        code, payload = _raw_http(hyperd.socket, "POST", f"/exec/{created['Id']}/start", body)
        assert code == 400 and "ConsoleSize" in payload["message"], payload
    finally:
        hyperd.hyper("rm", "-f", name)
