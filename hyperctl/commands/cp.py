"""``cp``: files between a container and the local file system, as ``docker cp`` copies
them (tar streams over ``/containers/{id}/archive``, built and extracted here)."""

from __future__ import annotations

import os
import posixpath
import stat
import sys

import click

from hyperapi.errors import HyperError, InvalidArgument
from hyperctl.commands.common import pass_client

GO_MODE_DEVICE = 1 << 26
GO_MODE_IRREGULAR = 1 << 19


def split_cp_arg(arg: str) -> tuple[str, str]:
    """(container, path) of ``CONTAINER:PATH``; ("", arg) for a local path. A local path
    with a colon must start with ``/`` or ``.`` (``./file:name``)."""
    if arg.startswith("/"):
        return "", arg
    container, sep, path = arg.partition(":")
    if not sep or container.startswith("."):
        return "", arg
    return container, path


class Counter:
    """A binary reader that counts the bytes taken from it."""

    def __init__(self, source):
        self.source = source
        self.count = 0

    def read(self, size: int = -1) -> bytes:
        """Some bytes of the source, counted."""
        data = self.source.read(size)
        self.count += len(data)
        return data


@click.command()
@click.option("-a", "--archive", is_flag=True, help="Archive mode (copy all uid/gid information).")
@click.option("-L", "--follow-link", is_flag=True, help="Always follow symbol link in SRC_PATH.")
@click.option(
    "-q", "--quiet", is_flag=True, help="No progress output (also when stdout is no terminal)."
)
@click.argument("source", metavar="CONTAINER:SRC_PATH|SRC_PATH|-")
@click.argument("dest", metavar="DEST_PATH|-|CONTAINER:DEST_PATH")
@pass_client
def cp(client, archive: bool, follow_link: bool, quiet: bool, source: str, dest: str) -> None:
    """Copy files/folders between a container and the local filesystem.

    Use '-' as the source to read a tar archive from stdin and extract it to a directory
    destination in a container. Use '-' as the destination to stream a tar archive of a
    container source to stdout.
    """
    if not source:
        raise InvalidArgument("source can not be empty")
    if not dest:
        raise InvalidArgument("destination can not be empty")
    src_container, src_path = split_cp_arg(source)
    dst_container, dst_path = split_cp_arg(dest)
    quiet = quiet or not sys.stdout.isatty()
    if src_container and dst_container:
        raise InvalidArgument("copying between containers is not supported")
    if src_container:
        done = copy_from_container(client, src_container, src_path, dst_path, follow_link)
    elif dst_container:
        done = copy_to_container(
            client, dst_container, src_path, dst_path, follow_link, copy_uid_gid=archive
        )
    else:
        raise InvalidArgument("must specify at least one container source")
    if not quiet and done is not None:
        from hyperctl.formatting import human_size

        size, where = done
        click.echo(f"Successfully copied {human_size(size, 3)} to {where}", err=True)


def copy_from_container(client, container, src_path, dst_path, follow_link):
    """Container → local path (or a tar on stdout for ``-``); (bytes, where) for the report,
    or None when the tar went to stdout."""
    from hyperctl.archive import paths
    from hyperctl.archive.unpack import Extractor

    if dst_path != "-":
        dst_path = paths.resolve_local(dst_path)
        validate_output_path(dst_path)
    rebase = ""
    if follow_link:
        info = _stat(client, container, src_path)
        if info is not None and info.is_symlink:
            target = _join_link(src_path, info.link_target)
            src_path, rebase = paths.rebase_name(src_path, target)
    reader, info = client.get_archive(container, src_path)
    with reader:
        if dst_path == "-":
            out = sys.stdout.buffer
            for chunk in reader.chunks():
                out.write(chunk)
            out.flush()
            return None
        src = paths.CopyInfo(src_path, True, bool(info and info.is_dir), rebase)
        dst_dir, new_name = paths.prepare(src, paths.destination_info(dst_path))
        old = paths.source_base(src_path)
        counted = Counter(reader)
        Extractor(dst_dir, lambda name: paths.rebase(name, old, new_name)).extract(counted)
    return counted.count, dst_path


def copy_to_container(client, container, src_path, dst_path, follow_link, copy_uid_gid):
    """Local path (or a tar on stdin for ``-``) → container; (bytes, where) for the report."""
    from hyperctl.archive import paths
    from hyperctl.archive.pack import Packer

    if src_path != "-":
        src_path = paths.resolve_local(src_path)
    client.inspect_container(container)  # a missing container: its own error, before any data
    dst = _destination(client, container, dst_path)
    if src_path == "-":
        if not dst.is_dir:
            raise InvalidArgument(f'destination "{container}:{dst_path}" must be a directory')
        body = Counter(sys.stdin.buffer)
        client.put_archive(container, dst.path, body, copy_uid_gid=copy_uid_gid)
        return body.count, f"{container}:{dst.path}"
    src = paths.source_info(src_path, follow_link)
    dst_dir, new_name = paths.prepare(src, dst)
    packer = Packer(src.path, new_name or paths.source_base(src.path))
    client.put_archive(container, dst_dir, packer.chunks(), copy_uid_gid=copy_uid_gid)
    return packer.sent, f"{container}:{dst.path}"


def _stat(client, container: str, path: str):
    """The path's stat, or None when it cannot be had (the copy itself will tell why)."""
    from hyperctl.errors import APIError

    try:
        return client.stat_path(container, path)
    except APIError:
        return None


def _join_link(path: str, target: str) -> str:
    from hyperctl.archive.paths import split_dir_entry

    return target if target.startswith("/") else posixpath.join(split_dir_entry(path)[0], target)


def _destination(client, container: str, path: str):
    """The container side of a copy: what ``path`` is (a symlink followed once)."""
    from hyperctl.archive.paths import CopyInfo

    dst = CopyInfo(path)
    info = _stat(client, container, path)
    if info is not None and info.is_symlink:
        dst.path = _join_link(path, info.link_target)
        info = _stat(client, container, dst.path)
    if info is not None:
        why = _irregular(info.mode)
        if why:
            raise InvalidArgument(
                f'destination "{container}:{path}" must be a directory or a regular file: {why}'
            )
        dst.exists, dst.is_dir = True, info.is_dir
    return dst


def _irregular(go_mode: int) -> str:
    if go_mode & GO_MODE_DEVICE:
        return "got a device"
    if go_mode & GO_MODE_IRREGULAR:
        return "got an irregular file"
    return ""


def validate_output_path(path: str) -> None:
    """A local destination's directory must exist, and it must not be a device."""
    from hyperctl.archive.paths import clean

    parent = posixpath.dirname(clean(path))
    if parent and parent != "." and not os.path.exists(parent):
        raise HyperError(f'invalid output path: directory "{parent}" does not exist')
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as e:
        raise HyperError(f"stat {path}: {(e.strerror or str(e)).lower()}") from None
    if stat.S_ISBLK(mode) or stat.S_ISCHR(mode):
        raise HyperError(
            f'invalid output path: "{path}" must be a directory or a regular file: got a device'
        )
