"""Container records in the shapes of the Docker Engine API (list, inspect, top, stats, df)."""

from __future__ import annotations

import asyncio
import shlex
import time
from collections.abc import Iterable

from hyperd.containers import health, links
from hyperd.containers import state as st
from hyperd.containers.model import Container
from hyperd.containers.prune import dir_size
from hyperd.network.records import endpoint_id


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


def status_text(c: Container) -> str:
    """The STATUS column of `ps`."""
    s = c.state
    now = time.time()
    if s.status in (st.RUNNING, st.PAUSED):
        up = f"Up {_ago(now - st.parse_rfc3339(s.started_at))}"
        if s.paused:
            return f"{up} (Paused)"
        if s.health:
            verdict = "health: starting" if s.health == health.STARTING else s.health
            return f"{up} ({verdict})"
        return up
    if s.status == st.RESTARTING:
        return f"Restarting ({s.exit_code}) {_ago(now - st.parse_rfc3339(s.finished_at))} ago"
    if s.status == st.EXITED and s.finished_at != st.ZERO_TIME:
        return f"Exited ({s.exit_code}) {_ago(now - st.parse_rfc3339(s.finished_at))} ago"
    if s.status == st.REMOVING:
        return "Removal In Progress"
    return s.status.capitalize()


def _ports(c: Container) -> list[dict]:
    out = [
        {"IP": p.host_ip, "PrivatePort": p.port, "PublicPort": p.host_port, "Type": p.proto}
        for p in c.published
    ]
    published = {(p.port, p.proto) for p in c.published}
    for key in c.config.exposed_ports:
        port, _, proto = key.partition("/")
        if (int(port), proto or "tcp") not in published:
            out.append({"PrivatePort": int(port), "Type": proto or "tcp"})
    return out


def summary(c: Container, containers: Iterable[Container] = ()) -> dict:
    """One entry of GET /containers/json (``containers``: all, for the names links give)."""
    return {
        "Id": c.id,
        "Names": links.names(c, containers),
        "Image": c.image,
        "ImageID": c.image_id,
        "Command": shlex.join(c.args),
        "Created": int(c.created_unix),
        "State": c.state.status,
        "Status": status_text(c),
        "Ports": _ports(c),
        "Labels": c.config.labels,
        "SizeRw": 0,
        "HostConfig": {"NetworkMode": c.host.network_mode},
        "NetworkSettings": {"Networks": _networks(c)},
        "Mounts": [
            {
                "Type": m.type,
                "Name": m.source if m.type == "volume" else "",
                "Destination": m.target,
                "RW": not m.readonly,
            }
            for m in c.mounts
        ],
    }


def _networks(c: Container) -> dict:
    return {
        name: {
            "NetworkID": a.network_id,
            "EndpointID": endpoint_id(c.id, a.network_id) if a.ip else "",
            "Aliases": a.aliases or None,
            "Links": a.links or None,
            "IPAMConfig": _ipam_config(a),
            "DriverOpts": a.driver_opts or None,
            "IPAddress": a.ip,
            "IPPrefixLen": a.prefix,
            "Gateway": a.gateway,
            "MacAddress": a.mac if a.ip else a.mac_address,
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
        }
        for name, a in c.networks.items()
    }


def _ipam_config(a) -> dict | None:
    """EndpointSettings.IPAMConfig as asked for (None when nothing was)."""
    out = {}
    if a.ipv4_address:
        out["IPv4Address"] = a.ipv4_address
    if a.link_local_ips:
        out["LinkLocalIPs"] = list(a.link_local_ips)
    return out or None


