"""``hyper``: Docker's command line workflow over hyperd (flags → API calls, formatting only)."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import click

from hyperapi.errors import HyperError, InvalidArgument, NotFound
from hyperctl import commands_images_out, formatting, opts, streams
from hyperctl.client import APIClient, DaemonUnreachable, NotFoundError, PendingWait

CLIENT_VERSION = "0.1.0"
CLIENT_API_VERSION = "1.41"
USAGE_EXIT = 125
_NoArgsIsHelp = getattr(click.exceptions, "NoArgsIsHelpError", ())


# --- the group and its error handling -----------------------------------------------------


def _err(message: str) -> None:
    """One error, on one line of stderr."""
    line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    click.echo(f"hyper: {line}", err=True)


class HyperGroup(click.Group):
    """Routes every error to one ``hyper: <message>`` line and Docker's exit codes
    (125 for usage and daemon errors), also under click's CliRunner."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        code = self._main(args, prog_name or "hyper", complete_var, **extra)
        if not standalone_mode:
            return code
        sys.exit(code)

    def _main(self, args, prog_name, complete_var, **extra) -> int:
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            return rv if isinstance(rv, int) else 0
        except _NoArgsIsHelp as e:
            click.echo(e.ctx.get_help())
            return 0
        except click.UsageError as e:
            cmd = e.ctx.command_path if e.ctx is not None else prog_name
            _err(f"{e.format_message()} (see '{cmd} --help')")
            return USAGE_EXIT
        except click.ClickException as e:
            _err(e.format_message())
            return USAGE_EXIT
        except HyperError as e:
            _err(e.message)
            return e.exit_code
        except click.Abort:
            return 130
        except KeyboardInterrupt:
            return 130
        except BrokenPipeError:
            with contextlib.suppress(OSError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141


pass_client = click.make_pass_decorator(APIClient)


@click.group(cls=HyperGroup, context_settings={"max_content_width": 100})
@click.option(
    "-H",
    "--host",
    envvar="HYPER_HOST",
    metavar="ADDR",
    help="Daemon socket (unix:///run/hyper/hyperd.sock; env HYPER_HOST).",
)
@click.pass_context
def cli(ctx: click.Context, host: str | None) -> None:
    """Run Docker images, each in its own lightweight virtual machine."""
    ctx.obj = APIClient(host, timeout=None)  # like the docker CLI: VMs may boot slowly


def _for_each(names: Iterable[str], action: Callable[[str], Any], echo_name: bool = True) -> int:
    """Apply ``action`` to each name; print names (or errors, one line each); exit code."""
    failed = False
    for name in names:
        try:
            out = action(name)
        except DaemonUnreachable:
            raise
        except HyperError as e:
            _err(e.message)
            failed = True
            continue
        if echo_name:
            click.echo(name if out is None else out)
    return USAGE_EXIT if failed else 0


# --- option callbacks ---------------------------------------------------------------------


def _cb(parse):
    def callback(ctx, param, value):
        if value is None:
            return None
        try:
            return parse(value)
        except HyperError as e:
            raise click.BadParameter(e.message) from None

    return callback


def container_options(f):
    """The flags shared by ``run`` and ``create``."""
    decorators = [
        click.option("--name", help="Assign a name to the container."),
        click.option("-e", "--env", multiple=True, metavar="K=V", help="Set an env variable."),
        click.option("--env-file", multiple=True, metavar="FILE", help="Read env variables."),
        click.option("-w", "--workdir", help="Working directory inside the container."),
        click.option("-u", "--user", help="Username or UID (user[:group])."),
        click.option("--entrypoint", help="Overwrite the image's ENTRYPOINT."),
        click.option("-h", "--hostname", help="Container host name."),
        click.option("--cpus", callback=_cb(opts.parse_cpus), help="Number of CPUs."),
        click.option("-m", "--memory", callback=_cb(opts.parse_memory), help="Memory limit."),
        click.option(
            "--restart",
            default="no",
            show_default=True,
            callback=_cb(opts.parse_restart),
            help="no|on-failure[:N]|always|unless-stopped.",
        ),
        click.option("-l", "--label", multiple=True, help="Set metadata (k=v)."),
        click.option(
            "-p",
            "--publish",
            multiple=True,
            metavar="[IP:][HOST:]PORT[/PROTO]",
            help="Publish a container port on the host.",
        ),
        click.option("-P", "--publish-all", is_flag=True, help="Publish every exposed port."),
        click.option("--expose", multiple=True, help="Expose a port (for -P)."),
        click.option(
            "--network",
            default="default",
            show_default=True,
            type=click.Choice(["default", "bridge", "none"]),
            help="Network of the container.",
        ),
        click.option("--link", multiple=True, metavar="NAME[:ALIAS]", help="Add a name to hosts."),
        click.option(
            "--pull",
            type=click.Choice(["missing", "always", "never"]),
            default="missing",
            show_default=True,
            help="Pull the image before creating.",
        ),
        click.option("--platform", help="Platform of the image (os/arch)."),
        click.option("--stop-signal", help="Signal to stop the container."),
        click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open."),
        click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY."),
        click.option("--rm", is_flag=True, help="Remove the container when it exits."),
        click.option("-q", "--quiet", is_flag=True, help="Suppress the pull output."),
        click.argument("image"),
        click.argument("command", nargs=-1, type=click.UNPROCESSED),
    ]
    for d in reversed(decorators):
        f = d(f)
    return f


def build_config(p: dict, attach: bool) -> dict:
    """The create body from ``run``/``create`` flags."""
    env = []
    for path in p["env_file"]:
        env += opts.read_env_file(path)
    env += opts.parse_env(p["env"])
    config: dict[str, Any] = {"Image": p["image"]}
    if p["command"]:
        config["Cmd"] = list(p["command"])
    if p["entrypoint"] is not None:
        config["Entrypoint"] = [p["entrypoint"]] if p["entrypoint"] else ""
    if env:
        config["Env"] = env
    for key, flag in (("WorkingDir", "workdir"), ("User", "user"), ("Hostname", "hostname")):
        if p[flag]:
            config[key] = p[flag]
    if p["stop_signal"]:
        config["StopSignal"] = p["stop_signal"]
    config["Tty"] = bool(p["tty"])
    config["OpenStdin"] = bool(p["interactive"])
    config["StdinOnce"] = bool(p["interactive"] and attach)
    config["AttachStdin"] = bool(p["interactive"] and attach)
    config["AttachStdout"] = attach
    config["AttachStderr"] = attach
    if p["label"]:
        config["Labels"] = opts.parse_labels(p["label"])
    exposed, port_bindings = opts.parse_publish(p["publish"])
    exposed.update(opts.parse_expose(p["expose"]))
    if exposed:
        config["ExposedPorts"] = exposed
    host: dict[str, Any] = {"AutoRemove": bool(p["rm"]), "RestartPolicy": p["restart"]}
    host["NetworkMode"] = p["network"]
    if port_bindings:
        host["PortBindings"] = port_bindings
    if p["publish_all"]:
        host["PublishAllPorts"] = True
    if p["link"]:
        host["Links"] = [link if ":" in link else f"{link}:{link}" for link in p["link"]]
    if p["cpus"]:
        host["NanoCpus"] = p["cpus"]
    if p["memory"]:
        host["Memory"] = p["memory"]
    if p["rm"] and p["restart"]["Name"] != "no":
        raise InvalidArgument("conflicting options: --restart and --rm")
    config["HostConfig"] = host
    return config


def _full_ref(image: str) -> str:
    repo, tag = opts.split_repo_tag(image)
    if tag is None and "@" not in image:
        return f"{image}:latest"
    return image


def pull_image(
    client: APIClient, image: str, platform_: str | None, out=None, quiet: bool = False
) -> str:
    """Pull with progress on ``out`` (stderr by default); the final reference."""
    if "@" in image:
        repo, tag = image, None
    else:
        repo, tag = opts.split_repo_tag(image)
        tag = tag or "latest"
    progress = streams.PullProgress(out if out is not None else sys.stderr)
    final = f"{repo}:{tag}" if tag else repo
    for msg in client.pull(repo, tag, platform_):
        status = msg.get("status") or ""
        if status.startswith("Status: ") and " for " in status:
            final = status.rsplit(" for ", 1)[1].strip()
        if not quiet:
            progress.show(msg)
    return final


def create_container(client: APIClient, config: dict, name, pull: str, platform_, quiet) -> str:
    """Create, pulling the image as ``--pull`` says; the new ID (warnings to stderr)."""
    image = config["Image"]
    if pull == "always":
        pull_image(client, image, platform_, quiet=quiet)
    try:
        created = client.create_container(config, name=name)
    except NotFoundError:
        if pull != "missing":
            raise
        if not quiet:
            click.echo(f"Unable to find image '{_full_ref(image)}' locally", err=True)
        pull_image(client, image, platform_, quiet=quiet)
        created = client.create_container(config, name=name)
    for w in created.get("Warnings") or []:
        click.echo(f"WARNING: {w}", err=True)
    return created["Id"]


def _exit_status(
    client: APIClient, cid: str, pending: PendingWait | None, condition: str | None = None
) -> int:
    """The container's exit code from a pending wait; if that wait cannot answer (it was
    registered too late, or failed), from inspect once the container is not running."""
    last_code = 0
    delay = 0.05
    while pending is not None:
        if pending.done():
            try:
                res = pending.result()
            except NotFoundError:
                return last_code
            except HyperError:
                break
            err = res.get("Error")
            if err:
                msg = err.get("Message") if isinstance(err, dict) else str(err)
                if msg:
                    _err(msg)
            return int(res.get("StatusCode") or 0)
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
        try:
            state = client.inspect_container(cid).get("State") or {}
        except NotFoundError:
            # removed (--rm): the pending wait answers right away, or never will
            with contextlib.suppress(HyperError):
                return int(pending.result(timeout=2).get("StatusCode") or 0)
            return last_code
        if state.get("Running") or state.get("Restarting"):
            continue
        last_code = int(state.get("ExitCode") or 0)
        if condition != "removed":
            # give the pending wait a moment, then trust inspect
            with contextlib.suppress(HyperError):
                return int(pending.result(timeout=2).get("StatusCode") or 0)
            return last_code
    try:
        return int(client.wait(cid, condition="not-running").get("StatusCode") or 0)
    except NotFoundError:
        return last_code


def attach_and_run(
    client: APIClient,
    cid: str,
    tty: bool,
    stdin: bool,
    start: bool,
    wait_condition: str | None,
    sig_proxy: bool = True,
) -> int:
    """Docker's attached flow: attach (before start), start, pump streams, exit code."""
    conn = client.attach_socket(cid, stdin=stdin, stdout=True, stderr=True, stream=True)
    try:
        pending = client.wait_background(cid, wait_condition)
    except HyperError:
        pending = None
    in_stream = sys.stdin.buffer if stdin else None
    raw = tty and stdin and streams.isatty(sys.stdin)
    pump = streams.StreamPump(
        conn,
        tty,
        stdin=in_stream,
        stdout=sys.stdout.buffer,
        stderr=sys.stderr.buffer,
        detach_keys=streams.DETACH_KEYS if raw else None,
    )
    proxy = (
        streams.SignalProxy(lambda sig: client.kill(cid, sig))
        if sig_proxy and not tty
        else contextlib.nullcontext()
    )
    resize = streams.ResizeMonitor(lambda h, w: client.resize(cid, h, w)) if tty else None
    try:
        with proxy, streams.RawTerminal() if raw else contextlib.nullcontext():
            if start:
                try:
                    client.start(cid)
                except HyperError as e:
                    conn.close()
                    _err(e.message)
                    return e.exit_code
            if resize is not None:
                with resize:
                    resize.send()
                    pump.run()
            else:
                pump.run()
    finally:
        conn.close()
    if pump.detached:
        click.echo("", err=True)
        return 0
    return _exit_status(client, cid, pending, wait_condition)


# --- containers ---------------------------------------------------------------------------


@cli.command(context_settings={"allow_interspersed_args": False})
@click.option("-d", "--detach", is_flag=True, help="Run in the background; print the ID.")
@click.option("--sig-proxy/--no-sig-proxy", default=True, help="Proxy signals to the process.")
@container_options
@pass_client
def run(client: APIClient, detach: bool, sig_proxy: bool, **p) -> int:
    """Create and run a container: IMAGE [COMMAND] [ARG...]."""
    config = build_config(p, attach=not detach)
    cid = create_container(client, config, p["name"], p["pull"], p["platform"], p["quiet"])
    if detach:
        try:
            client.start(cid)
        except HyperError as e:
            _err(e.message)
            return e.exit_code
        click.echo(cid)
        return 0
    condition = "removed" if p["rm"] else "next-exit"
    return attach_and_run(
        client, cid, p["tty"], p["interactive"], True, condition, sig_proxy=sig_proxy
    )


@cli.command(context_settings={"allow_interspersed_args": False})
@container_options
@pass_client
def create(client: APIClient, **p) -> None:
    """Create a container: IMAGE [COMMAND] [ARG...]; print its ID."""
    config = build_config(p, attach=False)
    click.echo(create_container(client, config, p["name"], p["pull"], p["platform"], p["quiet"]))


@cli.command()
@click.option("-a", "--attach", is_flag=True, help="Attach stdout/stderr and forward signals.")
@click.option("-i", "--interactive", is_flag=True, help="Attach the container's stdin.")
@click.argument("containers", nargs=-1, required=True)
@pass_client
def start(client: APIClient, attach: bool, interactive: bool, containers) -> int:
    """Start one or more containers."""
    if attach or interactive:
        if len(containers) > 1:
            raise InvalidArgument("you cannot start and attach multiple containers at once")
        info = client.inspect_container(containers[0])
        cfg = info.get("Config") or {}
        auto_remove = (info.get("HostConfig") or {}).get("AutoRemove")
        return attach_and_run(
            client,
            info["Id"],
            bool(cfg.get("Tty")),
            bool(interactive and cfg.get("OpenStdin")),
            True,
            "removed" if auto_remove else "next-exit",
        )
    return _for_each(containers, client.start)


@cli.command()
@click.option("-t", "--time", "timeout", type=int, default=None, help="Seconds before killing.")
@click.argument("containers", nargs=-1, required=True)
@pass_client
def stop(client: APIClient, timeout, containers) -> int:
    """Stop one or more running containers."""
    return _for_each(containers, lambda c: client.stop(c, timeout))


@cli.command()
@click.option("-t", "--time", "timeout", type=int, default=None, help="Seconds before killing.")
@click.argument("containers", nargs=-1, required=True)
@pass_client
def restart(client: APIClient, timeout, containers) -> int:
    """Restart one or more containers."""
    return _for_each(containers, lambda c: client.restart(c, timeout))


@cli.command()
@click.option("-s", "--signal", "sig", default="KILL", show_default=True, help="Signal to send.")
@click.argument("containers", nargs=-1, required=True)
@pass_client
def kill(client: APIClient, sig: str, containers) -> int:
    """Kill one or more running containers."""
    return _for_each(containers, lambda c: client.kill(c, sig))


@cli.command()
@click.option("-f", "--force", is_flag=True, help="Kill and remove a running container.")
@click.option("-v", "--volumes", is_flag=True, hidden=True)
@click.argument("containers", nargs=-1, required=True)
@pass_client
def rm(client: APIClient, force: bool, volumes: bool, containers) -> int:
    """Remove one or more containers."""
    return _for_each(containers, lambda c: client.remove_container(c, force))


@cli.command()
@click.argument("container")
@click.argument("port", required=False)
@pass_client
def port(client: APIClient, container, port) -> None:
    """List a container's published ports (or the host address of one)."""
    ports = (client.inspect_container(container).get("NetworkSettings") or {}).get("Ports") or {}
    if port and "/" not in port:
        port += "/tcp"
    for key, bindings in sorted(ports.items()):
        if port and key != port:
            continue
        for b in bindings or []:
            addr = f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}"
            click.echo(addr if port else f"{key} -> {addr}")
    if port and port not in ports:
        raise NotFound(f"no public port '{port}' published for {container}")


