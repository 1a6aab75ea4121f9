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
  referred to by ``ImportedMedia.ref`` (in the body as a link or image destination,
  ``![alt](ref)``, ``[text](ref)``, ``<img src="ref">``, and in ``cover``): the writer stores
  them in the library and rewrites those references to the stored URLs. A media item with
  ``data=None`` keeps its ref (the original URL) and is listed in the report. ``author`` is an
  ``ImportedAuthor.username`` (or "" for the importing user). Dates are timezone-aware UTC.
- Readers raise ``ImportFailed(f"{source.label}: {entry}: line 3: what is wrong")`` for input
  that cannot be read; anything that can be skipped goes into ``Bundle.warnings``.
- ``READERS`` is a list of ``(format name, sniff(source) -> bool, read(source) -> Bundle)``,
  tried in order; a module adds its reader with ``register_reader(name, sniff, read)``
  (``first=True`` to be tried before the generic Markdown reader).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import posixpath
import re
import stat
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any
from urllib.parse import unquote, urlsplit

import yaml

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
    decorative: bool = False  # our own zip only
    owner: str = ""  # an ImportedAuthor.username; "" = the importing user


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
    created_at: datetime | None = None
    # Per-post options: {"comments": "auto" | "open" | "closed"}; others are ignored.
    options: dict = field(default_factory=dict)
    # Our own zip only: saved revisions, oldest first, each a dict with number, kind, title,
    # body_md, summary, tags (text), author (username), created_at, words_changed.
    revisions: list[dict] = field(default_factory=list)


@dataclass
class Bundle:
    format: str
    posts: list[ImportedPost] = field(default_factory=list)
    authors: list[ImportedAuthor] = field(default_factory=list)
    media: list[ImportedMedia] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    settings: dict = field(default_factory=dict)  # our own zip's site.json settings
    label: str = ""  # the file given, for messages (read_source sets it)


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

    def first_entry(
        self, suffix: str, looks_right: Callable[[bytes], bool], head_bytes: int
    ) -> str | None:
        """Give the first entry whose opening bytes `looks_right` accepts (of a folder or
        zip, among the first 50 named *`suffix`), or None: how readers recognise a file."""
        names = self.names()
        candidates = names if self.kind == "file" else [n for n in names if n.endswith(suffix)]
        for name in candidates[:50]:
            with self.open(name) as handle:
                if looks_right(handle.read(head_bytes)):
                    return name
        return None

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
                bundle = read(source)
                bundle.label = bundle.label or source.label
                return bundle
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


# --- front matter and dates -------------------------------------------------------------------

_YAML_END = re.compile(r"(?m)^(?:---|\.\.\.)[ \t]*\r?$")
_TOML_END = re.compile(r"(?m)^\+\+\+[ \t]*\r?$")