def _state(c: Container) -> dict:
    s = c.state
    out = {
        "Status": s.status,
        "Running": s.running,
        "Paused": s.paused,
        "Restarting": s.status == st.RESTARTING,
        "OOMKilled": s.oom_killed,
        "Dead": s.status == st.DEAD,
        "Pid": 0,
        "ExitCode": s.exit_code,
        "Error": s.error,
        "StartedAt": s.started_at,
        "FinishedAt": s.finished_at,
    }
    if health.command(c.config.healthcheck) is not None:
        out["Health"] = {
            "Status": s.health or health.STARTING,
            "FailingStreak": s.failing_streak,
            "Log": s.health_log,
        }
    return out


def _config(c: Container) -> dict:
    cfg = c.config
    out = {
        "Hostname": cfg.hostname,
        "Domainname": cfg.domainname,
        "User": cfg.user,
        "AttachStdin": cfg.attach_stdin,
        "AttachStdout": cfg.attach_stdout,
        "AttachStderr": cfg.attach_stderr,
        "ExposedPorts": {p: {} for p in cfg.exposed_ports} or None,
        "Tty": cfg.tty,
        "OpenStdin": cfg.open_stdin,
        "StdinOnce": cfg.stdin_once,
        "Env": cfg.env,
        "Cmd": cfg.cmd,
        "Image": c.image,
        "Volumes": {v: {} for v in cfg.volumes} or None,
        "WorkingDir": cfg.working_dir,
        "Entrypoint": cfg.entrypoint or None,
        "Labels": cfg.labels,
    }
    if cfg.stop_signal:
        out["StopSignal"] = cfg.stop_signal
    if cfg.stop_timeout is not None:
        out["StopTimeout"] = cfg.stop_timeout
    if cfg.mac_address:
        out["MacAddress"] = cfg.mac_address
    if cfg.healthcheck is not None:
        hc = cfg.healthcheck
        out["Healthcheck"] = {
            "Test": hc.test,
            "Interval": hc.interval,
            "Timeout": hc.timeout,
            "StartPeriod": hc.start_period,
            "Retries": hc.retries,
        }
        if hc.start_interval:
            out["Healthcheck"]["StartInterval"] = hc.start_interval
    return out


def _host_config(c: Container) -> dict:
    h = c.host
    bindings: dict[str, list] = {}
    for r in h.port_bindings:
        bindings.setdefault(f"{r.port}/{r.proto}", []).append(
            {"HostIp": r.host_ip, "HostPort": str(r.host_port) if r.host_port else ""}
        )
    return {
        "VolumeDriver": "",
        **h.passthrough,
        "AutoRemove": h.auto_remove,
        "Runtime": h.runtime or "hyper",
        "RestartPolicy": {
            "Name": h.restart.name,
            "MaximumRetryCount": h.restart.maximum_retry_count,
        },
        "NanoCpus": h.nano_cpus,
        "CpuShares": h.cpu_shares,
        "CpusetCpus": h.cpuset_cpus,
        "Memory": h.memory,
        "PortBindings": bindings,
        "PublishAllPorts": h.publish_all,
        "NetworkMode": h.network_mode,
        "Links": [f"/{n}:/{c.name}/{a}" for n, _, a in (x.partition(":") for x in h.links)] or None,
        "ExtraHosts": h.extra_hosts or None,
        "Dns": h.dns,
        "DnsSearch": h.dns_search,
        "DnsOptions": h.dns_options,
        "LogConfig": {"Type": h.log_config.type, "Config": h.log_config.config},
        "Privileged": h.privileged,
        "CapAdd": h.cap_add or None,
        "CapDrop": h.cap_drop or None,
        "SecurityOpt": h.security_opt or None,
        "ReadonlyRootfs": h.readonly_rootfs,
        "Tmpfs": h.tmpfs or None,
        "ShmSize": h.shm_size or 64 << 20,
        "Sysctls": h.sysctls or None,
        "GroupAdd": h.group_add or None,
        "Init": h.init,
        "ConsoleSize": list(h.console_size or (0, 0)),
        "Binds": [_bind(m) for m in h.mounts if m.from_binds] or None,
        "Mounts": [_mount_config(m) for m in h.mounts if not m.from_binds] or None,
        "VolumesFrom": h.volumes_from or None,
    }