@cli.command()
@click.argument("containers", nargs=-1, required=True)
@pass_client
def wait(client: APIClient, containers) -> int:
    """Block until containers stop; print their exit codes."""
    return _for_each(containers, lambda c: client.wait(c).get("StatusCode", 0))


@click.command("ps")
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers.")
@click.option("-q", "--quiet", is_flag=True, help="Only display IDs.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter (status=, name=, ...).")
@click.option("--format", "fmt", help="table, json, or a Go template ({{.ID}}).")
@click.option("-l", "--latest", is_flag=True, help="Show the latest created container.")
@click.option("-n", "--last", type=int, default=None, help="Show n last created containers.")
@pass_client
def ps(client: APIClient, all_, quiet, no_trunc, filters, fmt, latest, last) -> None:
    """List containers."""
    flt = opts.parse_filters(filters)
    if latest:
        last = 1
    containers = client.containers(all=all_ or last is not None, filters=flt or None)
    if last is not None:
        containers = sorted(containers, key=lambda c: c.get("Created") or 0, reverse=True)
        containers = containers[:last]
    out = formatting.format_containers(containers, fmt=fmt, quiet=quiet, trunc=not no_trunc)
    if out:
        click.echo(out)


cli.add_command(ps, "ps")
cli.add_command(ps, "list")


