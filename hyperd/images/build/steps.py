"""What each Dockerfile instruction does to a stage (the builder's dispatchers).

Every step makes an image on the stage's current one (as Docker's legacy builder: metadata
steps with an empty layer, RUN with the container's changes, COPY/ADD and a missing
WORKDIR with a layer made on the host), through the build cache.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import os
import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from hyperd.errors import InvalidArgument
from hyperd.images import importer
from hyperd.images.commit import Layer, NewImage, create_image, layer_media_type, lower_tree
from hyperd.images.errors import ImageNotFound
from hyperd.images.layer import store_layer
from hyperd.images.rootfs import flatten
from hyperd.images.store import ImageRecord
from hyperd.images.tree import Tree

from .context import BuildContext, Source, digest_sources
from .copy import CopyLayer, missing_dir, resolve_owner, source_kind
from .dockerfile import Instruction
from .lexer import expand, split
from .metadata import ConfigEditor, command, env_map
from .run import BuildError

# Build args every RUN sees when given, declared or not (and that never bust the cache).
PROXY_ARGS = frozenset(
    f"{p}_PROXY" if upper else f"{p.lower()}_proxy"
    for p in ("HTTP", "HTTPS", "FTP", "NO", "ALL")
    for upper in (True, False)
)
METADATA = (
    "CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "MAINTAINER", "ONBUILD",
    "SHELL", "STOPSIGNAL", "USER", "VOLUME",
)  # fmt: skip


@dataclass
class Stage:
    """A build stage: its current image and the config its next image gets."""

    index: int
    name: str
    image: ImageRecord | None
    config: dict
    args: dict[str, str | None] = field(default_factory=dict)
    cmd_set: bool = False
    author: str = ""

    @property
    def parent_id(self) -> str:
        return self.image.id if self.image else "scratch"

    def env(self) -> dict[str, str]:
        """What ``$VAR`` expands to: the stage's ARGs, then its ENV (which wins)."""
        args = {k: v for k, v in self.args.items() if v is not None}
        return {**args, **env_map(self.config)}


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


