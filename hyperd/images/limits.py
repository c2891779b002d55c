"""How far an image may expand: its size, file count and path depth once unpacked, and how
much more a layer may hold than it weighs (a gzip bomb, a small layer naming a huge sparse
file).

:class:`Budget` keeps the running totals of one image, layer by layer, and raises
:class:`ImageTooLarge` naming the layer and the limit the moment one is passed; it is fed
from tar headers, so a bomb is refused at its first header, before anything is written. The
same budget is spent before an image is listed, so a hostile image is refused first: at
pull while its root disk is built from the layers, at load by ``scan_layers`` in rootfs.py;
and on every flatten, so no other way in skips it.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass

from hyperapi.units import parse_size
from hyperd.errors import InvalidArgument
from hyperd.images.errors import UnsupportedImage

#: A layer may expand past ``max_ratio`` times its compressed size only below this many
#: bytes: small layers of zeros are common and harmless.
RATIO_FLOOR = 256 << 20


class ImageTooLarge(UnsupportedImage):
    """An image expands past a configured limit."""


@dataclass(frozen=True)
class ImageLimits:
    """Caps on an unpacked image (config ``image_limits``), defaults sized far above real
    images (the largest common ones unpack to a few GiB, some 100,000 files)."""

    max_size: int = 32 << 30  # bytes of file content, all layers together
    max_files: int = 2_000_000  # entries, all layers together
    max_depth: int = 256  # path components of one entry
    max_ratio: int = 200  # a layer's expanded bytes over its compressed bytes

    @classmethod
    def from_config(cls, data: dict | None) -> ImageLimits:
        """From the config's ``image_limits`` table: ``max-size`` ("32g"), ``max-files``,
        ``max-depth``, ``max-ratio``; unknown keys are an error."""
        data = dict(data or {})
        out = {}
        for key in ("max-size", "max-files", "max-depth", "max-ratio"):
            if key in data:
                value = data.pop(key)
                field = key.replace("-", "_")
                out[field] = parse_size(str(value)) if key == "max-size" else int(value)
        if data:
            raise InvalidArgument(f"image_limits: unknown keys {', '.join(sorted(data))}")
        return cls(**out)


class Budget:
    """The running totals of one image's expansion against its limits."""

    def __init__(self, limits: ImageLimits | None, image: str = "image"):
        self.limits = limits or ImageLimits()
        self.image = image
        self.size = self.files = 0
        self._layer = "layer"
        self._layer_size = 0
        self._compressed = 0

    def start_layer(self, name: str, compressed_size: int) -> None:
        """Begin counting a layer whose blob weighs ``compressed_size`` bytes."""
        self._layer, self._layer_size, self._compressed = name, 0, max(compressed_size, 1)

    def where(self) -> str:
        """The image and the layer being counted, for errors: ``<image>: layer <id>``."""
        return f"{self.image}: {self._layer}"

    def spend(self, m: tarfile.TarInfo, depth: int) -> None:
        """Count one entry (its header); raise past a limit."""
        lim = self.limits
        self.files += 1
        if self.files > lim.max_files:
            self._refuse(f"has more than {lim.max_files} files")
        if depth > lim.max_depth:
            self._refuse(f"has an entry {depth} directories deep (limit {lim.max_depth})")
        if not m.isreg():
            return
        self.size += m.size
        self._layer_size += m.size
        if self.size > lim.max_size:
            self._refuse(f"expands past {_gib(lim.max_size)} (image_limits max-size)")
        if self._layer_size > RATIO_FLOOR and self._layer_size > lim.max_ratio * self._compressed:
            self._refuse(
                f"expands {self._layer_size // self._compressed}x: {_gib(self._layer_size)} "
                f"from a {self._compressed}-byte blob (limit {lim.max_ratio}x)"
            )

    def _refuse(self, what: str) -> None:
        raise ImageTooLarge(f"{self.where()} {what}; refused")


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB" if n >= 1 << 30 else f"{n >> 20} MiB"
