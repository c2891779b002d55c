"""Images: reference parsing, registry client, content store, root filesystem builder.

The entry point is :class:`ImageService`; the modules underneath are usable on their own.
"""

from hyperd.images.errors import (
    AuthError,
    DigestMismatch,
    ImageError,
    ImageInUse,
    ImageNotFound,
    InvalidReference,
    RegistryError,
    RootfsBuildError,
    UnsafeLayerEntry,
    UnsupportedImage,
)
from hyperd.images.reference import Reference, parse_reference
from hyperd.images.service import ImageService, ImageServiceConfig
from hyperd.images.store import ImageRecord

__all__ = [
    "AuthError",
    "DigestMismatch",
    "ImageError",
    "ImageInUse",
    "ImageNotFound",
    "ImageRecord",
    "ImageService",
    "ImageServiceConfig",
    "InvalidReference",
    "Reference",
    "RegistryError",
    "RootfsBuildError",
    "UnsafeLayerEntry",
    "UnsupportedImage",
    "parse_reference",
]
