"""``docker build`` (the legacy builder's API and output): the Dockerfile's stages, run step
by step, each step's image cached by (parent image, step).

Output is Docker's JSON stream: ``{"stream": "Step 1/3 : FROM busybox\\n"}``, each step's
``" ---> <id>"``, the RUN output (stderr between ``ESC[91m`` and ``ESC[0m``), then
``{"aux": {"ID": …}}`` and ``Successfully built``/``Successfully tagged``; a failure is the
last message, ``{"error": …, "errorDetail": {"message": …, "code": N}}``.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hyperd.errors import InvalidArgument
from hyperd.images.errors import ImageNotFound
from hyperd.images.manifest import parse_platform
from hyperd.images.reference import parse_reference
from hyperd.images.service import ImageService

from .context import BuildContext
from .dockerfile import Instruction, parse, parse_instruction
from .lexer import split
from .run import BuildError, Runner
from .squash import squash
from .steps import PROXY_ARGS, Stage, Steps


@dataclass
class BuildOptions:
    """What a build request asks for (besides the context)."""

    dockerfile: str = ""
    tags: list[str] = field(default_factory=list)
    quiet: bool = False
    nocache: bool = False
    pull: bool = False
    buildargs: dict[str, str | None] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    target: str = ""
    cache_from: list[str] = field(default_factory=list)
    platform: str = ""
    squash: bool = False


def split_stages(instructions: list[Instruction]) -> tuple[list[Instruction], list[list]]:
    """The global ARGs before the first FROM, and each stage's instructions (FROM first)."""
    meta: list[Instruction] = []
    stages: list[list[Instruction]] = []
    for inst in instructions:
        if inst.cmd == "FROM":
            stages.append([inst])
        elif stages:
            stages[-1].append(inst)
        elif inst.cmd == "ARG":
            meta.append(inst)
        else:
            raise InvalidArgument(
                f"Dockerfile line {inst.line}: {inst.cmd} before the first FROM "
                "(only ARG may come before FROM)"
            )
    if not stages:
        raise InvalidArgument("the Dockerfile has no FROM: no build stage in current context")
    return meta, stages


def stage_name(first: Instruction) -> str:
    """The ``AS name`` of a stage's FROM (lower case), or ""."""
    words = first.args.split()
    return words[2].lower() if len(words) == 3 and words[1].lower() == "as" else ""


