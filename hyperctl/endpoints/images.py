"""Image endpoints: pull, list, inspect, remove, tag, load, save."""

from __future__ import annotations

from collections.abc import Iterator

from hyperctl.httpconn import quote
from hyperctl.transport import Transport, bool_param

TYPE_CHECKING = False  # typing is for annotations only: importing it costs ~5 ms a run
if TYPE_CHECKING:
    from typing import BinaryIO


def _image(name: str) -> str:
    return quote(name, safe="/:@")


class ImageEndpoints(Transport):
    """``/images/...``."""

    def pull(
        self, repository: str, tag: str | None = None, platform: str | None = None
    ) -> Iterator[dict]:
        """``POST /images/create``: progress messages; an ``{"error"}`` line raises."""
        params = {"fromImage": repository, "tag": tag, "platform": platform}
        return self._stream_json("POST", "/images/create", params)

    def images(self, digests: bool = False) -> list[dict]:
        """``GET /images/json``."""
        return self._request("GET", "/images/json", {"digests": bool_param(digests)}) or []

    def inspect_image(self, image: str) -> dict:
        """``GET /images/{name}/json``."""
        return self._request("GET", f"/images/{_image(image)}/json")

    def remove_image(self, image: str, force: bool = False) -> list[dict]:
        """``DELETE /images/{name}``: the Untagged/Deleted items."""
        params = {"force": bool_param(force)}
        return self._request("DELETE", f"/images/{_image(image)}", params) or []

    def tag(self, image: str, repository: str, tag: str | None = None) -> None:
        """``POST /images/{name}/tag``."""
        params = {"repo": repository, "tag": tag}
        self._request("POST", f"/images/{_image(image)}/tag", params)

    def load(self, data: BinaryIO | bytes, quiet: bool = False) -> Iterator[dict]:
        """``POST /images/load``: upload an archive (a file object is streamed); messages."""
        headers = {"Content-Type": "application/x-tar"}
        params = {"quiet": bool_param(quiet)}
        return self._stream_json("POST", "/images/load", params, data, headers)

    def get_images(self, names: list[str]) -> Iterator[bytes]:
        """``GET /images/get``: the ``docker save`` tar of ``names``, as chunks."""
        return self._stream("GET", "/images/get", [("names", n) for n in names])

    def save(self, names: list[str], out: BinaryIO) -> int:
        """Write the ``docker save`` tar of ``names`` to ``out``; return bytes written."""
        n = 0
        for chunk in self.get_images(names):
            out.write(chunk)
            n += len(chunk)
        return n
