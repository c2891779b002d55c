"""Image references, parsed and normalised the way Docker does it.

Follows github.com/distribution/reference: ``nginx`` is ``docker.io/library/nginx:latest``,
``user/repo`` lives on docker.io, a first component with a dot, a colon or equal to
``localhost`` names a registry host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hyperd.images.errors import InvalidReference

DEFAULT_REGISTRY = "docker.io"
LEGACY_REGISTRY = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

PATH_RE = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
DOMAIN_RE = re.compile(_DOMAIN)
TAG_RE = re.compile(_TAG)
DIGEST_RE = re.compile(_DIGEST)
ID_RE = re.compile(r"[a-f0-9]{64}")
_KNOWN_DIGEST_HEX = {"sha256": 64, "sha384": 96, "sha512": 128}


@dataclass(frozen=True)
class Reference:
    """A fully normalised image reference."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """``registry/repository`` without tag or digest."""
        return f"{self.registry}/{self.repository}"

    def familiar_name(self) -> str:
        """The repository as Docker prints it (``nginx``, ``user/app``, ``host:5000/app``)."""
        if self.registry != DEFAULT_REGISTRY:
            return self.name
        repo = self.repository
        if repo.startswith(OFFICIAL_PREFIX) and "/" not in repo[len(OFFICIAL_PREFIX) :]:
            return repo[len(OFFICIAL_PREFIX) :]
        return repo

    def familiar(self) -> str:
        """Short form, like ``docker images`` shows: ``nginx:latest``, ``app@sha256:…``."""
        return self.familiar_name() + self._suffix()

    def with_tag(self, tag: str) -> Reference:
        """This repository with ``tag`` and no digest."""
        if not TAG_RE.fullmatch(tag):
            raise InvalidReference(f"invalid tag format: {tag!r}")
        return Reference(self.registry, self.repository, tag, None)

    def with_digest(self, digest: str) -> Reference:
        """This repository pinned to ``digest`` (tag dropped)."""
        validate_digest(digest)
        return Reference(self.registry, self.repository, None, digest)

    def _suffix(self) -> str:
        out = f":{self.tag}" if self.tag else ""
        return out + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.name + self._suffix()


def validate_digest(digest: str) -> str:
    """Return ``digest`` if it is ``algorithm:hex`` with the right length, else raise."""
    if not DIGEST_RE.fullmatch(digest):
        raise InvalidReference(f"invalid digest format: {digest!r}")
    algo, hexpart = digest.split(":", 1)
    want = _KNOWN_DIGEST_HEX.get(algo)
    if want is not None and (len(hexpart) != want or hexpart != hexpart.lower()):
        raise InvalidReference(f"invalid {algo} digest: {digest!r}")
    return digest


def _split_domain(name: str) -> tuple[str, str]:
    i = name.find("/")
    first = name[:i]
    if i == -1 or (
        not any(c in first for c in ".:") and first != "localhost" and first.lower() == first
    ):
        domain, remainder = DEFAULT_REGISTRY, name
    else:
        domain, remainder = first, name[i + 1 :]
    if domain == LEGACY_REGISTRY:
        domain = DEFAULT_REGISTRY
    if domain == DEFAULT_REGISTRY and "/" not in remainder:
        remainder = OFFICIAL_PREFIX + remainder
    return domain, remainder


def _split_suffixes(text: str) -> tuple[str, str | None, str | None]:
    name, digest = text, None
    if "@" in text:
        name, digest = text.split("@", 1)
        validate_digest(digest)
    tag = None
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name, tag = name[:colon], name[colon + 1 :]
        if not TAG_RE.fullmatch(tag):
            raise InvalidReference(f"invalid tag format in reference {text!r}: {tag!r}")
    return name, tag, digest


def parse_reference(text: str, *, default_tag: bool = True) -> Reference:
    """Parse and normalise ``text``; add ``:latest`` when it has neither tag nor digest.

    Raises InvalidReference naming the problem for anything Docker would refuse.
    """
    if not isinstance(text, str) or not text:
        raise InvalidReference("invalid reference format: empty reference")
    if ID_RE.fullmatch(text):
        raise InvalidReference(
            f"invalid repository name ({text}), cannot specify 64-byte hexadecimal strings"
        )
    if text != text.strip() or any(c.isspace() for c in text):
        raise InvalidReference(f"invalid reference format: whitespace in {text!r}")
    name, tag, digest = _split_suffixes(text)
    if not name:
        raise InvalidReference(f"invalid reference format: no repository in {text!r}")
    domain, path = _split_domain(name)
    if path.lower() != path:
        raise InvalidReference(
            f"invalid reference format: repository name must be lowercase: {text!r}"
        )
    if not DOMAIN_RE.fullmatch(domain):
        raise InvalidReference(f"invalid reference format: bad registry host {domain!r}")
    if not PATH_RE.fullmatch(path):
        raise InvalidReference(f"invalid reference format: bad repository name {path!r}")
    if len(domain) + 1 + len(path) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidReference(
            f"repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters"
        )
    if default_tag and tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest)


def is_image_id(text: str) -> bool:
    """True for ``sha256:<64 hex>`` or a bare 64-hex image ID."""
    hexpart = text[7:] if text.startswith("sha256:") else text
    return bool(ID_RE.fullmatch(hexpart))
