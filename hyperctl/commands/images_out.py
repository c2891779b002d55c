"""``hyper commit|diff|export|import|history|push|build``: images going out of containers,
into registries, and built from Dockerfiles (registered lazily in hyperctl/group.py)."""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import click

from hyperapi.errors import InvalidArgument
from hyperctl import opts

KINDS = {0: "C", 1: "A", 2: "D"}
_PROXY = ("HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY")


def _client():
    """The invocation's API client (the group's object, or the client it holds)."""
    obj = click.get_current_context().find_root().obj
    return getattr(obj, "client", obj)


def _path(name: str) -> str:
    from hyperctl.httpconn import quote

    return quote(name, safe="/:@")


def _out_file(output: str | None):
    """Where a tar goes: the -o file, or stdout unless it is a terminal."""
    from hyperctl import streams

    if output:
        return open(output, "wb")  # noqa: SIM115 - closed by the caller
    if streams.isatty(sys.stdout):
        raise InvalidArgument("cowardly refusing to write a tar to a terminal: use -o or redirect")
    return os.fdopen(os.dup(sys.stdout.fileno()), "wb")


@click.command(name="commit")
@click.option("-a", "--author", default="", help="Author (e.g. 'Jane <jane@example.com>').")
@click.option("-c", "--change", multiple=True, help="Apply a Dockerfile instruction.")
@click.option("-m", "--message", default="", help="Commit message.")
@click.option("-p/--no-pause", "--pause", "pause", default=True, help="Pause while committing.")
@click.argument("container")
@click.argument("repository", required=False)
def commit_(author, change, message, pause, container, repository) -> None:
    """Create a new image from a container's changes."""
    repo, tag = opts.split_repo_tag(repository) if repository else ("", None)
    params = [
        ("container", container),
        ("repo", repo),
        ("tag", tag or ""),
        ("comment", message),
        ("author", author),
        ("pause", "1" if pause else "0"),
    ]
    params += [("changes", c) for c in change]
    click.echo(_client()._request("POST", "/commit", params)["Id"])


@click.command(name="diff")
@click.argument("container")
def diff_(container) -> None:
    """Inspect changes to files or directories on a container's filesystem."""
    for item in _client()._request("GET", f"/containers/{_path(container)}/changes") or []:
        click.echo(f"{KINDS.get(item['Kind'], '?')} {item['Path']}")


@click.command(name="export")
@click.option("-o", "--output", help="Write to a file, instead of STDOUT.")
@click.argument("container")
def export_(output, container) -> None:
    """Export a container's filesystem as a tar archive."""
    with _out_file(output) as out:
        for chunk in _client()._stream("GET", f"/containers/{_path(container)}/export"):
            out.write(chunk)


@click.command(name="import")
@click.option("-c", "--change", multiple=True, help="Apply a Dockerfile instruction.")
@click.option("-m", "--message", default="", help="Commit message for the imported image.")
@click.option("--platform", help="Platform (os/arch).")
@click.argument("source")
@click.argument("repository", required=False)
def import_(change, message, platform, source, repository) -> None:
    """Import a tarball (FILE, URL or - for stdin) as a one-layer image."""
    repo, tag = opts.split_repo_tag(repository) if repository else ("", None)
    params = [("repo", repo), ("tag", tag or ""), ("message", message)]
    params += [("changes", c) for c in change] + ([("platform", platform)] if platform else [])
    body = None
    if source == "-":
        params.append(("fromSrc", "-"))
        body = sys.stdin.buffer
    elif "://" in source:
        params.append(("fromSrc", source))
    else:
        params.append(("fromSrc", "-"))
        try:
            body = open(source, "rb")  # noqa: SIM115 - closed below
        except OSError as e:
            raise InvalidArgument(f"open {source}: {e.strerror or e}") from None
    try:
        messages = list(_client()._stream_json("POST", "/images/create", params, body))
        click.echo((messages[-1] if messages else {}).get("status", ""))
    finally:
        if body is not None and body is not sys.stdin.buffer:
            body.close()