@cli.command("exec", context_settings={"allow_interspersed_args": False})
@click.option("-d", "--detach", is_flag=True, help="Run the command in the background.")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open.")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY.")
@click.option("-e", "--env", multiple=True, help="Set environment variables.")
@click.option("--env-file", multiple=True, help="Read environment variables from a file.")
@click.option("-w", "--workdir", help="Working directory inside the container.")
@click.option("-u", "--user", help="Username or UID.")
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_client
def exec_(
    client: APIClient, detach, interactive, tty, env, env_file, workdir, user, container, command
):
    """Run a command in a running container: CONTAINER COMMAND [ARG...]."""
    environment = []
    for path in env_file:
        environment += opts.read_env_file(path)
    environment += opts.parse_env(env)
    size = streams.terminal_size() if tty else None
    created = client.exec_create(
        container,
        list(command),
        stdin=interactive and not detach,
        stdout=not detach,
        stderr=not detach,
        tty=tty,
        environment=environment or None,
        workdir=workdir,
        user=user,
        console_size=size,
    )
    exec_id = created["Id"]
    if detach:
        client.exec_start(exec_id, detach=True, tty=tty)
        return 0
    conn = client.exec_start(exec_id, tty=tty, console_size=size)
    raw = tty and interactive and streams.isatty(sys.stdin)
    pump = streams.StreamPump(
        conn,
        tty,
        stdin=sys.stdin.buffer if interactive else None,
        stdout=sys.stdout.buffer,
        stderr=sys.stderr.buffer,
    )
    try:
        with streams.RawTerminal() if raw else contextlib.nullcontext():
            if tty:
                resize = streams.ResizeMonitor(lambda h, w: client.exec_resize(exec_id, h, w))
                with resize:
                    resize.send()
                    pump.run()
            else:
                pump.run()
    finally:
        conn.close()
    return exec_exit_code(client, exec_id)