def _bind(m) -> str:
    source = m.source if m.type == "bind" or m.source else ""
    modes = ",".join(x for x in ("ro" if m.readonly else "", m.propagation) if x)
    return ":".join(x for x in (source, m.target, modes) if x)


def _mount_config(m) -> dict:
    out = {"Type": m.type, "Source": m.source, "Target": m.target, "ReadOnly": m.readonly}
    if m.type == "bind":
        out["BindOptions"] = {"Propagation": m.propagation}
    elif m.type == "volume":
        out["VolumeOptions"] = {"NoCopy": m.no_copy, "Labels": m.labels or None}
        if m.subpath:
            out["VolumeOptions"]["Subpath"] = m.subpath
    else:
        out["TmpfsOptions"] = {"SizeBytes": m.tmpfs_size, "Mode": m.tmpfs_mode}
    return out


def mounts_view(svc, c: Container) -> list[dict]:
    """The Mounts of inspect and list: where each mount comes from."""
    out = []
    for m in c.mounts:
        row = {
            "Type": m.type,
            "Source": m.source,
            "Destination": m.target,
            "Mode": "ro" if m.readonly else "",
            "RW": not m.readonly,
            "Propagation": m.propagation if m.type == "bind" else "",
        }
        if m.type == "volume":
            row.update(Name=m.source, Driver="local", Source=str(svc.volumes.disk(m.source)))
            row["Mode"] = "z" if not m.readonly else "ro"
        out.append(row)
    return out


def inspect(svc, c: Container) -> dict:
    """GET /containers/{id}/json."""
    return {
        "Id": c.id,
        "Created": c.created,
        "Path": c.args[0] if c.args else "",
        "Args": c.args[1:],
        "State": _state(c),
        "Image": c.image_id,
        "ResolvConfPath": "",
        "HostnamePath": "",
        "HostsPath": "",
        "LogPath": str(svc.log_path(c)),
        "Name": f"/{c.name}",
        "RestartCount": c.restart_count,
        "Driver": svc.images.rootfs_fstype,
        "Platform": "linux",
        "ExecIDs": svc.execs.ids(c.id) or None,
        "HostConfig": _host_config(c),
        "Mounts": mounts_view(svc, c),
        "Config": _config(c),
        "NetworkSettings": {
            "IPAddress": c.ip,
            "IPPrefixLen": next((a.prefix for a in c.networks.values() if a.ip), 0),
            "Gateway": next((a.gateway for a in c.networks.values() if a.ip), ""),
            "MacAddress": next((a.mac for a in c.networks.values() if a.ip), ""),
            "Ports": ports_map(c),
            "Networks": _networks(c),
        },
        "Hyper": {
            "VM": c.sandbox,
            "Accel": svc.sandboxes.accel,
            "Cpus": c.cpus,
            "MemoryMiB": c.memory >> 20,
            "ConsoleLog": str(svc.console_path(c)),
            "Reason": c.state.reason,
        },
    }


def ports_map(c: Container) -> dict:
    """NetworkSettings.Ports: published ports, and exposed ones not published (None)."""
    out: dict[str, list[dict] | None] = dict.fromkeys(c.config.exposed_ports)
    for r in c.host.port_bindings:
        out.setdefault(f"{r.port}/{r.proto}", None)
    for b in c.published:
        key = f"{b.port}/{b.proto}"
        out[key] = [*(out.get(key) or []), {"HostIp": b.host_ip, "HostPort": str(b.host_port)}]
    return out


# -- top -----------------------------------------------------------------------------------

_EF = ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
_AUX = ["USER", "PID", "%CPU", "%MEM", "VSZ", "RSS", "TTY", "STAT", "START", "TIME", "COMMAND"]