class Steps:
    """The dispatchers; the Builder supplies images, runner, context, options and output."""

    async def dispatch(self, stage: Stage, inst: Instruction) -> None:
        """Run one (non-FROM) instruction on ``stage``."""
        if inst.cmd == "FROM":
            raise InvalidArgument("FROM starts a new stage; it cannot be an ONBUILD trigger")
        if inst.cmd in METADATA:
            await self._metadata(stage, inst)
            return
        handler = {
            "RUN": self._run,
            "COPY": self._copy,
            "ADD": self._copy,
            "WORKDIR": self._workdir,
            "ARG": self._arg,
        }[inst.cmd]
        await handler(stage, inst)

    # -- the cache -------------------------------------------------------------------------

    async def _step(self, stage: Stage, key: str, make) -> None:
        """Use the image the cache has for (stage image, key), or ``make()`` one."""
        index = self.images.index
        if not self.options.nocache:
            hit = await asyncio.to_thread(self._cache_hit, stage.parent_id, key)
            if hit is not None:
                self.say(" ---> Using cache\n")
                await self._adopt(stage, hit)
                return
        rec = await make()
        await asyncio.to_thread(index.cache_put, stage.parent_id, key, rec.id)
        await self._adopt(stage, rec)

    def _cache_hit(self, parent: str, key: str) -> ImageRecord | None:
        found = self.images.index.cache_get(parent, key)
        if found is None or (self.cache_allowed is not None and found not in self.cache_allowed):
            return None
        return self.images.index.get(found)

    async def _adopt(self, stage: Stage, rec: ImageRecord) -> None:
        stage.image = rec
        full = await asyncio.to_thread(self.images.full_config, rec.id)
        stage.config = copy.deepcopy(full.get("config") or {})
        self.say(f" ---> {rec.id[7:19]}\n")

    async def _create(self, stage: Stage, new: NewImage, layer_fill=None) -> ImageRecord:
        def work() -> ImageRecord:
            with self.images.writing():
                if layer_fill is not None:
                    media = layer_media_type(stage.image)
                    desc, diff_id = store_layer(self.images.store, layer_fill, media)
                    new.layer = Layer(desc, diff_id)
                return create_image(self.images, stage.image, new)

        return await asyncio.to_thread(work)

    def _new(self, stage: Stage, config: dict, created_by: str) -> NewImage:
        return NewImage(copy.deepcopy(config), created_by=created_by, author=stage.author)

    async def tree(self, stage: Stage) -> Tree:
        """The stage's current filesystem (read from its layers once per image)."""
        if stage.parent_id not in self.trees:
            self.trees[stage.parent_id] = await asyncio.to_thread(
                lower_tree, self.images, stage.image
            )
        return self.trees[stage.parent_id]

    # -- dispatchers -----------------------------------------------------------------------

    async def _metadata(self, stage: Stage, inst: Instruction) -> None:
        config = copy.deepcopy(stage.config)
        editor = ConfigEditor(config, self.escape)
        editor.cmd_set = stage.cmd_set
        editor.apply(inst, stage.env())
        stage.cmd_set = editor.cmd_set
        if editor.author is not None:
            stage.author = editor.author
        new = self._new(stage, config, f"/bin/sh -c #(nop)  {inst.original}")
        key = _key("META", config, stage.author)
        await self._step(stage, key, lambda: self._create(stage, new))

    async def _arg(self, stage: Stage, inst: Instruction) -> None:
        for word in split(inst.args, None, self.escape) or [""]:
            name, eq, default = word.partition("=")
            if not name:
                raise InvalidArgument("ARG requires exactly one argument")
            value = self.arg_value(name, expand(default, stage.env(), self.escape) if eq else None)
            stage.args[name] = value
        new = self._new(stage, stage.config, f"/bin/sh -c #(nop)  {inst.original}")
        key = _key("ARG", {k: stage.args[k] for k in sorted(stage.args)})
        await self._step(stage, key, lambda: self._create(stage, new))

    def run_env(self, stage: Stage) -> tuple[list[str], list[str]]:
        """RUN's environment (ENV, then build args not overridden) and the declared args
        that show in its history line."""
        config_env = env_map(stage.config)
        declared = [f"{k}={v}" for k, v in sorted(stage.args.items()) if v is not None]
        proxies = {k: v for k, v in self.buildargs.items() if k in PROXY_ARGS and v is not None}
        extra = {k: v for k, v in stage.args.items() if v is not None}
        extra = {**proxies, **extra}
        env = list(stage.config.get("Env") or [])
        env += [f"{k}={v}" for k, v in extra.items() if k not in config_env]
        return env, declared

    async def _run(self, stage: Stage, inst: Instruction) -> None:
        cmd = command(inst, stage.config)
        if not cmd:
            raise InvalidArgument("RUN requires at least one argument")
        env, declared = self.run_env(stage)
        prefix = f"|{len(declared)} {' '.join(declared)} " if declared else ""
        new = self._new(stage, stage.config, prefix + " ".join(cmd))
        tree = await self.tree(stage)
        key = _key("RUN", cmd, declared)
        await self._step(stage, key, lambda: self.runner.run(stage.image, cmd, env, new, tree))

    async def _workdir(self, stage: Stage, inst: Instruction) -> None:
        config = copy.deepcopy(stage.config)
        ConfigEditor(config, self.escape).apply(inst, stage.env())
        tree = await self.tree(stage)
        path = missing_dir(tree, config["WorkingDir"])
        new = self._new(stage, config, f"/bin/sh -c #(nop) WORKDIR {config['WorkingDir']}")
        fill = CopyLayer([], path + "/", tree).write if path else None
        key = _key("WORKDIR", config, bool(path))
        await self._step(stage, key, lambda: self._create(stage, new, fill))

    async def _copy(self, stage: Stage, inst: Instruction) -> None:
        env = stage.env()
        words = [expand(w, env, self.escape) for w in inst.json] if inst.json is not None else None
        words = words if words is not None else split(inst.args, env, self.escape)
        if len(words) < 2:
            raise InvalidArgument(f"{inst.cmd} requires at least two arguments")
        source_from = expand(inst.flag("from"), env, self.escape)
        root = await self._source_root(source_from) if source_from else self.context
        sources: list[Source] = []
        for word in words[:-1]:
            if inst.cmd == "ADD" and urlsplit(word).scheme in ("http", "https"):
                sources.append(await self._download(word))
            else:
                sources += await asyncio.to_thread(root.select, word)
        tree = await self.tree(stage)
        chown = expand(inst.flag("chown"), env, self.escape)
        owner = resolve_owner(chown, tree) if chown else None
        workdir = stage.config.get("WorkingDir") or "/"
        unpack = inst.cmd == "ADD" and not source_from
        layer = CopyLayer(sources, words[-1], tree, workdir, owner, unpack)
        digest = await asyncio.to_thread(digest_sources, sources)
        created_by = (
            f"/bin/sh -c #(nop) {inst.cmd} {source_kind(sources)}:{digest[7:]} in {words[-1]} "
        )
        new = self._new(stage, stage.config, created_by)
        key = _key(inst.cmd, digest, words[-1], chown, workdir, unpack)
        await self._step(stage, key, lambda: self._create(stage, new, layer.write))

    async def _source_root(self, ref: str) -> BuildContext:
        """COPY --from: a stage (name or index) or an image, flattened once per build."""
        stage = self.stage_named(ref)
        if stage is not None:
            image = stage.image
        else:
            try:
                image = await asyncio.to_thread(self.images.resolve, ref)
            except ImageNotFound:
                raise BuildError(
                    f"COPY --from={ref}: no such stage or local image (the builder does not pull)"
                ) from None
        where = self.workdir / f"from-{image.id[7:19] if image else 'scratch'}"
        if not where.exists():
            where.mkdir(mode=0o755)
            if image is not None:
                paths = [self.images.store.path(d.digest) for d in image.layers]
                await asyncio.to_thread(flatten, paths, where)
        return BuildContext(where)

    async def _download(self, url: str) -> Source:
        """ADD of a URL (loopback only: hyperd reaches no other network)."""
        importer.check_url(url)
        where = self.workdir / f"download-{_key(url)[:16]}"
        where.mkdir(exist_ok=True)
        name = posixpath.basename(urlsplit(url).path) or "download"
        path = Path(where) / name
        await asyncio.to_thread(importer.fetch, url, path)
        os.chmod(path, 0o600)
        return Source(path, name)