@click.command(name="history")
@click.option("-H", "--human/--no-human", default=True, help="Human readable sizes and dates.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--format", "fmt", help="A Go template ({{.ID}}, {{.CreatedBy}}, …).")
@click.argument("image")
def history_(human, no_trunc, quiet, fmt, image) -> None:
    """Show the history of an image."""
    from hyperctl import formatting

    items = _client()._request("GET", f"/images/{_path(image)}/history") or []
    if quiet:
        for h in items:
            click.echo(h["Id"] if no_trunc or h["Id"] == "<missing>" else h["Id"][7:19])
        return
    rows = [["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]]
    for h in items:
        ident = h["Id"] if no_trunc or h["Id"] == "<missing>" else h["Id"][7:19]
        created = (
            formatting.ago(h["Created"])
            if human
            else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(h["Created"]))
        )
        by = h["CreatedBy"] if no_trunc else formatting.ellipsis(h["CreatedBy"], 45)
        size = formatting.human_size(h["Size"]) if human else str(h["Size"])
        rows.append([ident, created, by, size, h.get("Comment", "")])
        if fmt:
            click.echo(formatting.Template(fmt).render({"ID": ident, "CreatedBy": by, **h}))
    if not fmt:
        click.echo(formatting.render_table(rows))


@click.command(name="push")
@click.option("-a", "--all-tags", is_flag=True, help="Push every tag of the repository.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output.")
@click.argument("name")
def push_(all_tags, quiet, name) -> None:
    """Push an image (or a repository's tags) to a registry: HOST[:PORT]/REPO[:TAG]."""
    from hyperctl import streams

    repo, tag = opts.split_repo_tag(name) if "@" not in name else (name, None)
    if all_tags and tag:
        raise InvalidArgument("tag can't be used with --all-tags/-a")
    params = {"tag": "" if all_tags else (tag or "latest")}
    progress = streams.PullProgress(sys.stdout)
    digest = ""
    for msg in _client()._stream_json("POST", f"/images/{_path(repo)}/push", params):
        if msg.get("aux"):
            digest = msg["aux"].get("Digest", digest)
        elif not quiet:
            progress.show(msg)
    if quiet:
        click.echo(f"{repo}:{tag or 'latest'}" if not digest else f"{repo}@{digest}")


# -- build ---------------------------------------------------------------------------------


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
    tar.addfile(info, io.BytesIO(data))


def context_tar(path: str, dockerfile: str | None) -> tuple[tempfile.SpooledTemporaryFile, str]:
    """The build context of the directory ``path`` as a tar (.dockerignore applied by the
    daemon, which receives it too) and the Dockerfile's name in it. A Dockerfile outside the
    context goes in under a random name that .dockerignore then names, as the docker CLI
    does, so it is read but never copied."""
    out = tempfile.SpooledTemporaryFile(max_size=32 << 20)  # noqa: SIM115 - returned
    name, extra = "Dockerfile", None
    if dockerfile:  # -f is relative to the working directory, as the docker CLI takes it
        full = os.path.abspath(dockerfile)
        name = os.path.relpath(full, os.path.abspath(path))
        if name.startswith(".."):
            name, extra = f".dockerfile.{os.urandom(10).hex()}", full
    ignore = os.path.join(path, ".dockerignore")
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(os.listdir(path)):
            if not (extra and entry == ".dockerignore"):
                tar.add(os.path.join(path, entry), arcname=entry)
        if extra:
            with open(extra, "rb") as f:
                _add_bytes(tar, name, f.read())
            rules = Path(ignore).read_bytes() if os.path.isfile(ignore) else b""
            _add_bytes(tar, ".dockerignore", rules + f"\n{name}\n.dockerignore\n".encode())
    out.seek(0)
    return out, name


@click.command(name="build")
@click.option("-t", "--tag", "tags", multiple=True, help="Name and optionally a tag.")
@click.option("-f", "--file", "dockerfile", help="Name of the Dockerfile.")
@click.option("--build-arg", multiple=True, help="Set a build-time variable (K=V).")
@click.option("--label", multiple=True, help="Set metadata on the image (K=V).")
@click.option("--no-cache", is_flag=True, help="Do not use the cache.")
@click.option("--pull", is_flag=True, help="Refused for missing bases (no network).")
@click.option("-q", "--quiet", is_flag=True, help="Print only the image ID.")
@click.option("--target", help="Build this stage.")
@click.option("--network", default="default", help="Network of the RUN steps (default, none).")
@click.option("--add-host", multiple=True, help="Add a host to /etc/hosts (host:ip).")
@click.option("--shm-size", help="Size of /dev/shm.")
@click.option("--rm/--no-rm", default=True, help="Remove intermediate containers.")
@click.option("--force-rm", is_flag=True, help="Always remove intermediate containers.")
@click.option("--squash", is_flag=True, help="Squash the new layers into one.")
@click.option("--platform", help="Platform (os/arch).")
@click.option("--cache-from", multiple=True, help="Images to consider as cache sources.")
@click.argument("path")
def build_(tags, dockerfile, build_arg, label, no_cache, pull, quiet, target, network, add_host,
          shm_size, rm, force_rm, squash, platform, cache_from, path) -> int:  # fmt: skip
    """Build an image from a Dockerfile (PATH is the context directory, or - for a tar)."""
    buildargs = {}
    for item in build_arg:
        k, eq, v = item.partition("=")
        buildargs[k] = v if eq else os.environ.get(k)
    params = [("t", t) for t in tags] + [
        ("buildargs", json.dumps(buildargs)),
        ("labels", json.dumps(opts.parse_labels(label))),
        ("nocache", "1" if no_cache else "0"), ("pull", "1" if pull else "0"),
        ("q", "1" if quiet else "0"), ("rm", "1" if rm else "0"),
        ("forcerm", "1" if force_rm else "0"), ("networkmode", network),
        ("squash", "1" if squash else "0"), ("cachefrom", json.dumps(list(cache_from))),
    ]  # fmt: skip
    for key, value in (("target", target), ("platform", platform)):
        if value:
            params.append((key, value))
    params += [("extrahosts", h) for h in add_host]
    if shm_size:
        params.append(("shmsize", str(opts.parse_memory(shm_size))))
    if path == "-":
        body, name = sys.stdin.buffer, dockerfile or ""
    elif os.path.isdir(path):
        body, name = context_tar(path, dockerfile)
    else:
        raise InvalidArgument(f"unable to prepare context: path {path!r} is not a directory")
    if name:
        params.append(("dockerfile", name))
    headers = {"Content-Type": "application/x-tar"}
    image_id = ""
    for msg in _client()._stream_json("POST", "/build", params, body, headers):
        if msg.get("aux", {}).get("ID"):
            image_id = msg["aux"]["ID"]
        elif msg.get("stream") and not quiet:
            sys.stdout.write(msg["stream"])
            sys.stdout.flush()
    if quiet:
        click.echo(image_id)
    return 0
