"""``run``, ``create``, ``start`` and ``attach``: making containers and Docker's attached
flow (attach, wait, start, stream, exit status)."""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import click

from hyperapi.errors import HyperError, InvalidArgument
from hyperctl import opts
from hyperctl.commands.common import parsed_by, pass_client, print_error

WAIT_ERROR_EXIT = 125


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
        click.option("--cpus", callback=parsed_by(opts.parse_cpus), help="Number of CPUs."),
        click.option("-m", "--memory", callback=parsed_by(opts.parse_memory), help="Memory limit."),
        click.option(
            "--restart",
            default="no",
            show_default=True,
            callback=parsed_by(opts.parse_restart),
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
    config["HostConfig"] = _host_config(p, port_bindings)
    return config


def _host_config(p: dict, port_bindings: dict) -> dict:
    if p["rm"] and p["restart"]["Name"] != "no":
        raise InvalidArgument("conflicting options: --restart and --rm")
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
    return host


def create_container(client, config: dict, name, pull: str, platform_, quiet) -> str:
    """Create, pulling the image as ``--pull`` says; the new ID (warnings to stderr)."""
    from hyperctl.commands.images import full_reference, pull_image
    from hyperctl.errors import NotFoundError

    image = config["Image"]
    if pull == "always":
        pull_image(client, image, platform_, quiet=quiet)
    try:
        created = client.create_container(config, name=name)
    except NotFoundError:
        if pull != "missing":
            raise
        if not quiet:
            click.echo(f"Unable to find image '{full_reference(image)}' locally", err=True)
        pull_image(client, image, platform_, quiet=quiet)
        created = client.create_container(config, name=name)
    for w in created.get("Warnings") or []:
        click.echo(f"WARNING: {w}", err=True)
    return created["Id"]


def _exit_status(result: dict) -> int:
    """The exit code from a wait's answer (Docker: an error there is a 125)."""
    err = result.get("Error")
    message = (err.get("Message") if isinstance(err, dict) else err) if err else None
    if message:
        print_error(f"Error waiting for container: {message}")
        return WAIT_ERROR_EXIT
    return int(result.get("StatusCode") or 0)


def attach_and_run(
    client,
    cid: str,
    tty: bool,
    stdin: bool,
    start: bool,
    wait_condition: str,
    sig_proxy: bool = True,
) -> int:
    """Docker's attached flow: attach, wait (registered before the start), start, pump the
    streams, then the exit status from the wait's answer."""
    from hyperctl import streams

    conn = client.attach_socket(cid, stdin=stdin, stdout=True, stderr=True, stream=True)
    try:
        waiting = client.wait_request(cid, wait_condition)
    except HyperError:
        conn.close()
        raise
    raw = tty and stdin and streams.isatty(sys.stdin)
    pump = streams.StreamPump(
        conn,
        tty,
        stdin=sys.stdin.buffer if stdin else None,
        detach_keys=streams.DETACH_KEYS if raw else None,
    )
    proxy = (
        streams.SignalProxy(lambda sig: client.kill(cid, sig))
        if sig_proxy and not tty
        else contextlib.nullcontext()
    )
    try:
        with proxy, streams.RawTerminal() if raw else contextlib.nullcontext():
            if start:
                try:
                    client.start(cid)
                except HyperError as e:
                    conn.close()
                    print_error(e.message)
                    _after_failed_start(waiting, wait_condition)
                    return e.exit_code
            streams.run_pump(pump, (lambda h, w: client.resize(cid, h, w)) if tty else None)
    finally:
        conn.close()
    if pump.detached:
        waiting.close()
        click.echo("", err=True)
        return 0
    return _exit_status(waiting.result())


def _after_failed_start(waiting, condition: str) -> None:
    """As Docker: with --rm, hold until the daemon has removed the container."""
    if condition != "removed":
        waiting.close()
        return
    with contextlib.suppress(HyperError):
        waiting.result(timeout=60)


@click.command(context_settings={"allow_interspersed_args": False})
@click.option("-d", "--detach", is_flag=True, help="Run in the background; print the ID.")
@click.option("--sig-proxy/--no-sig-proxy", default=True, help="Proxy signals to the process.")
@container_options
@pass_client
def run(client, detach: bool, sig_proxy: bool, **p) -> int:
    """Create and run a container: IMAGE [COMMAND] [ARG...]."""
    config = build_config(p, attach=not detach)
    cid = create_container(client, config, p["name"], p["pull"], p["platform"], p["quiet"])
    if detach:
        try:
            client.start(cid)
        except HyperError as e:
            print_error(e.message)
            return e.exit_code
        click.echo(cid)
        return 0
    condition = "removed" if p["rm"] else "next-exit"
    return attach_and_run(
        client, cid, p["tty"], p["interactive"], True, condition, sig_proxy=sig_proxy
    )


@click.command(context_settings={"allow_interspersed_args": False})
@container_options
@pass_client
def create(client, **p) -> None:
    """Create a container: IMAGE [COMMAND] [ARG...]; print its ID."""
    config = build_config(p, attach=False)
    click.echo(create_container(client, config, p["name"], p["pull"], p["platform"], p["quiet"]))


@click.command()
@click.option("-a", "--attach", is_flag=True, help="Attach stdout/stderr and forward signals.")
@click.option("-i", "--interactive", is_flag=True, help="Attach the container's stdin.")
@click.argument("containers", nargs=-1, required=True)
@pass_client
def start(client, attach: bool, interactive: bool, containers) -> int:
    """Start one or more containers."""
    from hyperctl.commands.common import for_each

    if not (attach or interactive):
        return for_each(containers, client.start)
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


@click.command()
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN.")
@click.option("--sig-proxy/--no-sig-proxy", default=True, help="Proxy signals to the process.")
@click.argument("container")
@pass_client
def attach(client, no_stdin: bool, sig_proxy: bool, container: str) -> int:
    """Attach local stdin/stdout/stderr to a running container."""
    info = client.inspect_container(container)
    if not (info.get("State") or {}).get("Running"):
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
