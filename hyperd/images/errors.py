"""Errors raised by the image subsystem, all rooted in hyperd.errors.HyperError."""

from hyperd.errors import Conflict, HyperError, InvalidArgument, NotFound


class ImageError(HyperError):
    """Base of every image-subsystem error."""


class ImageNotFound(ImageError, NotFound):
    """No local image (or remote manifest) matches the reference."""


class InvalidReference(ImageError, InvalidArgument):
    """An image reference does not follow the distribution reference grammar."""


class ImageInUse(ImageError, Conflict):
    """The image cannot be removed without force (several tags, or in use)."""


class DigestMismatch(ImageError):
    """Downloaded or imported content does not match its declared digest or size."""


class RegistryError(ImageError):
    """The registry failed, refused, or answered something unusable."""

    status = 502


class AuthError(RegistryError):
    """The registry rejected our credentials or we have none it accepts."""

    status = 401


class UnsupportedImage(ImageError, InvalidArgument):
    """The manifest, media type, platform or archive layout is not supported."""


class UnsafeLayerEntry(ImageError):
    """A layer entry would land outside the root filesystem being built."""

    status = 400


class RootfsBuildError(ImageError):
    """Making the read-only root filesystem image failed."""
