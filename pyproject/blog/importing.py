"""Import (#16): read a file from another platform (or our own export) into a Bundle, check it,
then write it in one transaction.

The interface readers write against (helper G's WXR and Ghost readers use it too):

- ``Source`` gives a reader safe, read-only access to what was given: a single file, a folder
  or a zip. Readers never touch the filesystem themselves. ``source.names()`` lists the
  entries (POSIX relative paths, sorted; a single file is one entry, its own name),
  ``source.read(name)`` returns bytes (size-capped), ``source.text(name)`` decodes UTF-8 (a
  BOM is dropped) or raises ImportFailed naming the entry, ``source.open(name)`` a binary file
  object for streaming parsers (iterparse), ``source.exists(name)``, ``source.label`` is the
  path given (for messages), ``source.kind`` is "file" | "folder" | "zip";
  ``source.beside("uploads")`` gives a single file's neighbouring folder as a Source (or None).
  Zip slip (``..``, absolute names, drive letters, backslashes), symlinks (zip or folder), more than
  ``limits.max_entries`` entries, a total uncompressed size over ``limits.max_total`` and an
  entry compressed more than ``limits.max_ratio`` times are refused as ImportFailed.
- A reader returns a ``Bundle`` of ImportedPost, ImportedAuthor, ImportedMedia and warnings.
  ``ImportedPost.body_md`` is Markdown as the author would type it; media the post uses are
  referred to by ``ImportedMedia.ref`` (in the body and in ``cover``): the writer stores them
  in the library and rewrites those references to the stored URLs. ``author`` is an
  ``ImportedAuthor.username`` (or "" for the importing user). Dates are timezone-aware UTC.
- Readers raise ``ImportFailed(f"{source.label}: {entry}: line 3: what is wrong")`` for input
  that cannot be read; anything that can be skipped goes into ``Bundle.warnings``.
- ``READERS`` is a list of ``(format name, sniff(source) -> bool, read(source) -> Bundle)``,
  tried in order; a module adds its reader with ``register_reader(name, sniff, read)``
  (``first=True`` to be tried before the generic Markdown reader).
"""

from __future__ import annotations

import io
import os
import stat
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import IO

# --- the interface -------------------------------------------------------------------------


@dataclass
class ImportedAuthor:
    username: str
    email: str = ""
    display_name: str = ""
    role: str = "author"  # "author" | "admin" (our own zip only; others give "author")


@dataclass
class ImportedMedia:
    ref: str  # how posts refer to it (a relative path or the original URL)
    data: bytes | None  # None: not available (the post keeps the URL; the report says so)
    filename: str = ""
    alt: str = ""


@dataclass
class ImportedPost:
    source_id: str  # where it came from, for the report ("wxr item 12", a path)
    title: str
    slug: str
    body_md: str
    status: str = "published"  # "published" | "draft" | "scheduled"
    published_at: datetime | None = None  # for "scheduled": when it goes out
    updated_at: datetime | None = None
    author: str = ""  # ImportedAuthor.username; "" = the importing user
    tags: list[str] = field(default_factory=list)
    summary: str = ""
    kind: str = "post"  # or "page"
    old_slugs: list[str] = field(default_factory=list)
    old_paths: list[str] = field(default_factory=list)  # "/2019/05/slug/", "/?p=123"
    cover: str | None = None  # an ImportedMedia.ref
    revisions: list[str] = field(default_factory=list)  # earlier bodies, oldest first


@dataclass
class Bundle:
    format: str
    posts: list[ImportedPost] = field(default_factory=list)
    authors: list[ImportedAuthor] = field(default_factory=list)
    media: list[ImportedMedia] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    settings: dict = field(default_factory=dict)  # our own zip's site.json settings


class ImportFailed(ValueError):
    """The input cannot be imported; the message names the file and where."""


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 200 * 1024 * 1024  # IMPORT_MAX_BYTES: the file given (or zip) itself
    max_total: int = 1024 * 1024 * 1024  # total uncompressed size of a zip's or folder's entries
    max_ratio: int = 200  # most an entry may be compressed (zip bombs)
    max_entries: int = 100_000

    @classmethod
    def from_config(cls, config) -> Limits:
        most = int(config.get("IMPORT_MAX_BYTES", cls.max_bytes))
        return cls(max_bytes=most, max_total=max(most * 5, most))


# --- safe access to what was given ----------------------------------------------------------


def _safe_name(name: str, label: str) -> str:
    """A zip or folder entry name as a clean relative POSIX path, or ImportFailed (zip slip)."""
    if "\\" in name or "\x00" in name:
        raise ImportFailed(f"{label}: {name!r}: a name with a backslash or NUL is refused")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise ImportFailed(f"{label}: {name!r}: an absolute path is refused")
    parts = PurePosixPath(name).parts
    if any(part == ".." for part in parts):
        raise ImportFailed(f"{label}: {name!r}: a path leaving the archive ('..') is refused")
    return "/".join(part for part in parts if part not in ("", "."))