class Builder(Steps):
    """One build."""

    def __init__(
        self,
        images: ImageService,
        runner: Runner,
        context: BuildContext,
        options: BuildOptions,
        emit: Callable[[dict], None],
        workdir: Path,
    ):
        self.images, self.runner, self.context = images, runner, context
        self.options, self.emit, self.workdir = options, emit, workdir
        self.buildargs = dict(options.buildargs)
        self.escape = "\\"
        self.meta_args: dict[str, str | None] = {}
        self.used_args: set[str] = set()
        self.stages: list[Stage] = []
        self.trees: dict = {}
        self.cache_allowed: set[str] | None = None

    def say(self, text: str) -> None:
        """A line of the build's output (none when quiet)."""
        if not self.options.quiet:
            self.emit({"stream": text})

    def arg_value(self, name: str, default: str | None) -> str | None:
        """An ARG's value: the build arg, else its default (else the global ARG's)."""
        self.used_args.add(name)
        if name in self.buildargs:
            return self.buildargs[name]
        if default is None:
            return self.meta_args.get(name)
        return default

    def stage_named(self, ref: str) -> Stage | None:
        """A finished stage by name or index."""
        for stage in self.stages:
            if stage.name == ref.lower() or (ref.isdigit() and stage.index == int(ref)):
                return stage
        return None

    # -- the build ---------------------------------------------------------------------------

    async def build(self) -> str:
        """Run the build; returns the image ID."""
        rel, raw = await asyncio.to_thread(self.context.dockerfile, self.options.dockerfile)
        await asyncio.to_thread(self.context.apply_dockerignore, rel)
        dockerfile = parse(raw)
        self.escape = dockerfile.escape
        meta, stages = split_stages(dockerfile.instructions)
        stages = self._until_target(stages)
        extra = [self._labels_step()] if self.options.labels else []
        total = len(meta) + sum(len(s) for s in stages) + len(extra)
        self.cache_allowed = await asyncio.to_thread(self._cache_from)
        n = 0
        for inst in meta:
            n += 1
            self.say(f"Step {n}/{total} : {inst.original}\n")
            for word in split(inst.args, None, self.escape):
                name, eq, default = word.partition("=")
                self.meta_args[name] = self.arg_value(name, default if eq else None)
        for i, insts in enumerate(stages):
            stage = None
            for inst in insts:
                n += 1
                self.say(f"Step {n}/{total} : {inst.original}\n")
                if stage is None:
                    stage = await self._from(inst, i)
                else:
                    await self.dispatch(stage, inst)
            self.stages.append(stage)
        final = self.stages[-1]
        for inst in extra:
            n += 1
            self.say(f"Step {n}/{total} : {inst.original}\n")
            await self.dispatch(final, inst)
        return await self._finish(final, stages)

    def _until_target(self, stages: list[list[Instruction]]) -> list[list[Instruction]]:
        target = self.options.target.lower()
        if not target:
            return stages
        for i, insts in enumerate(stages):
            if stage_name(insts[0]) == target:
                return stages[: i + 1]
        raise InvalidArgument(f"failed to reach build target {self.options.target} in Dockerfile")

    def _labels_step(self) -> Instruction:
        pairs = " ".join(f'"{k}"="{v}"' for k, v in self.options.labels.items())
        return parse_instruction(f"LABEL {pairs}")

    def _cache_from(self) -> set[str] | None:
        """With cache_from, only those images and their local parents are cache hits."""
        if not self.options.cache_from:
            return None
        allowed: set[str] = set()
        for ref in self.options.cache_from:
            try:
                image_id = self.images.resolve(ref).id
            except (ImageNotFound, InvalidArgument):
                continue
            while image_id and image_id not in allowed:
                allowed.add(image_id)
                image_id = self.images.index.parent(image_id)
        return allowed

    async def _from(self, inst: Instruction, index: int) -> Stage:
        env = {k: v for k, v in self.meta_args.items() if v is not None}
        words = split(inst.args, env, self.escape)
        if len(words) not in (1, 3) or (len(words) == 3 and words[1].lower() != "as"):
            raise InvalidArgument("FROM requires either one or three arguments")
        if inst.flag("platform"):
            check_platform(split(inst.flag("platform"), env, self.escape)[0])
        image = await self._base(words[0])
        config = {}
        if image is not None:
            full = await asyncio.to_thread(self.images.full_config, image.id)
            config = copy.deepcopy(full.get("config") or {})
            self.say(f" ---> {image.id[7:19]}\n")
        stage = Stage(index, words[2].lower() if len(words) == 3 else "", image, config)
        triggers = config.pop("OnBuild", None) or []
        if triggers:
            self.say(f"# Executing {len(triggers)} build trigger{'s' * (len(triggers) > 1)}\n")
            for text in triggers:
                await self.dispatch(stage, parse_instruction(text, inst.line, self.escape))
        return stage

    async def _base(self, ref: str):
        if ref.lower() == "scratch":
            return None
        stage = self.stage_named(ref)
        if stage is not None and not ref.isdigit():
            return stage.image
        try:
            return await asyncio.to_thread(self.images.resolve, ref)
        except ImageNotFound:
            parse_reference(ref)
            raise BuildError(
                f"pull access denied for {ref}: the image is not here and the builder does "
                f"not pull (pull it first, e.g. from a registry on this host)"
            ) from None

    async def _finish(self, final: Stage, stages) -> str:
        if final.image is None:
            raise BuildError("No image was generated. Is your Dockerfile empty?")
        image = final.image
        if self.options.squash:
            base = await self._base(split(stages[-1][0].args, self.meta_env(), self.escape)[0])
            image = await asyncio.to_thread(squash, self.images, base, image)
        unused = sorted(set(self.buildargs) - self.used_args - PROXY_ARGS)
        if unused:
            self.say(f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n")
        for tag in self.options.tags:
            await asyncio.to_thread(self.images.tag, image.id, tag)
        self.emit({"aux": {"ID": image.id}})
        if self.options.quiet:
            self.emit({"stream": f"{image.id}\n"})
            return image.id
        self.say(f"Successfully built {image.id[7:19]}\n")
        for tag in self.options.tags:
            self.say(f"Successfully tagged {parse_reference(tag).familiar()}\n")
        return image.id

    def meta_env(self) -> dict[str, str]:
        """The global ARGs' values (for FROM lines)."""
        return {k: v for k, v in self.meta_args.items() if v is not None}


def check_platform(text: str) -> None:
    """A build platform must be this host's (builds run here, in VMs of its kind)."""
    want, host = parse_platform(text), parse_platform(None)
    if (want.os, want.architecture) != (host.os, host.architecture):
        raise InvalidArgument(f"invalid platform {text!r}: this daemon builds for {host} only")
