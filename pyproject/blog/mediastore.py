"""Where media files live: one small interface, a local folder by default, S3 for many hosts.

Names are keys the media area makes itself, `<sha256>/<variant>.<ext>` (only [0-9a-z/.-]),
never anything from a request; every backend checks them again before using one. A name's
content never changes (it is named by the upload's hash), so files are served with a
year's `immutable` cache lifetime.
"""

from __future__ import annotations

import contextlib
import mimetypes
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Protocol

from pyproject.config import ConfigError
from pyproject.lib.static import StaticFiles

SAFE_NAME = re.compile(r"[0-9a-z][0-9a-z.-]*(/[0-9a-z][0-9a-z.-]*)*")
IMMUTABLE = "public, max-age=31536000, immutable"
_TYPES = {
    ".jpg": "image/jpeg",
    ".png": "image/png",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".avif": "image/avif",
}


def check_name(name: str) -> str:
    """Give `name` back if it is a safe media name, else raise ValueError."""
    if not SAFE_NAME.fullmatch(name) or ".." in name or len(name) > 512:
        raise ValueError(f"not a media object name: {name!r}")
    return name


class MediaStore(Protocol):
    """What the media area needs of a storage backend."""

    def put(self, name: str, data: bytes, content_type: str) -> None: ...  # overwrites

    def get(self, name: str) -> bytes | None: ...

    def exists(self, name: str) -> bool: ...

    def delete(self, name: str) -> None: ...  # a missing object is fine

    def url(self, name: str) -> str: ...  # the public URL


class LocalStore:
    """Media files in a folder (MEDIA_ROOT), served by the static middleware at MEDIA_URL."""

    def __init__(self, root: str | Path, url_prefix: str) -> None:
        self.root = Path(root).resolve()
        self.url_prefix = url_prefix if url_prefix.endswith("/") else url_prefix + "/"

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r}, {self.url_prefix!r})"

    def path(self, name: str) -> Path:
        """Give the file path of a media name (inside the root: names cannot leave it)."""
        return self.root / check_name(name)

    def put(self, name: str, data: bytes, content_type: str) -> None:
        """Store `data` under `name`, replacing what was there; readers see all or nothing."""
        target = self.path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".put-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(temp, 0o644)
            os.replace(temp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)

    def get(self, name: str) -> bytes | None:
        try:
            return self.path(name).read_bytes()
        except FileNotFoundError:
            return None

    def exists(self, name: str) -> bool:
        return self.path(name).is_file()

    def delete(self, name: str) -> None:
        path = self.path(name)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with contextlib.suppress(OSError):  # the folder of one upload, once empty
            path.parent.rmdir()

    def url(self, name: str) -> str:
        return self.url_prefix + check_name(name)


def media_root(config: dict[str, Any]) -> Path:
    """Give the folder local media live in: MEDIA_ROOT, or instance/media."""
    root = str(config.get("MEDIA_ROOT") or "")
    return Path(root) if root else Path(config["INSTANCE_PATH"]) / "media"


def media_store(config: dict[str, Any]) -> MediaStore:
    """Give the store the settings ask for: MEDIA_STORAGE "local" (default) or "s3"."""
    kind = str(config.get("MEDIA_STORAGE") or "local").strip().lower()
    if kind == "local":
        return LocalStore(media_root(config), str(config.get("MEDIA_URL") or "/media/files/"))
    if kind == "s3":
        from pyproject.blog.s3store import S3Store  # boto3 only when it is used

        return S3Store.from_config(config)
    raise ConfigError(f'MEDIA_STORAGE must be "local" or "s3", not {kind!r}')


class MediaFiles(StaticFiles):
    """The static middleware for the local media folder: every file cached for a year.

    Files are looked up on every request (nothing kept in memory), so a deleted file is
    gone at once from every worker.
    """

    def __init__(self, app: Any, directory: str, *, prefix: str, **options: Any) -> None:
        super().__init__(app, directory, prefix=prefix, check_changes=True, **options)

    def _cache_control(self, environ: dict[str, Any], real: str, stat: os.stat_result) -> str:
        return IMMUTABLE

    def _content_type(self, real: str) -> str:
        ext = os.path.splitext(real)[1].lower()
        return _TYPES.get(ext) or mimetypes.guess_type(real)[0] or "application/octet-stream"


def mount(app: Any, config: dict[str, Any], wsgi_app: Any) -> Any:
    """Give `wsgi_app` with the local media folder served in front of it (when local)."""
    store = media_store(config)
    if not isinstance(store, LocalStore) or not store.url_prefix.startswith("/"):
        return wsgi_app
    store.root.mkdir(parents=True, exist_ok=True)
    return MediaFiles(
        wsgi_app,
        str(store.root),
        prefix=store.url_prefix,
        extra_headers=app.security_headers,
        allowed_hosts=config["ALLOWED_HOSTS"],
    )