class Source:
    """Read-only access to a file, a folder or a zip (see the module docstring)."""

    def __init__(self, path: Path, limits: Limits | None = None, label: str | None = None):
        self.path = Path(path)
        self.limits = limits or Limits()
        self.label = label or str(path)
        self._zip: zipfile.ZipFile | None = None
        self._entries: dict[str, object] = {}
        try:
            st = os.lstat(self.path)
        except OSError as exc:
            raise ImportFailed(f"{self.label}: cannot be read ({exc.strerror})") from None
        if stat.S_ISLNK(st.st_mode):
            raise ImportFailed(f"{self.label}: a symbolic link is refused")
        if stat.S_ISDIR(st.st_mode):
            self.kind = "folder"
            self._scan_folder()
        elif stat.S_ISREG(st.st_mode):
            if st.st_size > self.limits.max_bytes:
                raise ImportFailed(
                    f"{self.label}: {st.st_size} bytes, over the {self.limits.max_bytes} "
                    "bytes an import may be (IMPORT_MAX_BYTES)"
                )
            if zipfile.is_zipfile(self.path):
                self.kind = "zip"
                self._scan_zip()
            else:
                self.kind = "file"
                self._entries = {self.path.name: self.path}
        else:
            raise ImportFailed(f"{self.label}: not a file or folder")

    def _scan_folder(self) -> None:
        total = 0
        root = self.path
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            for name in dirnames + filenames:
                full = Path(dirpath) / name
                rel = full.relative_to(root).as_posix()
                if full.is_symlink():
                    raise ImportFailed(f"{self.label}: {rel}: a symbolic link is refused")
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in filenames:
                if name.startswith("."):
                    continue
                full = Path(dirpath) / name
                rel = full.relative_to(root).as_posix()
                total += full.stat().st_size
                if total > self.limits.max_total:
                    raise ImportFailed(
                        f"{self.label}: more than {self.limits.max_total} bytes of files"
                    )
                self._entries[rel] = full
                if len(self._entries) > self.limits.max_entries:
                    raise ImportFailed(f"{self.label}: more than {self.limits.max_entries} files")

    def _scan_zip(self) -> None:
        try:
            self._zip = zipfile.ZipFile(self.path)
            infos = self._zip.infolist()
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise ImportFailed(f"{self.label}: not a readable zip ({exc})") from None
        if len(infos) > self.limits.max_entries:
            raise ImportFailed(f"{self.label}: more than {self.limits.max_entries} entries")
        total = 0
        for info in infos:
            name = _safe_name(info.filename, self.label)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise ImportFailed(f"{self.label}: {info.filename}: a symbolic link is refused")
            if info.is_dir() or not name:
                continue
            total += info.file_size
            if total > self.limits.max_total:
                raise ImportFailed(
                    f"{self.label}: {info.filename}: the entries unpack to more than "
                    f"{self.limits.max_total} bytes (a zip bomb?)"
                )
            if info.file_size > 1024 * 1024 and info.file_size > self.limits.max_ratio * max(
                info.compress_size, 1
            ):
                raise ImportFailed(
                    f"{self.label}: {info.filename}: compressed more than "
                    f"{self.limits.max_ratio} times (a zip bomb?)"
                )
            if name in self._entries:
                raise ImportFailed(f"{self.label}: {info.filename}: appears twice")
            self._entries[name] = info

    # what readers use

    def names(self) -> list[str]:
        return sorted(self._entries)

    def exists(self, name: str) -> bool:
        return name in self._entries

    def open(self, name: str) -> IO[bytes]:
        entry = self._entries.get(name)
        if entry is None:
            raise ImportFailed(f"{self.label}: {name}: no such entry")
        if isinstance(entry, zipfile.ZipInfo):
            assert self._zip is not None
            return _CappedReader(self._zip.open(entry), entry.file_size, f"{self.label}: {name}")
        return open(entry, "rb")  # the caller closes it

    def read(self, name: str) -> bytes:
        with self.open(name) as f:
            return f.read()

    def text(self, name: str) -> str:
        data = self.read(name)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise ImportFailed(
                f"{self.label}: {name}: line {line}: not UTF-8 text (byte {exc.start})"
            ) from None
        return text.removeprefix("\ufeff")

    def beside(self, folder: str) -> Source | None:
        """For a single file: a Source over the folder ``folder`` next to it (WordPress's
        ``uploads/``, Ghost's ``content/images``), or None when there is none."""
        if self.kind != "file":
            return None
        name = _safe_name(folder, self.label)
        path = self.path.parent / name
        if not name or not path.is_dir() or path.is_symlink():
            return None
        return Source(path, self.limits, f"{self.path.parent / name}")

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _CappedReader(io.RawIOBase):
    """A zip entry's stream that stops at the size its header declared (lying headers)."""

    def __init__(self, raw: IO[bytes], most: int, label: str):
        self._raw, self._left, self._label = raw, most, label

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self._raw.read(min(len(buffer), self._left + 1))
        if len(data) > self._left:
            raise ImportFailed(f"{self._label}: larger than its header says (a zip bomb?)")
        self._left -= len(data)
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


# --- readers ----------------------------------------------------------------------------------

Reader = tuple[str, Callable[[Source], bool], Callable[[Source], Bundle]]
READERS: list[Reader] = []


def register_reader(
    name: str,
    sniff: Callable[[Source], bool],
    read: Callable[[Source], Bundle],
    *,
    first: bool = False,
) -> None:
    entry = (name, sniff, read)
    READERS[:] = [r for r in READERS if r[0] != name]
    if first:
        READERS.insert(0, entry)
    else:
        READERS.append(entry)


def read_source(path: Path, *, limits: Limits | None = None, label: str | None = None) -> Bundle:
    """Recognise the format from the content and read it; ImportFailed when nothing fits."""
    _load_readers()
    with Source(path, limits, label) as source:
        for _name, sniff, read in READERS:
            if sniff(source):
                return read(source)
        raise ImportFailed(
            f"{source.label}: not a format this blog imports (our export zip, Markdown files "
            "with front matter, a WordPress WXR file or a Ghost JSON export)"
        )


def _load_readers() -> None:
    """Import the reader modules that register themselves (helper G's WXR and Ghost)."""
    import importlib

    for module in ("pyproject.blog.wordpress", "pyproject.blog.ghost"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def register(app) -> None:
    """Add the import's routes and the old-link redirects (filled in below)."""