def exec_exit_code(client: APIClient, exec_id: str, timeout: float = 10.0) -> int:
    """Poll the exec until it is no longer running; its exit code."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        info = client.exec_inspect(exec_id)
        if not info.get("Running") and info.get("ExitCode") is not None:
            return int(info["ExitCode"])
        if time.monotonic() > deadline:
            code = info.get("ExitCode")
            return int(code) if code is not None else 0
        time.sleep(delay)
        delay = min(delay * 2, 0.25)


@cli.command()
@click.option("-f", "--follow", is_flag=True, help="Follow log output.")
@click.option("-n", "--tail", default="all", help="Lines to show from the end (or all).")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps.")
@click.option("--since", help="Since a unix timestamp or a duration (e.g. 10m).")
@click.argument("container")
@pass_client
def logs(client: APIClient, follow, tail, timestamps, since, container) -> None:
    """Fetch the logs of a container."""
    if tail != "all":
        try:
            if int(tail) < 0:
                tail = "all"
        except ValueError:
            raise click.BadParameter(f"invalid tail value {tail!r}", param_hint="--tail") from None
    since_ts = opts.parse_since(since) if since else None
    frames = client.logs(container, follow=follow, timestamps=timestamps, tail=tail, since=since_ts)
    streams.write_frames(frames, sys.stdout.buffer, sys.stderr.buffer)


@cli.command()
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN.")
@click.option("--sig-proxy/--no-sig-proxy", default=True, help="Proxy signals to the process.")
@click.argument("container")
@pass_client
def attach(client: APIClient, no_stdin: bool, sig_proxy: bool, container: str) -> int:
    """Attach local stdin/stdout/stderr to a running container."""
    info = client.inspect_container(container)
    state = info.get("State") or {}
    if not state.get("Running"):
        raise InvalidArgument("You cannot attach to a stopped container, start it first")
    cfg = info.get("Config") or {}
    return attach_and_run(
        client,
        info["Id"],
        bool(cfg.get("Tty")),
        bool(cfg.get("OpenStdin") and not no_stdin),
        False,
        "not-running",
        sig_proxy=sig_proxy,
    )


# --- inspect / system ---------------------------------------------------------------------


@cli.command()
@click.option("-f", "--format", "fmt", help="Go template ({{.State.Status}}, {{json .}}).")
@click.option("--type", "kind", type=click.Choice(["container", "image"]), help="Object type.")
@click.argument("names", nargs=-1, required=True)
@pass_client
def inspect(client: APIClient, fmt, kind, names) -> int:
    """Low-level information on containers or images (a JSON array)."""
    found, missing = [], []
    for name in names:
        obj = None
        for k in ("container", "image") if kind is None else (kind,):
            get = client.inspect_container if k == "container" else client.inspect_image
            try:
                obj = get(name)
                break
            except NotFoundError:
                continue
        if obj is None:
            missing.append(name)
        else:
            found.append(obj)
    if fmt:
        tpl = formatting.Template(fmt)
        for obj in found:
            click.echo(tpl.render(obj))
    else:
        click.echo(json.dumps(found, indent=4, ensure_ascii=False))
    for name in missing:
        label = {"container": "container", "image": "image"}.get(kind or "", "object")
        _err(f"No such {label}: {name}")
    return USAGE_EXIT if missing else 0


def _kv_block(title: str, rows: list[tuple[str, Any]], indent: int = 1) -> list[str]:
    lines = [f"{' ' * (indent - 1)}{title}:"] if title else []
    width = max((len(k) for k, _ in rows), default=0) + 2
    for k, v in rows:
        lines.append(f"{' ' * indent}{(k + ':').ljust(width)}{'' if v is None else v}")
    return lines


@cli.command()
@click.option("-f", "--format", "fmt", help="Go template.")
@pass_client
def version(client: APIClient, fmt) -> None:
    """Show the hyper client and daemon versions."""
    client_info = {
        "Version": CLIENT_VERSION,
        "ApiVersion": CLIENT_API_VERSION,
        "PythonVersion": platform.python_version(),
        "Os": sys.platform,
        "Arch": platform.machine(),
    }
    if fmt:
        server = client.version()
        click.echo(formatting.Template(fmt).render({"Client": client_info, "Server": server}))
        return
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    lines = _kv_block(
        "Client",
        [
            ("Version", CLIENT_VERSION),
            ("API version", CLIENT_API_VERSION),
            ("Python version", platform.python_version()),
            ("OS/Arch", f"{sys.platform}/{arch}"),
        ],
    )
    click.echo("\n".join(lines) + "\n")
    s = client.version()
    hyper = s.get("Hyper") or {}
    lines = ["Server:"] + _kv_block(
        " Engine",
        [
            ("Version", s.get("Version")),
            ("API version", f"{s.get('ApiVersion')} (minimum version {s.get('MinAPIVersion')})"),
            ("OS/Arch", f"{s.get('Os')}/{s.get('Arch')}"),
            ("Kernel Version", s.get("KernelVersion")),
        ],
        indent=2,
    )
    if hyper:
        lines += _kv_block(" Hyper", [(k, v) for k, v in hyper.items()], indent=2)
    click.echo("\n".join(lines))


@cli.command()
@click.option("-f", "--format", "fmt", help="Go template.")
@pass_client
def info(client: APIClient, fmt) -> None:
    """Display system-wide information."""
    i = client.info()
    if fmt:
        click.echo(formatting.Template(fmt).render(i))
        return
    hyper = i.get("Hyper") or {}
    mem = i.get("MemTotal")
    lines = ["Server:"]
    lines += _kv_block("", [("Containers", i.get("Containers"))])
    lines += _kv_block(
        "",
        [
            ("Running", i.get("ContainersRunning")),
            ("Paused", i.get("ContainersPaused", 0)),
            ("Stopped", i.get("ContainersStopped")),
        ],
        indent=2,
    )
    rows = [
        ("Images", i.get("Images")),
        ("Server Version", i.get("ServerVersion")),
        ("Storage Driver", i.get("Driver")),
        ("Kernel Version", i.get("KernelVersion")),
        ("Operating System", i.get("OperatingSystem")),
        ("CPUs", i.get("NCPU")),
        ("Total Memory", _gib(mem) if mem else None),
        ("Name", i.get("Name")),
        ("ID", i.get("ID")),
        ("Hyper Root Dir", i.get("DockerRootDir")),
    ]
    lines += _kv_block("", rows)
    if hyper:
        lines += _kv_block(
            "",
            [
                ("Accel", hyper.get("Accel")),
                ("Default CPUs", hyper.get("DefaultCpus")),
                ("Default Memory", hyper.get("DefaultMemory")),
            ],
        )
    click.echo("\n".join(lines))


def _gib(n: int) -> str:
    """Docker's BytesSize: binary units."""
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    x, i = float(n), 0
    while x >= 1024 and i < len(units) - 1:
        x /= 1024
        i += 1
    return f"{x:.4g}{units[i]}"