def split_front_matter(text: str, where: str) -> tuple[dict[str, Any], str]:
    """Give a Markdown file's front matter (YAML ``---`` or TOML ``+++``) and its body.

    YAML is read with ``yaml.safe_load`` only (a tag that would build an object is an
    error); a file without front matter gives ``{}`` and the whole text.
    """
    first = text.split("\n", 1)[0].rstrip("\r").rstrip()
    if first not in ("---", "+++"):
        return {}, text
    rest = text.split("\n", 1)[1] if "\n" in text else ""
    end = (_YAML_END if first == "---" else _TOML_END).search(rest)
    if end is None:
        raise ImportFailed(f"{where}: line 1: the front matter ({first}) is never closed")
    head, body = rest[: end.start()], rest[end.end() :].removeprefix("\r").removeprefix("\n")
    if first == "---":
        try:
            data = yaml.safe_load(head)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f"line {mark.line + 2}: " if mark is not None else ""
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ImportFailed(f"{where}: {line}front matter: {problem}") from None
        except ValueError as exc:  # a date YAML recognises but no calendar has
            raise ImportFailed(f"{where}: front matter: {exc}") from None
    else:
        try:
            data = tomllib.loads(head)
        except tomllib.TOMLDecodeError as exc:
            raise ImportFailed(f"{where}: front matter (TOML): {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ImportFailed(f"{where}: line 2: the front matter is not a set of fields")
    return data, body


def parse_date(value: Any, where: str) -> datetime | None:
    """Give an aware UTC datetime from a front matter value (naive times are taken as UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, date):
        result = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        text = re.sub(r"\s*Z$", "+00:00", text)
        text = re.sub(r"\s+([+-]\d{2}):?(\d{2})$", r"+\1:\2", text).replace("++", "+")
        text = text.replace("+-", "-")
        try:
            result = datetime.fromisoformat(text)
        except ValueError:
            raise ImportFailed(f"{where}: {value!r} is not a date") from None
    else:
        raise ImportFailed(f"{where}: {value!r} is not a date")
    if result.tzinfo is None:
        result = result.replace(tzinfo=UTC)
    if not 1900 <= result.year <= 9000:
        raise ImportFailed(f"{where}: {value!r} is not a plausible date")
    return result.astimezone(UTC)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | bool):
        return str(value)
    raise TypeError(value)


def _field(data: dict[str, Any], name: str, where: str) -> str:
    try:
        return _text(data.get(name)).strip()
    except TypeError:
        raise ImportFailed(f"{where}: front matter: {name} must be text") from None


def _names(value: Any, where: str, name: str) -> list[str]:
    """A list of names from a list, or from a comma- or space-separated string."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        parts = value.split(",") if "," in value else value.split()
        return [p.strip() for p in parts if p.strip()]
    if isinstance(value, list):
        try:
            return [_text(v).strip() for v in value if _text(v).strip()]
        except TypeError:
            raise ImportFailed(f"{where}: front matter: {name} must be a list of text") from None
    raise ImportFailed(f"{where}: front matter: {name} must be a list")


# --- media references in Markdown -------------------------------------------------------------

# A link or image destination in Markdown, or an src/href in HTML.
_DESTINATION = re.compile(r"""(\]\(\s*<?)([^)\s>]+)|((?:src|href)\s*=\s*["'])([^"']+)""")


def replace_destinations(body: str, change: Callable[[str], str | None]) -> str:
    """Give the body with each link/image destination replaced by change(dest) (None: kept)."""

    def replace(match: re.Match[str]) -> str:
        lead, dest = (match.group(1), match.group(2)) if match.group(1) else match.group(3, 4)
        new = change(dest)
        return match.group(0) if new is None else lead + new

    return _DESTINATION.sub(replace, body)


def _resolve(source: Source, folder: str, dest: str, roots: tuple[str, ...]) -> str | None:
    """Give the entry a relative (or site-absolute) image path in a file points at, if any."""
    if re.match(r"^[a-z][a-z0-9+.-]*:|^//|^#", dest, re.I):
        return None
    path = unquote(dest.split("#", 1)[0].split("?", 1)[0])
    if not path:
        return None
    candidates = []
    if path.startswith("/"):
        candidates += [posixpath.normpath(posixpath.join(root, path.lstrip("/"))) for root in roots]
    else:
        candidates.append(posixpath.normpath(posixpath.join(folder, path)))
    for candidate in candidates:
        candidate = candidate.lstrip("./") if candidate.startswith("./") else candidate
        if not candidate.startswith("..") and source.exists(candidate):
            return candidate
    return None


IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif")


def _collect_media(
    source: Source,
    folder: str,
    body: str,
    media: dict[str, ImportedMedia],
    roots: tuple[str, ...] = ("",),
) -> str:
    """Rewrite the body's relative image paths to their entry names, adding those to media."""

    def change(dest: str) -> str | None:
        entry = _resolve(source, folder, dest, roots)
        if entry is None or not entry.lower().endswith(IMAGE_EXTS):
            return None
        if entry not in media:
            media[entry] = ImportedMedia(
                ref=entry, data=source.read(entry), filename=posixpath.basename(entry)
            )
        return entry

    return replace_destinations(body, change)


# --- our own zip ------------------------------------------------------------------------------


def _sniff_own(source: Source) -> bool:
    if not source.exists("site.json") or source.kind == "file":
        return False
    try:
        site = json.loads(source.read("site.json"))
    except ValueError:
        return False
    return isinstance(site, dict) and site.get("format") == "pyproject-export"


def _read_own(source: Source) -> Bundle:
    bundle = Bundle(format="pyproject")
    where = f"{source.label}: site.json"
    site = json.loads(source.text("site.json"))
    if site.get("version") != 1:
        raise ImportFailed(f"{where}: version {site.get('version')!r}, this blog reads 1")
    for i, author in enumerate(site.get("authors") or []):
        if not isinstance(author, dict):
            raise ImportFailed(f"{where}: authors[{i}] is not an object")
        bundle.authors.append(
            ImportedAuthor(
                username=_field(author, "username", where),
                email=_field(author, "email", where),
                display_name=_field(author, "name", where),
                role="admin" if author.get("role") == "admin" else "author",
            )
        )
    settings = site.get("settings")
    bundle.settings = settings if isinstance(settings, dict) else {}
    media: dict[str, ImportedMedia] = {}
    if source.exists("media.json"):
        where = f"{source.label}: media.json"
        try:
            listed = json.loads(source.text("media.json"))
        except ValueError as exc:
            raise ImportFailed(f"{where}: {exc}") from None
        for i, item in enumerate(listed if isinstance(listed, list) else []):
            file = _field(item, "file", f"{where}: [{i}]") if isinstance(item, dict) else ""
            if not file or not source.exists(file):
                bundle.warnings.append(f"{where}: [{i}]: {file or 'no file'} is not in the zip")
                continue
            media[file] = ImportedMedia(
                ref=file,
                data=source.read(file),
                filename=_field(item, "filename", where),
                alt=_field(item, "alt", where),
                decorative=bool(item.get("decorative")),
                owner=_field(item, "owner", where),
            )
    revisions: dict[str, list[tuple[int, str]]] = {}
    for name in source.names():
        match = re.fullmatch(r"revisions/([^/]+)/(\d+)\.md", name)
        if match:
            revisions.setdefault(match.group(1), []).append((int(match.group(2)), name))
    for name in source.names():
        if not re.fullmatch(r"(posts|pages)/[^/]+\.md", name):
            continue
        where = f"{source.label}: {name}"
        front, body = split_front_matter(source.text(name), where)
        post = _post_from_front(front, body, where, name, media, source)
        post.kind = "page" if name.startswith("pages/") else "post"
        for number, entry in sorted(revisions.get(post.slug, [])):
            rwhere = f"{source.label}: {entry}"
            rfront, rbody = split_front_matter(source.text(entry), rwhere)
            rbody = replace_destinations(
                rbody, lambda d: d[6:] if d.startswith("../../media/") else None
            )
            post.revisions.append(
                {
                    "number": number,
                    "kind": _field(rfront, "kind", rwhere) or "save",
                    "title": _field(rfront, "title", rwhere),
                    "body_md": rbody,
                    "summary": _field(rfront, "summary", rwhere),
                    "tags": _field(rfront, "tags", rwhere),
                    "author": _field(rfront, "author", rwhere),
                    "created_at": parse_date(rfront.get("created_at"), f"{rwhere}: created_at"),
                    "words_changed": int(rfront.get("words_changed") or 0),
                }
            )
        bundle.posts.append(post)
    bundle.media = list(media.values())
    return bundle


def _post_from_front(
    front: dict[str, Any],
    body: str,
    where: str,
    name: str,
    media: dict[str, ImportedMedia],
    source: Source,
) -> ImportedPost:
    """An ImportedPost from our own export's front matter (and the Markdown readers' too)."""
    folder = posixpath.dirname(name)
    body = _collect_media(source, folder, body, media)
    status = _field(front, "status", where) or "published"
    if status not in ("published", "draft", "scheduled"):
        raise ImportFailed(f"{where}: front matter: status {status!r} is not one we know")
    published = parse_date(front.get("published_at"), f"{where}: published_at")
    publish_at = parse_date(front.get("publish_at"), f"{where}: publish_at")
    cover = _field(front, "cover", where) or None
    if cover is not None and not source.exists(cover):
        entry = _resolve(source, folder, cover, ("",))
        cover = entry if entry is not None else cover
    if cover is not None and cover not in media and source.exists(cover):
        media[cover] = ImportedMedia(
            ref=cover, data=source.read(cover), filename=posixpath.basename(cover)
        )
    return ImportedPost(
        source_id=name,
        title=_field(front, "title", where),
        slug=_field(front, "slug", where) or posixpath.basename(name).rsplit(".", 1)[0],
        body_md=body,
        status=status,
        published_at=publish_at if status == "scheduled" and publish_at else published,
        updated_at=parse_date(front.get("updated_at"), f"{where}: updated_at"),
        created_at=parse_date(front.get("created_at"), f"{where}: created_at"),
        author=_field(front, "author", where),
        tags=_names(front.get("tags"), where, "tags"),
        summary=_field(front, "summary", where),
        old_slugs=_names(front.get("earlier_slugs"), where, "earlier_slugs"),
        old_paths=_names(front.get("old_paths"), where, "old_paths"),
        cover=cover,
        options={"comments": _field(front, "comments", where)} if front.get("comments") else {},
    )


# --- Markdown with front matter: plain, Jekyll, Hugo ------------------------------------------

_MARKDOWN_EXTS = (".md", ".markdown")
_JEKYLL_NAME = re.compile(r"(?:^|.*/)_(posts|drafts)/(?:.*/)?(?:(\d{4}-\d{2}-\d{2})-)?([^/]+)$")


def _markdown_names(source: Source) -> list[str]:
    names = []
    for name in source.names():
        base = posixpath.basename(name).lower()
        if not base.endswith(_MARKDOWN_EXTS) or base.startswith("_index.") or base == "readme.md":
            continue
        names.append(name)
    return names


def _sniff_markdown(source: Source) -> bool:
    for name in _markdown_names(source)[:50]:
        with source.open(name) as f:
            head = f.read(4)
        if head.lstrip(b"\xef\xbb\xbf")[:3] in (b"---", b"+++") or "_posts/" in name:
            return True
    return False


def _read_markdown(source: Source) -> Bundle:
    bundle = Bundle(format="markdown")
    media: dict[str, ImportedMedia] = {}
    names = _markdown_names(source)
    hugo = any(n.startswith("content/") for n in names)
    roots = ("static", "") if hugo else ("",)
    for name in names:
        where = f"{source.label}: {name}"
        front, body = split_front_matter(source.text(name), where)
        jekyll = _JEKYLL_NAME.match(name)
        base = posixpath.basename(name).rsplit(".", 1)[0]
        if base == "index" and "/" in name:  # a Hugo page bundle: content/posts/slug/index.md
            base = posixpath.basename(posixpath.dirname(name))
        if jekyll:
            base = jekyll.group(3).rsplit(".", 1)[0]
        folder = posixpath.dirname(name)
        body = _collect_media(source, folder, body, media, roots)
        slug = _field(front, "slug", where) or base
        title = _field(front, "title", where)
        if not title:
            heading = re.search(r"(?m)^#\s+(.+)$", body)
            title = heading.group(1).strip() if heading else slug.replace("-", " ").capitalize()
            bundle.warnings.append(f"{where}: no title; using {title!r}")
        when = front.get("date") or front.get("published_at") or front.get("publishDate")
        published = parse_date(when, f"{where}: date")
        if published is None and jekyll and jekyll.group(2):
            published = parse_date(jekyll.group(2), f"{where}: the file name's date")
        updated = parse_date(
            front.get("lastmod") or front.get("updated") or front.get("updated_at"),
            f"{where}: lastmod",
        )
        status = _field(front, "status", where)
        draft = front.get("draft") is True or front.get("published") is False
        draft = draft or bool(jekyll and jekyll.group(1) == "drafts")
        if status not in ("published", "draft", "scheduled"):
            status = "draft" if draft else "published"
        if status == "published" and published is not None and published > _now():
            status = "scheduled"
        tags = _names(front.get("tags"), where, "tags")
        tags += [c for c in _names(front.get("categories"), where, "categories") if c not in tags]
        old_paths = _names(front.get("aliases"), where, "aliases")
        old_paths += _names(front.get("redirect_from"), where, "redirect_from")
        permalink = _field(front, "permalink", where) or _field(front, "url", where)
        if permalink:
            old_paths.append(permalink)
        cover_value = (
            _field(front, "cover", where)
            or _field(front, "image", where)
            or _field(front, "featured_image", where)
        )
        cover = None
        if cover_value:
            cover = _resolve(source, folder, cover_value, roots)
            if cover is not None and cover not in media:
                media[cover] = ImportedMedia(
                    ref=cover, data=source.read(cover), filename=posixpath.basename(cover)
                )
            if cover is None:
                bundle.warnings.append(f"{where}: cover {cover_value!r} is not in the files given")
        bundle.posts.append(
            ImportedPost(
                source_id=name,
                title=title,
                slug=slug,
                body_md=body,
                status=status,
                published_at=published,
                updated_at=updated,
                author=_field(front, "author", where),
                tags=tags,
                summary=_field(front, "summary", where)
                or _field(front, "description", where)
                or _field(front, "excerpt", where),
                kind="page" if _field(front, "layout", where) == "page" else "post",
                old_slugs=_names(front.get("earlier_slugs"), where, "earlier_slugs"),
                old_paths=old_paths,
                cover=cover,
            )
        )
    bundle.media = list(media.values())
    return bundle


def _now() -> datetime:
    from pyproject.blog.models import utcnow

    return utcnow()


register_reader("pyproject", _sniff_own, _read_own)
register_reader("markdown", _sniff_markdown, _read_markdown)


# --- checking and writing ---------------------------------------------------------------------

CONFLICTS = ("skip", "update", "rename")


@dataclass
class Options:
    as_user: str | None = None  # every post to this username
    on_conflict: str = "skip"  # a post with the slug exists: skip, update it, or rename ours
    importer: str | None = None  # who runs it: the author of posts that name nobody


@dataclass
class Item:
    """One post's line in the report."""

    source: str
    title: str
    slug: str
    action: str  # created, updated, skipped
    reason: str = ""


@dataclass
class Report:
    format: str = ""
    dry_run: bool = True
    items: list[Item] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    authors_created: list[str] = field(default_factory=list)
    media_stored: int = 0
    media_reused: int = 0

    def count(self, action: str) -> int:
        return sum(1 for item in self.items if item.action == action)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Report:
        data = json.loads(text or "{}")
        items = [Item(**item) for item in data.pop("items", [])]
        return cls(items=items, **data)

    def summary(self) -> str:
        verb = "would be" if self.dry_run else "were"
        accounts = len(self.authors_created)
        return (
            f"{self.format or 'import'}: {_many(self.count('created'), 'post')} {verb} created, "
            f"{self.count('updated')} updated, {self.count('skipped')} skipped; "
            f"{_many(accounts, 'account')} {verb} created (inactive), "
            f"{_many(self.media_stored, 'picture')} stored, {self.media_reused} already here; "
            f"{_many(len(self.warnings), 'warning')}."
        )

    def lines(self) -> list[str]:
        out = [self.summary()]
        for item in self.items:
            reason = f" ({item.reason})" if item.reason else ""
            out.append(f"  {item.action:8} {item.slug or '-'}  [{item.source}]{reason}")
        for username in self.authors_created:
            out.append(f"  account  {username} (cannot sign in until an admin activates it)")
        out += [f"  warning  {warning}" for warning in self.warnings]
        return out


def _many(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


@dataclass
class _Media:
    ref: str
    sha: str
    url: str
    cleaned: Any  # images.Cleaned, or None when the picture is here already
    item: ImportedMedia
    owner: str = ""  # our username of whose library it goes into


@dataclass
class _Post:
    item: Item
    post: ImportedPost
    slug: str
    body: str
    rendered: Any  # filled in last, when every post's render is done
    tags: list[tuple[str, str]]
    author: str  # username
    existing_id: int | None
    old_slugs: list[str]
    old_paths: list[str]
    cover_sha: str | None
    summary: str
    title: str


@dataclass
class Plan:
    report: Report
    media: list[_Media]
    posts: list[_Post]
    authors: list[ImportedAuthor]  # to create (inactive)


def _clean_slug(raw: str, title: str) -> str:
    from pyproject.blog.slugs import is_valid_slug, slugify

    raw = raw.strip().lower()
    if is_valid_slug(raw):
        return raw
    return slugify(raw) or slugify(title) or "post"


def _old_path(value: str) -> str | None:
    """Give a path to redirect from ("/2019/05/slug/", "/?p=12"), or None if it cannot be one."""
    parts = urlsplit(value.strip())
    path = parts.path or "/"
    if not path.startswith("/") or any(c in value for c in "\r\n\x00"):
        return None
    path = path + (f"?{parts.query}" if parts.query else "")
    return path if 1 < len(path) <= 500 else None


def plan_import(
    app: Any, bundle: Bundle, options: Options, progress: Callable[[], None] | None = None
) -> Plan:
    """Check everything and work out what the import will do; nothing is written.

    Raises ImportFailed for a file that cannot be imported at all (duplicate slugs, an
    unknown --as user); posts that cannot be imported are skipped, with the reason.
    """
    from sqlalchemy import select

    from pyproject.blog import images
    from pyproject.blog.auth import EMAIL_RE, USERNAME_RE
    from pyproject.blog.db import get_database
    from pyproject.blog.editor import BODY_MAX, RESERVED_SLUGS, SUMMARY_MAX, TAG_MAX, TAGS_MAX
    from pyproject.blog.markup import RenderRefused
    from pyproject.blog.media import get_store
    from pyproject.blog.models import Media, OldSlug, Post, User
    from pyproject.blog.models import Redirect as RedirectRow
    from pyproject.blog.posts import tag_slug
    from pyproject.blog.rendering import RenderTimeout
    from pyproject.blog.slugs import is_valid_slug

    if options.on_conflict not in CONFLICTS:
        raise ImportFailed(f"--on-conflict must be one of {', '.join(CONFLICTS)}")
    report = Report(format=bundle.format, warnings=list(bundle.warnings))
    store = get_store(app)
    config = app.config
    seen: dict[str, str] = {}
    for post in bundle.posts:
        key = post.slug.strip().lower() or post.title.strip().lower()
        if key and key in seen:
            raise ImportFailed(
                f"{bundle.label}: {post.source_id}: the slug {post.slug!r} is also used by "
                f"{seen[key]} in the same file"
            )
        seen[key] = post.source_id

    with get_database(app).read() as db:
        # authors
        users = {u.username: u for u in db.scalars(select(User))}
        by_email = {u.email.lower(): u for u in users.values()}
        names: dict[str, str] = {}  # a username in the file -> ours
        to_create: list[ImportedAuthor] = []
        if options.as_user:
            if options.as_user not in users:
                raise ImportFailed(f"--as {options.as_user}: no such account")
        else:
            taken = set(users)
            emails = set(by_email)
            for author in bundle.authors:
                username = author.username.strip().lower()
                found = users.get(username) or by_email.get(author.email.strip().lower())
                if found is not None:
                    names[author.username] = found.username
                    continue
                candidate = username if USERNAME_RE.match(username) else ""
                if not candidate:
                    from pyproject.blog.slugs import slugify

                    candidate = (slugify(username, 36) or "imported")[:36]
                    candidate = candidate if len(candidate) >= 3 else f"{candidate}-user"
                base, n = candidate, 2
                while candidate in taken:
                    candidate, n = f"{base[:36]}-{n}", n + 1
                email = author.email.strip().lower()
                if not EMAIL_RE.match(email) or email in emails:
                    email = f"{candidate}@imported.invalid"
                taken.add(candidate)
                emails.add(email)
                names[author.username] = candidate
                to_create.append(
                    ImportedAuthor(candidate, email, author.display_name[:80], author.role)
                )
                report.authors_created.append(candidate)
        default_author = options.as_user or options.importer
        if default_author is None:
            default_author = db.scalar(
                select(User.username).where(User.role == "admin").order_by(User.id).limit(1)
            )
        if default_author is None and any(not p.author for p in bundle.posts):
            raise ImportFailed("there is no account to give the posts to; use --as USERNAME")

        # media
        media_by_ref: dict[str, _Media] = {}
        new_shas: set[str] = set()
        for item in bundle.media:
            if item.data is None:
                report.warnings.append(f"{item.ref}: not in the files given; kept as its URL")
                continue
            sha = hashlib.sha256(item.data).hexdigest()
            existing = db.scalar(select(Media).where(Media.sha256 == sha))
            if existing is not None:
                media_by_ref[item.ref] = _Media(
                    item.ref, sha, store.url(existing.original_name), None, item
                )
                report.media_reused += 1
                continue
            try:
                cleaned = images.clean(
                    item.data,
                    item.filename or posixpath.basename(item.ref),
                    max_bytes=config["MEDIA_MAX_BYTES"],
                    max_pixels=config["MEDIA_MAX_PIXELS"],
                )
            except images.ImageRefused as problem:
                report.warnings.append(f"{item.ref}: {problem.message} Not imported.")
                continue
            url = store.url(f"{sha}/original.{cleaned.ext}")
            owner = options.as_user or names.get(item.owner) or item.owner or default_author
            media_by_ref[item.ref] = _Media(item.ref, sha, url, cleaned, item, owner or "")
            if sha not in new_shas:
                new_shas.add(sha)
                report.media_stored += 1

        def to_url(dest: str) -> str | None:
            found = media_by_ref.get(dest) or media_by_ref.get(unquote(dest))
            return found.url if found is not None else None

        # posts: what is here already, looked up once for every slug and path the file names
        wanted = {_clean_slug(p.slug, " ".join(p.title.split())) for p in bundle.posts}
        wanted |= {old.strip().lower() for p in bundle.posts for old in p.old_slugs}
        paths = {path for p in bundle.posts for v in p.old_paths if (path := _old_path(v))}
        posts_here = {
            row.slug: row
            for row in _rows_in(
                db,
                select(Post.slug, Post.id, Post.title, Post.body_md, Post.deleted_at),
                Post.slug,
                wanted,
            )
        }
        old_here = dict(_rows_in(db, select(OldSlug.slug, OldSlug.post_id), OldSlug.slug, wanted))
        paths_here = dict(
            _rows_in(db, select(RedirectRow.path, RedirectRow.post_id), RedirectRow.path, paths)
        )
        planned: list[_Post] = []
        claimed: set[str] = set()
        claimed_paths: set[str] = set()
        pages_warned = False
        for post in bundle.posts:
            title = " ".join(post.title.split())
            slug = _clean_slug(post.slug, title)
            item = Item(post.source_id, title, slug, "created")
            report.items.append(item)
            if slug != post.slug.strip().lower():
                report.warnings.append(f"{post.source_id}: slug {post.slug!r} became {slug!r}")
            if not title:
                title = slug.replace("-", " ").capitalize()
                report.warnings.append(f"{post.source_id}: no title; using {title!r}")
            if len(title) > 200:
                title = title[:199] + "…"
                report.warnings.append(f"{post.source_id}: the title was shortened to 200")
            item.title = title
            if post.kind == "page" and not pages_warned:
                pages_warned = True
                report.warnings.append("this blog has no pages: pages are imported as posts")
            if post.status not in ("published", "draft", "scheduled"):
                item.action, item.reason = "skipped", f"status {post.status!r} is not one we know"
                continue
            if len(post.body_md) > BODY_MAX:
                item.action, item.reason = "skipped", f"the body is over {BODY_MAX} characters"
                continue
            author = options.as_user or names.get(post.author) or post.author or default_author
            if author not in users and author not in {a.username for a in to_create}:
                report.warnings.append(
                    f"{post.source_id}: author {post.author!r} is not in the file; "
                    f"given to {default_author}"
                )
                author = default_author
            body = replace_destinations(post.body_md, to_url)
            if body == post.body_md:
                body = post.body_md  # one copy of the text, not two
            tags: list[tuple[str, str]] = []
            for name in post.tags:
                name = " ".join(name.split())[:TAG_MAX]
                slug_of_tag = tag_slug(name)
                if slug_of_tag and slug_of_tag not in {t[1] for t in tags}:
                    tags.append((name, slug_of_tag))
            if len(tags) > TAGS_MAX:
                report.warnings.append(
                    f"{post.source_id}: {len(tags)} tags; the first {TAGS_MAX} are kept"
                )
                tags = tags[:TAGS_MAX]
            summary = " ".join(post.summary.split())
            if len(summary) > SUMMARY_MAX:
                summary = summary[: SUMMARY_MAX - 1] + "…"
            # the slug: here already?
            existing = posts_here.get(slug)
            old_owner = old_here.get(slug)
            existing_id = None
            if existing is not None and _same(existing, title, body, post):
                item.action, item.reason = "skipped", "already here (imported before)"
                continue
            if slug in RESERVED_SLUGS or slug in claimed:
                slug = _free_slug(db, slug, claimed)
                report.warnings.append(f"{post.source_id}: slug taken; renamed to {slug!r}")
            elif existing is not None or old_owner is not None:
                if options.on_conflict == "skip":
                    item.action, item.reason = "skipped", "a post with this slug exists"
                    continue
                if options.on_conflict == "update" and existing is not None:
                    if existing.deleted_at is not None:
                        item.action = "skipped"
                        item.reason = "a post with this slug is in the trash"
                        continue
                    item.action, existing_id = "updated", existing.id
                else:
                    new = _free_slug(db, slug, claimed)
                    item.reason = f"the slug {slug!r} is taken; renamed to {new!r}"
                    slug = new
            item.slug = slug
            claimed.add(slug)
            old_slugs = []
            for old in post.old_slugs:
                old = old.strip().lower()
                if old == slug or old in claimed or not is_valid_slug(old):
                    continue
                owner = old_here.get(old)
                used = old in posts_here
                if used or (owner is not None and owner != existing_id):
                    report.warnings.append(f"{post.source_id}: earlier slug {old!r} is taken")
                    continue
                claimed.add(old)
                old_slugs.append(old)
            old_paths = []
            for value in post.old_paths:
                path = _old_path(value)
                if path is None or path in claimed_paths or path == f"/posts/{slug}":
                    if path is None:
                        report.warnings.append(f"{post.source_id}: old link {value!r} ignored")
                    continue
                owner = paths_here.get(path)
                if owner is not None and owner != existing_id:
                    report.warnings.append(f"{post.source_id}: old link {path} leads elsewhere")
                    continue
                claimed_paths.add(path)
                old_paths.append(path)
            cover_sha = None
            if post.cover:
                found = media_by_ref.get(post.cover)
                if found is None:
                    report.warnings.append(f"{post.source_id}: cover {post.cover} not imported")
                else:
                    cover_sha = found.sha
            for revision in post.revisions:
                revision["body_md"] = replace_destinations(revision["body_md"], to_url)
            planned.append(
                _Post(
                    item=item,
                    post=post,
                    slug=slug,
                    body=body,
                    rendered=None,
                    tags=tags,
                    author=author,
                    existing_id=existing_id,
                    old_slugs=old_slugs,
                    old_paths=old_paths,
                    cover_sha=cover_sha,
                    summary=summary,
                    title=title,
                )
            )
    # rendering, the slow part, last and in parallel: only what will be written
    done = len(bundle.posts) - len(planned)
    for _ in range(done):
        if progress is not None:
            progress()
    kept = []
    outcomes = _render_all(app, [p.body for p in planned], progress)
    for entry, outcome in zip(planned, outcomes, strict=True):
        if isinstance(outcome, RenderRefused | RenderTimeout):
            entry.item.action, entry.item.reason = "skipped", f"cannot be rendered: {outcome}"
            continue
        entry.rendered = outcome
        kept.append(entry)
    return Plan(report, list(media_by_ref.values()), kept, to_create)


def _render_all(
    app: Any, bodies: list[str], progress: Callable[[], None] | None = None
) -> list[Any]:
    """Render bodies as the editor would, in as many helper processes as there are cores
    (at most 4); give each its Rendered, or the RenderRefused/RenderTimeout it raised."""
    from concurrent.futures import ThreadPoolExecutor

    from pyproject.blog.markup import RenderRefused
    from pyproject.blog.rendering import Renderer, RenderTimeout

    main = app.extensions["renderer"]
    limits = app.extensions["render_limits"]
    lookup = app.extensions.get("image_lookup")
    count = max(1, min(4, os.cpu_count() or 1, len(bodies) // 20))
    renderers = [main] + [Renderer(main.time_limit) for _ in range(count - 1)]
    results: list[Any] = [None] * len(bodies)

    def work(index: int) -> None:
        renderer = renderers[index % count]
        body = bodies[index]
        try:
            images = lookup(app, body) if lookup is not None else None
            results[index] = renderer.render(body, limits, images)
        except (RenderRefused, RenderTimeout) as problem:
            results[index] = problem

    try:
        if count == 1:
            for index in range(len(bodies)):
                work(index)
                if progress is not None:
                    progress()
        else:
            # one thread per renderer, each taking every count-th body in turn
            def lane(first: int) -> None:
                for index in range(first, len(bodies), count):
                    work(index)
                    if progress is not None:
                        with lock:
                            progress()

            import threading

            lock = threading.Lock()
            with ThreadPoolExecutor(max_workers=count) as pool:
                for future in [pool.submit(lane, first) for first in range(count)]:
                    future.result()
    finally:
        for renderer in renderers[1:]:
            renderer.close()
    return results


def _rows_in(db: Any, query: Any, column: Any, values: set[str]) -> list[Any]:
    """Give the rows of `query` whose `column` is one of `values` (asked 500 at a time)."""
    ordered = sorted(values)
    rows: list[Any] = []
    for first in range(0, len(ordered), 500):
        rows += db.execute(query.where(column.in_(ordered[first : first + 500]))).all()
    return rows


def _same(existing: Any, title: str, body: str, post: ImportedPost) -> bool:
    """Give whether a post here already holds what the file has (imported before)."""
    return existing.title == title and existing.body_md == body


def _free_slug(db: Any, slug: str, claimed: set[str]) -> str:
    from pyproject.blog.editor import unique_slug

    base, candidate, n = slug, unique_slug(db, slug), 2
    while candidate in claimed:
        candidate = unique_slug(db, f"{base}-{n}")
        n += 1
    return candidate


def apply_import(app: Any, plan: Plan) -> Report:
    """Write a plan in one transaction; the pictures it stored are taken back if it fails."""
    import secrets

    from sqlalchemy import select

    from pyproject.blog import jobs
    from pyproject.blog.auth import hash_password
    from pyproject.blog.db import get_database, lock_post_writes
    from pyproject.blog.media import get_store, make_variants
    from pyproject.blog.models import Media, User, utcnow

    report = plan.report
    report.dry_run = False
    store = get_store(app)
    put: list[str] = []
    try:
        for media in plan.media:
            if media.cleaned is not None:
                name = f"{media.sha}/original.{media.cleaned.ext}"
                if name not in put:
                    store.put(name, media.cleaned.data, media.cleaned.content_type)
                    put.append(name)
        with get_database(app).write() as db:
            lock_post_writes(db)
            now = utcnow()
            unusable = hash_password(secrets.token_urlsafe(32))
            for author in plan.authors:
                db.add(
                    User(
                        username=author.username,
                        email=author.email,
                        display_name=author.display_name,
                        password_hash=unusable,
                        role=author.role,
                        is_active=False,
                    )
                )
            db.flush()
            users = {u.username: u for u in db.scalars(select(User))}
            media_ids: dict[str, int] = {}
            for media in plan.media:
                if media.sha in media_ids:
                    continue
                row = db.scalar(select(Media).where(Media.sha256 == media.sha))
                if row is None:
                    cleaned, item = media.cleaned, media.item
                    owner = (
                        users.get(media.owner)
                        or users.get(_first_author(plan))
                        or next(u for u in users.values() if u.is_admin)
                    )
                    row = Media(
                        sha256=media.sha,
                        owner_id=owner.id,
                        filename=(item.filename or posixpath.basename(item.ref))[:120],
                        source_format=cleaned.source_format,
                        ext=cleaned.ext,
                        content_type=cleaned.content_type,
                        width=cleaned.width,
                        height=cleaned.height,
                        bytes=len(cleaned.data),
                        animated=cleaned.animated,
                        alt=item.alt[:500],
                        decorative=item.decorative and not item.alt,
                        variants="[]",
                    )
                    db.add(row)
                    db.flush()
                    jobs.enqueue(db, make_variants, row.id)
                media_ids[media.sha] = row.id
            _check_slugs_still_free(db, plan)
            tags = _tags_for(db, plan)
            for first in range(0, len(plan.posts), _WRITE_BATCH):
                made = []
                for planned in plan.posts[first : first + _WRITE_BATCH]:
                    made.append(_write_post(db, planned, users, media_ids, tags, now))
                db.flush()  # a batch of posts in few statements; their ids for what follows
                for planned, post, user, previous in made:
                    _write_history(db, planned, post, user, previous, users, now)
                db.flush()
                for planned, post, _user, _previous in made:  # written: memory stays flat
                    db.expunge(post)
                    planned.rendered, planned.body = None, ""
                    planned.post.body_md, planned.post.revisions = "", []
    except BaseException:
        for name in put:
            with contextlib.suppress(Exception):
                store.delete(name)
        raise
    return report


_WRITE_BATCH = 200


def _check_slugs_still_free(db: Any, plan: Plan) -> None:
    """Raise ImportFailed if a post took one of the new slugs since the plan was made."""
    from sqlalchemy import select

    from pyproject.blog.models import Post

    wanted = {p.slug: p.post.source_id for p in plan.posts if p.existing_id is None}
    slugs = sorted(wanted)
    for first in range(0, len(slugs), 500):
        taken = db.scalar(select(Post.slug).where(Post.slug.in_(slugs[first : first + 500])))
        if taken is not None:
            raise ImportFailed(
                f"{wanted[taken]}: the slug {taken!r} was taken meanwhile (run the import again)"
            )


def _tags_for(db: Any, plan: Plan) -> dict[str, Any]:
    """Give every tag the new posts carry, by slug: those here, and new ones (added)."""
    from sqlalchemy import select

    from pyproject.blog.models import Tag

    first_seen: dict[str, str] = {}
    first_public: dict[str, str] = {}  # a public post's spelling wins, as in the editor
    for planned in plan.posts:
        public = planned.post.status != "draft"
        for name, slug in planned.tags:
            first_seen.setdefault(slug, name)
            if public:
                first_public.setdefault(slug, name)
    names = {**first_seen, **first_public}
    slugs = sorted(names)
    tags: dict[str, Any] = {}
    for first in range(0, len(slugs), 500):
        for tag in db.scalars(select(Tag).where(Tag.slug.in_(slugs[first : first + 500]))):
            tags[tag.slug] = tag
    for slug in slugs:
        if slug not in tags:
            tags[slug] = Tag(name=names[slug], slug=slug)
            db.add(tags[slug])
    return tags


def _write_post(
    db: Any, planned: _Post, users: dict, media_ids: dict, tags: dict, now: datetime
) -> tuple[_Post, Any, Any, str]:
    """Create (or, with --on-conflict update, change) one post; nothing flushed yet."""
    from pyproject.blog.editor import render_onto, set_tags
    from pyproject.blog.models import Post

    src = planned.post
    user = users[planned.author]
    if planned.existing_id is not None:
        post = db.get(Post, planned.existing_id)
        previous = post.body_md
    else:
        post = Post(author_id=user.id, slug=planned.slug, status="draft")
        post.created_at = src.created_at or src.published_at or now
        # its revision number is known now, so the insert is the only statement
        post.revision = max((r["number"] for r in src.revisions), default=1)
        previous = ""
        db.add(post)
    post.title = planned.title
    post.author_id = user.id
    render_onto(post, planned.body, planned.rendered, planned.summary)
    post.status = "draft" if src.status == "draft" else "published"
    published = src.published_at
    if published is None and src.status == "published":
        published = now
    post.published_at = published
    post.updated_at = src.updated_at or published or now
    post.cover_media_id = media_ids.get(planned.cover_sha or "")
    if src.options.get("comments") in ("auto", "open", "closed"):
        post.comments = src.options["comments"]
    if post.status == "published" and published is not None and published <= now:
        post.announced_at = post.announced_at or now  # nobody is mailed old posts
    if planned.existing_id is not None:
        set_tags(db, post, planned.tags, public=post.status == "published")
    else:
        post.tags = [tags[slug] for _, slug in planned.tags]
        post.tag_names = " ".join(tag.name for tag in post.tags)
    return planned, post, user, previous


def _write_history(
    db: Any, planned: _Post, post: Any, user: Any, previous: str, users: dict, now: datetime
) -> None:
    """Add a written post's revisions, earlier slugs and old links (its id is known)."""
    from pyproject.blog.editor import add_revision, tags_text
    from pyproject.blog.models import OldSlug, Revision
    from pyproject.blog.models import Redirect as RedirectRow

    src = planned.post
    new = planned.existing_id is None
    if new and src.revisions:
        for revision in src.revisions:
            author = users.get(names_of(revision.get("author")))
            db.add(
                Revision(
                    post_id=post.id,
                    number=revision["number"],
                    kind=revision.get("kind") or "save",
                    title=revision.get("title") or planned.title,
                    body_md=revision["body_md"],
                    summary=revision.get("summary", ""),
                    tags=revision.get("tags", ""),
                    author_id=author.id if author else None,
                    words_changed=revision.get("words_changed", 0),
                    created_at=revision.get("created_at") or now,
                )
            )
    elif new:
        db.add(
            Revision(
                post_id=post.id,
                number=1,
                kind="save",
                title=planned.title,
                body_md=planned.body,
                summary=planned.summary,
                tags=tags_text(planned.tags),
                author_id=user.id,
                words_changed=planned.rendered.word_count,
                created_at=now,
            )
        )
    else:
        add_revision(db, post, "save", user, previous)
    for old in planned.old_slugs:
        if new or db.get(OldSlug, old) is None:
            db.add(OldSlug(slug=old, post_id=post.id))
    for path in planned.old_paths:
        if new or db.get(RedirectRow, path) is None:
            db.add(RedirectRow(path=path, post_id=post.id))


def names_of(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _first_author(plan: Plan) -> str:
    return plan.posts[0].author if plan.posts else ""


def run_import(
    app: Any,
    path: Path,
    options: Options,
    *,
    dry_run: bool = False,
    label: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    """Read, check and (unless a dry run) write an import; give its report."""
    bundle = read_source(path, limits=Limits.from_config(app.config), label=label)
    total, done = len(bundle.posts), 0

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    plan = plan_import(app, bundle, options, step)
    if dry_run:
        return plan.report
    return apply_import(app, plan)


# --- the command ------------------------------------------------------------------------------


def _import_arguments(parser: Any) -> None:
    parser.add_argument("path", help="a zip, a folder, or a single file to import")
    parser.add_argument("--dry-run", action="store_true", help="check and report; write nothing")
    parser.add_argument("--as", dest="as_user", metavar="USERNAME", help="give every post to")
    parser.add_argument("--on-conflict", choices=CONFLICTS, default="skip")


def _import_command(app: Any, args: Any) -> int:
    import sys

    from rich.progress import Progress

    options = Options(as_user=args.as_user, on_conflict=args.on_conflict)
    with Progress(transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("Checking posts", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        try:
            report = run_import(
                app, Path(args.path), options, dry_run=args.dry_run, progress=progress
            )
        except ImportFailed as problem:
            print(f"import: {problem} (nothing was written)", file=sys.stderr)
            return 2
    for line in report.lines():
        print(line)
    return 0


def _register_command() -> None:
    from pyproject.cli import command

    command("import", "import posts from a zip, a folder or a file (#16)", _import_arguments)(
        _import_command
    )


_register_command()


# --- the pages: upload, dry-run report, confirm, a job, progress ------------------------------

_PROGRESS_EVERY = 25  # posts between progress writes


def imports_folder(config: dict[str, Any]) -> Path:
    return Path(config["INSTANCE_PATH"]) / "imports"


def _run_page(request: Any, run: Any, status: int = 200) -> Any:
    from pyproject.lib import render_template

    report = Report.from_json(run.report) if run.report and run.report != "{}" else None
    error = json.loads(run.report).get("error") if run.state == "failed" else None
    return (
        render_template("admin/import_run.html", run=run, report=report, error=error),
        status,
    )


def _form_page(request: Any, errors: list[str], status: int = 200) -> Any:
    from sqlalchemy import select

    from pyproject.blog.db import get_db
    from pyproject.blog.models import ImportRun, User
    from pyproject.lib import current_app, render_template

    db = get_db(request)
    runs = list(db.scalars(select(ImportRun).order_by(ImportRun.id.desc()).limit(20)))
    users = list(db.scalars(select(User.username).order_by(User.username)))
    return (
        render_template(
            "admin/import.html",
            errors=errors,
            runs=runs,
            users=users,
            typed_as=request.form.get("as", "") if request.method == "POST" else "",
            typed_conflict=request.form.get("on_conflict", "skip")
            if request.method == "POST"
            else "skip",
            max_mb=current_app().config["IMPORT_MAX_BYTES"] // (1024 * 1024),
        ),
        status,
    )


def import_page(request: Any) -> Any:
    return _form_page(request, [])


def upload_import(request: Any) -> Any:
    """Keep the upload, check it (a dry run), and show what the import would do."""
    import secrets

    from pyproject.blog.auth import current_user
    from pyproject.blog.db import end_transaction, get_db
    from pyproject.blog.media import file_label
    from pyproject.blog.models import ImportRun, utcnow
    from pyproject.lib import current_app, redirect, url_for

    app = current_app()
    user = current_user(request)
    upload = request.files.get("file")
    as_user = request.form.get("as", "").strip().lower() or None
    conflict = request.form.get("on_conflict", "skip")
    if upload is None or not (upload.filename or upload.size):
        return _form_page(request, ["Choose a file to import."], 422)
    if conflict not in CONFLICTS:
        return _form_page(request, ["Choose what to do when a slug is taken."], 422)
    if upload.size > app.config["IMPORT_MAX_BYTES"]:
        return _form_page(
            request,
            [f"The file is over the {app.config['IMPORT_MAX_BYTES']} bytes an import may be."],
            413,
        )
    folder = imports_folder(app.config)
    folder.mkdir(parents=True, exist_ok=True)
    # the upload's own extension, when it is one we read: a lone .md is recognised by it
    suffix = Path(upload.filename or "").suffix.lower()
    suffix = suffix if suffix in (".zip", ".md", ".markdown", ".xml", ".json") else ".upload"
    stored = f"{secrets.token_hex(16)}{suffix}"
    target = folder / stored
    upload.save(str(target))
    label = file_label(upload.filename or "upload")
    options = Options(as_user=as_user, on_conflict=conflict, importer=user.username)
    db = get_db(request)
    end_transaction(db)  # no lock held while the file is read and checked
    _forget_unconfirmed(app)
    try:
        report = run_import(app, target, options, dry_run=True, label=label)
    except ImportFailed as problem:
        target.unlink(missing_ok=True)
        return _form_page(request, [f"{problem} Nothing was imported."], 422)
    from pyproject.blog.db import begin_write

    begin_write(db)
    run = ImportRun(
        user_id=user.id,
        filename=label,
        stored=stored,
        options=json.dumps({"as": as_user, "on_conflict": conflict}),
        state="checked",
        total=len(report.items),
        report=report.to_json(),
        created_at=utcnow(),
        changed_at=utcnow(),
    )
    db.add(run)
    db.commit()
    return redirect(url_for("import_run", run_id=run.id))


def _forget_unconfirmed(app: Any) -> None:
    """Delete checked imports nobody confirmed within a day, with their files."""
    from datetime import timedelta

    from sqlalchemy import delete, select

    from pyproject.blog.db import get_database
    from pyproject.blog.models import ImportRun, utcnow

    cutoff = utcnow() - timedelta(days=1)
    with get_database(app).write() as db:
        stale = ImportRun.state == "checked", ImportRun.created_at < cutoff
        for stored in db.scalars(select(ImportRun.stored).where(*stale)):
            (imports_folder(app.config) / stored).unlink(missing_ok=True)
        db.execute(delete(ImportRun).where(*stale))


def _run_or_404(request: Any, run_id: int) -> Any:
    from pyproject.blog.db import get_db
    from pyproject.blog.models import ImportRun
    from pyproject.lib.exceptions import NotFound

    run = get_db(request).get(ImportRun, run_id)
    if run is None:
        raise NotFound()
    return run


def show_run(request: Any, run_id: int) -> Any:
    return _run_page(request, _run_or_404(request, run_id))


def start_run(request: Any, run_id: int) -> Any:
    """Confirm a checked import: it runs as a job; its page shows the progress."""
    from pyproject.blog import jobs
    from pyproject.blog.db import get_db
    from pyproject.blog.models import utcnow
    from pyproject.lib import redirect, url_for

    run = _run_or_404(request, run_id)
    if run.state == "checked":
        from pyproject.blog import audit, auth  # (#20: the audit log)

        run.state, run.done, run.changed_at = "queued", 0, utcnow()
        jobs.enqueue(get_db(request), import_job, run.id)
        detail = {"file": run.filename, "run": run.id, "options": run.options}
        audit.record(
            get_db(request), auth.current_user(request), "import_started", detail, request=request
        )
        get_db(request).commit()
    return redirect(url_for("import_run", run_id=run.id))


def cancel_run(request: Any, run_id: int) -> Any:
    from pyproject.blog.db import get_db
    from pyproject.lib import current_app, redirect, url_for

    run = _run_or_404(request, run_id)
    if run.state == "checked":
        (imports_folder(current_app().config) / run.stored).unlink(missing_ok=True)
        get_db(request).delete(run)
        get_db(request).commit()
    return redirect(url_for("import_page"))


def _set_run(app: Any, run_id: int, **values: Any) -> None:
    from sqlalchemy import update

    from pyproject.blog.db import get_database
    from pyproject.blog.models import ImportRun, utcnow

    with get_database(app).write() as db:
        db.execute(
            update(ImportRun).where(ImportRun.id == run_id).values(changed_at=utcnow(), **values)
        )


def do_import_run(app: Any, run_id: int) -> None:
    """Run a confirmed web import (the job's body; safe to run twice)."""
    from pyproject.blog.db import get_database
    from pyproject.blog.models import ImportRun, User

    with get_database(app).read() as db:
        run = db.get(ImportRun, run_id)
        if run is None or run.state not in ("queued", "running"):
            return
        options = json.loads(run.options)
        importer = db.get(User, run.user_id)
        stored, label = run.stored, run.filename
    path = imports_folder(app.config) / stored
    _set_run(app, run_id, state="running", done=0)

    def progress(done: int, total: int) -> None:
        if done % _PROGRESS_EVERY == 0 or done == total:
            _set_run(app, run_id, done=done, total=total)

    try:
        report = run_import(
            app,
            path,
            Options(
                as_user=options.get("as"),
                on_conflict=options.get("on_conflict", "skip"),
                importer=importer.username if importer else None,
            ),
            label=label,
            progress=progress,
        )
    except ImportFailed as problem:
        _set_run(app, run_id, state="failed", report=json.dumps({"error": str(problem)}))
        path.unlink(missing_ok=True)
        return
    except Exception:  # our bug or the database down: the page stops waiting, the job fails
        message = "an unexpected error stopped it; the site's log has the details"
        _set_run(app, run_id, state="failed", report=json.dumps({"error": message}))
        path.unlink(missing_ok=True)
        raise
    _set_run(app, run_id, state="done", report=report.to_json())
    path.unlink(missing_ok=True)


def _import_job(run_id: int) -> None:
    from pyproject.blog import jobs

    do_import_run(jobs.current_app(), run_id)


def _make_job() -> Any:
    from pyproject.blog import jobs

    return jobs.job(retries=0, name="importing.import_job")(_import_job)


import_job = _make_job()


# --- old links: 301 to the post -------------------------------------------------------------


def redirect_for(request: Any, path: str) -> Any:
    """Give a 301 to the visible post an old path of an imported post leads to, or None."""
    from sqlalchemy import select

    from pyproject.blog.db import get_db
    from pyproject.blog.models import Post, Redirect, utcnow, visible
    from pyproject.lib import redirect, url_for

    slug = get_db(request).scalar(
        select(Post.slug)
        .join(Redirect, Redirect.post_id == Post.id)
        .where(Redirect.path == path, *visible(utcnow()))
    )
    return None if slug is None else redirect(url_for("show_post", slug=slug), 301)


def _query_redirect(request: Any) -> Any:
    """WordPress's /?p=123 and /?page_id=12 (the home page answers / itself)."""
    if request.path != "/" or request.method not in ("GET", "HEAD"):
        return None
    query = request.query_string
    if not query or not re.fullmatch(r"(p|page_id)=\d{1,12}", query):
        return None
    return redirect_for(request, f"/?{query}")


def _not_found(request: Any, error: Any) -> Any:
    """A 404 first asks whether an imported post used this path (two indexed lookups)."""
    from pyproject.blog.forms import has_control_characters
    from pyproject.lib import current_app
    from pyproject.lib.errorpages import error_response

    path = request.path
    # A path with control characters names no imported link (and PostgreSQL refuses NUL).
    if request.method in ("GET", "HEAD") and len(path) <= 500 and not has_control_characters(path):
        # The old link as typed, then with its trailing slash the other way: WordPress
        # and Ghost links end in one, links to them on the web sometimes do not.
        other = path[:-1] if path.endswith("/") and len(path) > 1 else path + "/"
        for candidate in (path, other):
            moved = redirect_for(request, candidate)
            if moved is not None:
                return moved
    return error_response(current_app(), request, error)


def register(app: Any) -> None:
    from pyproject.blog.auth import admin_required

    app.errorhandler(404)(_not_found)
    app.before_request(_query_redirect)
    app.before_request(_raise_upload_limit)
    app.add_route("/admin/import", admin_required(import_page), endpoint="import_page")
    app.add_route(
        "/admin/import", admin_required(upload_import), methods=["POST"], endpoint="upload_import"
    )
    app.add_route("/admin/import/<int:run_id>", admin_required(show_run), endpoint="import_run")
    app.add_route(
        "/admin/import/<int:run_id>/run",
        admin_required(start_run),
        methods=["POST"],
        endpoint="start_import",
    )
    app.add_route(
        "/admin/import/<int:run_id>/cancel",
        admin_required(cancel_run),
        methods=["POST"],
        endpoint="cancel_import",
    )


def _raise_upload_limit(request: Any) -> None:
    """Let a signed-in user's POST /admin/import body be as large as IMPORT_MAX_BYTES."""
    from pyproject.lib import current_app

    if request.method != "POST" or request.path != "/admin/import":
        return
    session = request.session
    if session is None or not isinstance(session.get("user_id"), int):
        return
    room = current_app().config["IMPORT_MAX_BYTES"] + 1_000_000
    request.max_content_length = max(request.max_content_length, room)
