"""Container records in the shapes of the Docker Engine API (list and inspect)."""

from __future__ import annotations

import shlex
import time

from hyperd.containers import model as m


def _ago(seconds: float) -> str:
    """Docker's human durations: 'Less than a second', '3 seconds', 'About a minute'..."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s < 60:
        return f"{s} seconds" if s != 1 else "1 second"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    return f"{s // 86400} days"


def status_text(c: m.Container) -> str:
    """The STATUS column of `ps`."""
    st = c.state
    now = time.time()
    if st.status == m.RUNNING:
        return f"Up {_ago(now - m.parse_rfc3339(st.started_at))}"
    if st.status == m.RESTARTING:
        return f"Restarting ({st.exit_code}) {_ago(now - m.parse_rfc3339(st.finished_at))} ago"
    if st.status == m.EXITED and st.finished_at != m.ZERO_TIME:
        return f"Exited ({st.exit_code}) {_ago(now - m.parse_rfc3339(st.finished_at))} ago"
    return st.status.capitalize()


def summary(c: m.Container) -> dict:
    """One entry of GET /containers/json."""
    return {
        "Id": c.id,
        "Names": [f"/{c.name}"],
        "Image": c.image,
        "ImageID": c.image_id,
        "Command": shlex.join(c.args),
        "Created": int(m.parse_rfc3339(c.created)),
        "State": c.state.status,
        "Status": status_text(c),
        "Ports": [
            {
                "IP": b["host_ip"],
                "PrivatePort": b["port"],
                "PublicPort": b["host_port"],
                "Type": b["proto"],
            }
            for b in c.published
        ],
        "Labels": c.labels,
        "HostConfig": {"NetworkMode": c.network_mode},
    }


def inspect(c: m.Container, accel: str, log_path: str, console: str) -> dict:
    """GET /containers/{id}/json."""
    st = c.state
    return {
        "Id": c.id,
        "Name": f"/{c.name}",
        "Created": c.created,
        "Path": c.args[0] if c.args else "",
        "Args": c.args[1:],
        "State": {
            "Status": st.status,
            "Running": st.status == m.RUNNING,
            "Paused": False,
            "Restarting": st.status == m.RESTARTING,
            "OOMKilled": st.oom_killed,
            "Dead": st.status == m.DEAD,
            "Pid": 0,
            "ExitCode": st.exit_code,
            "Error": st.error,
            "StartedAt": st.started_at,
            "FinishedAt": st.finished_at,
        },
        "Image": c.image_id,
        "RestartCount": st.restart_count,
        "LogPath": log_path,
        "Config": {
            "Hostname": c.hostname,
            "User": c.user,
            "Tty": c.tty,
            "OpenStdin": c.open_stdin,
            "StdinOnce": c.stdin_once,
            "Env": c.env,
            "Cmd": c.cmd,
            "Entrypoint": c.entrypoint or None,
            "Image": c.image,
            "WorkingDir": c.workdir,
            "Labels": c.labels,
            "StopSignal": c.stop_signal,
        },
        "HostConfig": {
            "AutoRemove": c.auto_remove,
            "RestartPolicy": {
                "Name": c.restart.name,
                "MaximumRetryCount": c.restart.maximum_retry_count,
            },
            "NanoCpus": c.nano_cpus,
            "Memory": c.memory,
            "LogConfig": {"Type": "json-file", "Config": {}},
            "NetworkMode": c.network_mode,
            "Links": c.links,
        },
        "NetworkSettings": {
            "IPAddress": c.ip,
            "MacAddress": c.mac if c.ip else "",
            "Ports": ports_map(c),
        },
        "Hyper": {
            "VM": c.vm,
            "Accel": accel,
            "Cpus": c.cpus,
            "MemoryMiB": c.memory >> 20,
            "ConsoleLog": console,
            "Reason": st.reason,
        },
    }


def ports_map(c: m.Container) -> dict:
    """NetworkSettings.Ports: published ports, and requested ones not (yet) published."""
    out: dict[str, list[dict] | None] = {f"{r['port']}/{r['proto']}": None for r in c.port_requests}
    for b in c.published:
        key = f"{b['port']}/{b['proto']}"
        out[key] = [
            *(out.get(key) or []),
            {"HostIp": b["host_ip"], "HostPort": str(b["host_port"])},
        ]
    return out