# --- images -------------------------------------------------------------------------------


@cli.command()
@click.option("-q", "--quiet", is_flag=True, help="Only print the image reference.")
@click.option("--platform", "platform_", help="Platform (os/arch).")
@click.argument("name")
@pass_client
def pull(client: APIClient, quiet: bool, platform_, name: str) -> None:
    """Pull an image from a registry: NAME[:TAG|@DIGEST]."""
    if "@" not in name and opts.split_repo_tag(name)[1] is None and not quiet:
        click.echo("Using default tag: latest")
    out = sys.stdout
    click.echo(pull_image(client, name, platform_, out=out, quiet=quiet))


@cli.command()
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--digests", is_flag=True, help="Show digests.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("--format", "fmt", help="table, json, or a Go template.")
@click.option("-a", "--all", "all_", is_flag=True, hidden=True)
@click.argument("repository", required=False)
@pass_client
def images(client: APIClient, quiet, digests, no_trunc, fmt, all_, repository) -> None:
    """List images (optionally only REPOSITORY[:TAG])."""
    imgs = client.images(digests=True)
    if repository:
        repo, tag = opts.split_repo_tag(repository)

        def match(ref: str) -> bool:
            r, t = opts.split_repo_tag(ref)
            names = {r, r.removeprefix("docker.io/"), r.removeprefix("docker.io/library/")}
            return repo in names and (tag is None or tag == t)

        imgs = [i for i in imgs if any(match(t) for t in i.get("RepoTags") or [])]
    imgs = sorted(imgs, key=lambda i: i.get("Created") or 0, reverse=True)
    out = formatting.format_images(imgs, fmt, quiet, digests, trunc=not no_trunc)
    if out:
        click.echo(out)


