"""Registry credentials, stored like Docker's config.json ``auths`` section."""

from __future__ import annotations

import base64
import json
import os
import tempfile
import threading
from pathlib import Path

from hyperd.images.errors import ImageError

DOCKER_HUB_KEYS = ("docker.io", "https://index.docker.io/v1/", "index.docker.io")


def _key(registry: str) -> str:
    return "docker.io" if registry in DOCKER_HUB_KEYS else registry


class CredentialStore:
    """A JSON file ``{"auths": {"<registry>": {"auth": base64("user:password")}}}``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()

    def _read(self) -> dict:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError as e:
            raise ImageError(f"credentials file {self.path} is not valid JSON: {e}") from None
        return data if isinstance(data, dict) else {}

    def _write(self, data: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".config-")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=2)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get(self, registry: str) -> tuple[str, str] | None:
        """The (user, password) stored for ``registry``, or None."""
        auths = self._read().get("auths") or {}
        keys = DOCKER_HUB_KEYS if _key(registry) == "docker.io" else (registry,)
        for k in keys:
            entry = auths.get(k) or auths.get(f"https://{k}") or auths.get(f"http://{k}")
            if entry and entry.get("auth"):
                try:
                    user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    raise ImageError(f"bad stored credentials for {registry}") from None
                return user, password
        return None

    def set(self, registry: str, user: str, password: str) -> None:
        """Store credentials for ``registry`` (not verified; see ImageService.login)."""
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        with self._lock:
            data = self._read()
            data.setdefault("auths", {})[_key(registry)] = {"auth": token}
            self._write(data)

    def remove(self, registry: str) -> bool:
        """Forget ``registry``'s credentials; True if there were any."""
        with self._lock:
            data = self._read()
            auths = data.get("auths") or {}
            keys = DOCKER_HUB_KEYS if _key(registry) == "docker.io" else (registry,)
            found = [k for k in keys if k in auths]
            for k in found:
                del auths[k]
            if found:
                self._write(data)
            return bool(found)
