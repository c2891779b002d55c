"""Images: pull, images, rmi, tag, load, save."""

from __future__ import annotations

import contextlib
import os
import sys

import click

from hyperapi.errors import InvalidArgument
from hyperctl import opts
from hyperctl.commands.common import for_each, format_option, pass_client


def full_reference(image: str) -> str:
    """``busybox`` → ``busybox:latest`` (digests and tags as they are)."""
    if "@" not in image and opts.split_repo_tag(image)[1] is None:
        return f"{image}:latest"
    return image


def pull_image(client, image: str, platform_: str | None, out=None, quiet: bool = False) -> str:
    """Pull with progress on ``out`` (stderr by default); the final reference."""
    from hyperctl.streams import PullProgress

    if "@" in image:
        repo, tag = image, None
    else:
        repo, tag = opts.split_repo_tag(image)
        tag = tag or "latest"
    progress = PullProgress(out if out is not None else sys.stderr)
    final = f"{repo}:{tag}" if tag else repo
    for msg in client.pull(repo, tag, platform_):
        status = msg.get("status") or ""
        if status.startswith("Status: ") and " for " in status:
            final = status.rsplit(" for ", 1)[1].strip()
        if not quiet:
            progress.show(msg)
    return final


@click.command()
@click.option("-q", "--quiet", is_flag=True, help="Only print the image reference.")
@click.option("--platform", "platform_", help="Platform (os/arch).")
@click.argument("name")
@pass_client
def pull(client, quiet: bool, platform_, name: str) -> None:
    """Pull an image from a registry: NAME[:TAG|@DIGEST]."""
    if "@" not in name and opts.split_repo_tag(name)[1] is None and not quiet:
        click.echo("Using default tag: latest")
    click.echo(pull_image(client, name, platform_, out=sys.stdout, quiet=quiet))


def _matches(repository: str):
    repo, tag = opts.split_repo_tag(repository)

    def match(ref: str) -> bool:
        r, t = opts.split_repo_tag(ref)
        names = {r, r.removeprefix("docker.io/"), r.removeprefix("docker.io/library/")}
        return repo in names and (tag is None or tag == t)

    return match


@click.command()
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs.")
@click.option("--digests", is_flag=True, help="Show digests.")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output.")
@format_option()
@click.option("-a", "--all", "all_", is_flag=True, hidden=True)
@click.argument("repository", required=False)
@pass_client
def images(client, quiet, digests, no_trunc, fmt, all_, repository) -> None:
    """List images (optionally only REPOSITORY[:TAG])."""
    from hyperctl.formats.images import format_images

    imgs = client.images(digests=True)
    if repository:
        match = _matches(repository)
        imgs = [i for i in imgs if any(match(t) for t in i.get("RepoTags") or [])]
    imgs = sorted(imgs, key=lambda i: i.get("Created") or 0, reverse=True)
    out = format_images(imgs, fmt, quiet, digests, trunc=not no_trunc)
    if out:
        click.echo(out)


@click.command()
@click.option("-f", "--force", is_flag=True, help="Force removal.")
@click.argument("images", nargs=-1, required=True)
@pass_client
def rmi(client, force: bool, images) -> int:
    """Remove one or more images."""

    def remove(name: str) -> str:
        lines = []
        for item in client.remove_image(name, force=force):
            for k in ("Untagged", "Deleted"):
                if item.get(k):
                    lines.append(f"{k}: {item[k]}")
        return "\n".join(lines)

    return for_each(images, remove)


@click.command()
@click.argument("source")
@click.argument("target")
@pass_client
def tag(client, source: str, target: str) -> None:
    """Create a tag TARGET that refers to SOURCE."""
    if "@" in target:
        raise InvalidArgument(f"refusing to create a tag with a digest reference: {target}")
    repo, t = opts.split_repo_tag(target)
    client.tag(source, repo, t or "latest")


@click.command()
@click.option("-i", "--input", "input_", type=click.Path(dir_okay=False), help="Read a tar.")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output.")
@pass_client
def load(client, input_, quiet) -> None:
    """Load images from a tar archive (docker save or OCI), from a file or stdin."""
    from hyperctl.streams import isatty

    if input_:
        try:
            f = open(input_, "rb")  # noqa: SIM115 - closed below
        except OSError as e:
            raise InvalidArgument(f"open {input_}: {e.strerror or e}") from None
    else:
        if isatty(sys.stdin):
            raise InvalidArgument(
                "requested load from stdin, but stdin is empty (use -i FILE or a redirect)"
            )
        f = sys.stdin.buffer
    try:
        for msg in client.load(f, quiet=quiet):
            if msg.get("stream") and not quiet:
                click.echo(msg["stream"], nl=False)
            elif msg.get("status") and not quiet:
                click.echo(msg["status"])
    finally:
        if input_:
            f.close()


@click.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write to a file.")
@click.argument("images", nargs=-1, required=True)
@pass_client
def save(client, output, images) -> None:
    """Save images to a tar archive (stdout by default)."""
    from hyperctl.streams import isatty

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
    if isatty(sys.stdout):
        raise InvalidArgument(
            "cowardly refusing to save to a terminal. Use the -o flag or redirect"
        )
    out = sys.stdout.buffer
    client.save(list(images), out)
    out.flush()