@cli.command()
@click.option("-f", "--force", is_flag=True, help="Force removal.")
@click.argument("images", nargs=-1, required=True)
@pass_client
def rmi(client: APIClient, force: bool, images) -> int:
    """Remove one or more images."""

    def remove(name: str) -> str:
        lines = []
        for item in client.remove_image(name, force=force):
            for k in ("Untagged", "Deleted"):
                if item.get(k):
                    lines.append(f"{k}: {item[k]}")
        return "\n".join(lines)

    return _for_each(images, remove)


@cli.command()
@click.argument("source")
@click.argument("target")
@pass_client
def tag(client: APIClient, source: str, target: str) -> None:
    """Create a tag TARGET that refers to SOURCE."""
    if "@" in target:
        raise InvalidArgument(f"refusing to create a tag with a digest reference: {target}")
    repo, t = opts.split_repo_tag(target)
    client.tag(source, repo, t or "latest")


@cli.command()
@click.option("-i", "--input", "input_", type=click.Path(dir_okay=False), help="Read a tar.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output.")
@pass_client
def load(client: APIClient, input_, quiet) -> None:
    """Load images from a tar archive (docker save or OCI), from a file or stdin."""
    if input_:
        try:
            f = open(input_, "rb")  # noqa: SIM115 - closed below
        except OSError as e:
            raise InvalidArgument(f"open {input_}: {e.strerror or e}") from None
    else:
        stdin = sys.stdin.buffer
        if streams.isatty(sys.stdin):
            raise InvalidArgument(
                "requested load from stdin, but stdin is empty (use -i FILE or a redirect)"
            )
        f = stdin
    try:
        for msg in client.load(f, quiet=quiet):
            if msg.get("stream") and not quiet:
                click.echo(msg["stream"], nl=False)
            elif msg.get("status") and not quiet:
                click.echo(msg["status"])
    finally:
        if input_:
            f.close()