def _cputime(ms: float) -> str:
    s = int(ms / 1000)
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def top(procs: list, ps_args: str) -> dict:
    """GET /containers/{id}/top: ``ps -ef`` columns, or ``ps aux`` ones when asked."""
    aux = "u" in ps_args.replace("-", "") or "aux" in ps_args
    rows = []
    for p in procs:
        start = time.strftime("%H:%M", time.localtime(p.start_time))
        cmd = " ".join(p.args)
        if aux:
            rows.append(
                [
                    str(p.uid),
                    str(p.pid),
                    "0.0",
                    "0.0",
                    str(p.vsz // 1024),
                    str(p.rss // 1024),
                    p.tty or "?",
                    p.state,
                    start,
                    _cputime(p.cpu_time_ms).lstrip("0:") or "0:00",
                    cmd,
                ]
            )
        else:
            rows.append(
                [str(p.uid), str(p.pid), str(p.ppid), "0", start, p.tty or "?",
                 _cputime(p.cpu_time_ms), cmd]
            )  # fmt: skip
    return {"Titles": _AUX if aux else _EF, "Processes": rows}


# -- stats ---------------------------------------------------------------------------------


def stats(c: Container, sample, previous) -> dict:
    """One sample of GET /containers/{id}/stats (Docker's shape; the VM's counters)."""

    def cpu(s) -> dict:
        if s is None:
            return {"cpu_usage": {"total_usage": 0}, "system_cpu_usage": 0, "online_cpus": 0}
        return {
            "cpu_usage": {"total_usage": s.cpu_time_ns, "usage_in_kernelmode": 0,
                          "usage_in_usermode": s.cpu_time_ns},
            "system_cpu_usage": s.system_ns,
            "online_cpus": s.cpus,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        }  # fmt: skip

    return {
        "read": sample.read,
        "preread": previous.read if previous else st.ZERO_TIME,
        "id": c.id,
        "name": f"/{c.name}",
        "num_procs": 0,
        "pids_stats": {},
        "cpu_stats": cpu(sample),
        "precpu_stats": cpu(previous),
        "memory_stats": {"usage": sample.memory_used, "limit": sample.memory_limit, "stats": {}},
        "blkio_stats": {
            "io_service_bytes_recursive": [
                {"major": 254, "minor": 0, "op": "read", "value": sample.block_read},
                {"major": 254, "minor": 0, "op": "write", "value": sample.block_write},
            ]
        },
        "networks": {
            name: {
                "rx_bytes": rx,
                "rx_packets": rxp,
                "tx_bytes": tx,
                "tx_packets": txp,
                "rx_errors": 0,
                "tx_errors": 0,
                "rx_dropped": 0,
                "tx_dropped": 0,
            }
            for name, (rx, rxp, tx, txp) in sample.networks.items()
        },  # fmt: skip
    }


# -- disk usage ----------------------------------------------------------------------------


async def disk_usage(svc, images) -> dict:
    """GET /system/df."""
    cs = []
    for c in svc.store:
        row = summary(c, svc.store)
        row["SizeRw"] = await asyncio.to_thread(dir_size, svc.dir(c))
        row["SizeRootFs"] = row["SizeRw"]
        cs.append(row)
    imgs, layers = [], 0
    for rec in await asyncio.to_thread(images.list):
        data = await asyncio.to_thread(images.inspect, rec.id)
        size = data.get("Size", 0)
        layers += size
        imgs.append(
            {
                "Id": data["Id"],
                "RepoTags": data.get("RepoTags") or [],
                "RepoDigests": data.get("RepoDigests") or [],
                "Created": int(rec.added),
                "Size": size,
                "SharedSize": 0,
                "VirtualSize": size,
                "Labels": (data.get("Config") or {}).get("Labels") or {},
                "Containers": sum(1 for c in svc.store if c.image_id == rec.id),
                "ParentId": "",
            }
        )
    return {"LayersSize": layers, "Images": imgs, "Containers": cs, "Volumes": [], "BuildCache": []}