@cli.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file.")
@click.argument("images", nargs=-1, required=True)
@pass_client
def save(client: APIClient, output, images) -> None:
    """Save images to a tar archive (stdout by default)."""
    if output:
        tmp = f"{output}.hyper-tmp"
        try:
            with open(tmp, "wb") as f:
                client.save(list(images), f)
            os.replace(tmp, output)
        except OSError as e:
            raise InvalidArgument(f"write {output}: {e.strerror or e}") from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        return
    if streams.isatty(sys.stdout):
        raise InvalidArgument(
            "cowardly refusing to save to a terminal. Use the -o flag or redirect"
        )
    out = sys.stdout.buffer
    client.save(list(images), out)
    out.flush()


@cli.command()
@click.option("-u", "--username", help="Username.")
@click.option("-p", "--password", help="Password.")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin.")
@click.argument("server", required=False)
@pass_client
def login(client: APIClient, username, password, password_stdin, server) -> None:
    """Log in to a registry (Docker Hub by default)."""
    if password and password_stdin:
        raise InvalidArgument("--password and --password-stdin are mutually exclusive")
    if password_stdin:
        if not username:
            raise InvalidArgument("must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    elif password:
        click.echo(
            "WARNING! Using --password via the CLI is insecure. Use --password-stdin.", err=True
        )
    if not username:
        username = click.prompt("Username", err=False).strip()
    if not password:
        if streams.isatty(sys.stdin):
            password = getpass.getpass("Password: ")
        else:
            password = sys.stdin.readline().rstrip("\r\n")
    if not username or not password:
        raise InvalidArgument("username and password are required")
    res = client.login(username, password, server)
    click.echo((res or {}).get("Status") or "Login Succeeded")


@cli.command()
@click.argument("server", required=False)
@pass_client
def logout(client: APIClient, server) -> None:
    """Log out from a registry (Docker Hub by default)."""
    shown = server or "https://index.docker.io/v1/"
    try:
        client.logout(server)
    except NotFoundError:
        click.echo(f"Not logged in to {shown}")
        return
    click.echo(f"Removing login credentials for {shown}")


commands_images_out.register(cli)  # commit, diff, export, import, history, push, build


def main(argv: list[str] | None = None) -> None:
    """The ``hyper`` entry point."""
    cli.main(args=argv, prog_name="hyper")


if __name__ == "__main__":  # pragma: no cover
    main()
