"""Backups: `python main.py backup DIR` and `python main.py restore ARCHIVE`.

A backup is one timestamped `.tar.gz` holding a consistent snapshot of the database
taken while the site keeps serving and writing (SQLite's online backup API, for the site's
database and its view counts; `pg_dump` for PostgreSQL), the local media folder, the
settings the site runs with, and `manifest.json`: what each file is, its size and SHA-256.
It is written under a temporary name and renamed when complete, so a half-written archive
never looks like a backup. It holds the site's secrets (SECRET_KEY, mail and storage
passwords): it is created readable by its owner only.

A restore checks every file against the manifest before it changes anything, and then
goes only into an empty site (no accounts, no posts) unless told `--force`. Jobs that
were waiting in the backup are sent again by the worker's recovery (they are in the
database's job ledger), so the queue itself is not part of a backup.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import zlib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import func, select

from pyproject import __version__
from pyproject.blog import migrate
from pyproject.blog.db import get_database, is_sqlite
from pyproject.blog.mediastore import media_root
from pyproject.blog.models import Post, User
from pyproject.cli import command
from pyproject.config import SETTINGS
from pyproject.lib import App

FORMAT = 1
MANIFEST = "manifest.json"
DATABASE_SQLITE = "database.sqlite3"
VIEWS_SQLITE = "views.sqlite3"
DATABASE_PGDUMP = "database.pgdump"
SETTINGS_FILE = "settings.json"
MEDIA_FOLDER = "media"
_CHUNK = 1024 * 1024


class BackupError(Exception):
    """Why a backup or a restore cannot go on; the message says what to do."""


@dataclass(frozen=True, slots=True)
class Entry:
    name: str  # the path inside the archive
    size: int
    sha256: str


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --- taking a snapshot -------------------------------------------------------------------------


def snapshot_sqlite(source: str, target: Path) -> None:
    """Copy a live SQLite database consistently (the online backup API), WAL and all."""
    source_connection = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    target_connection = sqlite3.connect(target)
    try:
        with target_connection:
            source_connection.backup(target_connection)  # one step: one consistent snapshot
    finally:
        target_connection.close()
        source_connection.close()


def _libpq_url(url: Any) -> str:
    """Give a SQLAlchemy PostgreSQL URL as libpq takes it (no driver name)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _run_postgres_tool(tool: str, arguments: list[str], url: Any) -> None:
    found = shutil.which(tool)
    if found is None:
        raise BackupError(
            f"{tool} is not on the PATH: install PostgreSQL's client tools "
            f"(Debian: apt-get install postgresql-client) to back up or restore PostgreSQL."
        )
    environment = {**os.environ}
    if url.password:  # not on the command line, where other users could read it
        environment["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    result = subprocess.run(  # noqa: S603 - a fixed tool with our own arguments
        [found, *arguments, "--dbname", plain],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise BackupError(f"{tool} failed: {detail[-1] if detail else result.returncode}")


def snapshot_database(app: App, folder: Path) -> list[Path]:
    """Write the database's snapshot files into `folder`; give them."""
    database = get_database(app)
    engine = database.engine
    if is_sqlite(engine):
        path = engine.url.database
        if not path or path == ":memory:":
            raise BackupError("an in-memory SQLite database has nothing to back up")
        written = [folder / DATABASE_SQLITE]
        snapshot_sqlite(path, written[0])
        views = Path(f"{path}-views")
        if views.exists():
            written.append(folder / VIEWS_SQLITE)
            snapshot_sqlite(str(views), written[1])
        return written
    target = folder / DATABASE_PGDUMP
    _run_postgres_tool(
        "pg_dump", ["--format=custom", "--no-owner", "--file", str(target)], engine.url
    )
    return [target]


def current_settings(app: App) -> dict[str, Any]:
    """Give the settings the site runs with (every named one), as JSON can hold them."""
    names = [setting.name for setting in SETTINGS]
    return {
        name: value if isinstance(value, (str, int, float, bool)) or value is None else str(value)
        for name, value in ((name, app.config.get(name)) for name in names)
    }


def _media_files(app: App) -> tuple[Path, list[Path]]:
    if str(app.config.get("MEDIA_STORAGE") or "local").lower() != "local":
        return Path(), []
    root = media_root(app.config)
    if not root.is_dir():
        return root, []
    files = [p for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()]
    return root, files


def backup(app: App, destination: Path, *, now: datetime | None = None) -> Path:
    """Write a complete backup archive into the folder `destination`; give its path."""
    now = now or datetime.now(UTC)
    destination.mkdir(parents=True, exist_ok=True)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    final = destination / f"pyproject-backup-{stamp}.tar.gz"
    if final.exists():
        raise BackupError(f"{final} exists already")
    with tempfile.TemporaryDirectory(prefix=".backup-", dir=destination) as work:
        staging = Path(work)
        files = snapshot_database(app, staging)
        settings = staging / SETTINGS_FILE
        settings.write_text(json.dumps(current_settings(app), indent=2, sort_keys=True))
        files.append(settings)
        entries = [Entry(path.name, path.stat().st_size, _digest(path)) for path in files]
        root, media = _media_files(app)
        for path in media:
            name = str(PurePosixPath(MEDIA_FOLDER, *path.relative_to(root).parts))
            entries.append(Entry(name, path.stat().st_size, _digest(path)))
        engine = get_database(app).engine
        manifest = {
            "format": FORMAT,
            "created_at": now.isoformat(),
            "version": __version__,
            "migration": migrate.current_revision(engine),
            "database": "sqlite" if is_sqlite(engine) else "postgresql",
            "media": "included"
            if str(app.config.get("MEDIA_STORAGE") or "local").lower() == "local"
            else "kept in object storage: back the bucket up with its own tools",
            "files": [asdict(entry) for entry in entries],
        }
        partial = staging / "archive.tar.gz"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as archive:
            _add_bytes(archive, MANIFEST, json.dumps(manifest, indent=2).encode(), now)
            for path in files:
                archive.add(path, arcname=path.name, recursive=False, filter=_plain_member)
            for path in media:
                name = str(PurePosixPath(MEDIA_FOLDER, *path.relative_to(root).parts))
                archive.add(path, arcname=name, recursive=False, filter=_plain_member)
        os.replace(partial, final)
    return final


def _plain_member(member: tarfile.TarInfo) -> tarfile.TarInfo:
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    member.mode = 0o600
    return member


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes, now: datetime) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(now.timestamp()), 0o600
    archive.addfile(info, io.BytesIO(data))


# --- restoring ---------------------------------------------------------------------------------


def _safe_name(name: str) -> bool:
    path = PurePosixPath(name)
    return bool(name) and not path.is_absolute() and ".." not in path.parts and "\\" not in name


def unpack(archive_path: Path, folder: Path) -> dict[str, Any]:
    """Unpack a backup into `folder`, checking every file against its manifest; give it."""
    try:
        with tarfile.open(archive_path, mode="r:gz") as archive:
            return _unpack_checked(archive, archive_path, folder)
    except (
        OSError,
        EOFError,
        zlib.error,
        tarfile.TarError,
        ValueError,
        KeyError,
        TypeError,
    ) as error:
        raise BackupError(f"{archive_path} is not a readable backup archive ({error})") from None


def _unpack_checked(archive: tarfile.TarFile, archive_path: Path, folder: Path) -> dict[str, Any]:
    members = archive.getmembers()
    for member in members:
        if not member.isfile() or not _safe_name(member.name):
            raise BackupError(f"{archive_path}: refusing the entry {member.name!r}")
    names = {member.name for member in members}
    if MANIFEST not in names:
        raise BackupError(f"{archive_path} has no {MANIFEST}: not a PyProject backup")
    manifest = json.loads(archive.extractfile(MANIFEST).read())  # type: ignore[union-attr]
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{archive_path}: backup format {manifest.get('format')!r} is unknown")
    listed = {entry["name"]: entry for entry in manifest.get("files", [])}
    if set(listed) != names - {MANIFEST}:
        raise BackupError(f"{archive_path}: the files do not match the manifest")
    for member in members:
        if member.name == MANIFEST:
            continue
        target = folder.joinpath(*PurePosixPath(member.name).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        source = archive.extractfile(member)
        if source is None:  # not a regular file after all
            raise BackupError(f"{archive_path}: refusing the entry {member.name!r}")
        with target.open("wb") as out:
            shutil.copyfileobj(source, out, _CHUNK)
        entry = listed[member.name]
        if target.stat().st_size != entry["size"] or _digest(target) != entry["sha256"]:
            raise BackupError(f"{archive_path}: {member.name} is damaged (checksum differs)")
    return manifest


def site_is_empty(app: App) -> bool:
    engine = get_database(app).engine
    if migrate.current_revision(engine) is None:
        return True
    with get_database(app).read() as db:
        return not db.scalar(select(func.count()).select_from(User)) and not db.scalar(
            select(func.count()).select_from(Post)
        )


def _restore_sqlite_file(source: Path, target: str) -> None:
    """Put a snapshot in place of a SQLite database through the backup API (WAL-safe)."""
    source_connection = sqlite3.connect(source)
    target_connection = sqlite3.connect(target, timeout=30)
    try:
        with target_connection:
            source_connection.backup(target_connection)
    finally:
        target_connection.close()
        source_connection.close()


def restore(app: App, archive_path: Path, *, force: bool = False) -> dict[str, Any]:
    """Restore a backup into this site; give its manifest."""
    if not force and not site_is_empty(app):
        raise BackupError(
            "this site has accounts or posts: restore into an empty site, or add --force "
            "to replace everything it holds"
        )
    database = get_database(app)
    engine = database.engine
    with tempfile.TemporaryDirectory(prefix="pyproject-restore-") as work:
        folder = Path(work)
        manifest = unpack(archive_path, folder)
        kind = "sqlite" if is_sqlite(engine) else "postgresql"
        if manifest["database"] != kind:
            raise BackupError(
                f"the backup holds a {manifest['database']} database and this site uses {kind}"
            )
        database.dispose()
        if kind == "sqlite":
            _restore_sqlite_file(folder / DATABASE_SQLITE, str(engine.url.database))
            if (folder / VIEWS_SQLITE).exists():
                _restore_sqlite_file(folder / VIEWS_SQLITE, f"{engine.url.database}-views")
        else:
            arguments = ["--clean", "--if-exists", "--no-owner", "--single-transaction"]
            _run_postgres_tool(
                "pg_restore", [*arguments, str(folder / DATABASE_PGDUMP)], engine.url
            )
        media = folder / MEDIA_FOLDER
        if media.is_dir():
            root = media_root(app.config)
            for path in sorted(media.rglob("*")):
                if path.is_file():
                    target = root / path.relative_to(media)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, target)
    return manifest


# --- commands ----------------------------------------------------------------------------------


def _backup_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", type=Path, help="where to write the archive")


def _restore_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("archive", type=Path, help="a pyproject-backup-*.tar.gz")
    parser.add_argument(
        "--force", action="store_true", help="replace what a site that is not empty holds"
    )


@command(
    "backup",
    "write a consistent backup (database, media, settings) while serving",
    _backup_arguments,
)
def backup_command(app: App, args: Any) -> int:
    try:
        path = backup(app, args.folder)
    except BackupError as error:
        print(f"backup failed: {error}")
        return 1
    print(f"Backup written to {path} ({path.stat().st_size:,} bytes).")
    return 0


@command("restore", "restore a backup archive into an empty site", _restore_arguments)
def restore_command(app: App, args: Any) -> int:
    try:
        manifest = restore(app, args.archive, force=args.force)
    except BackupError as error:
        print(f"restore failed: {error}")
        return 1
    print(
        f"Restored the backup of {manifest['created_at']} ({len(manifest['files'])} files, "
        f"migration {manifest['migration']}). Then run `python main.py migrate`."
    )
    return 0


def register(app: App) -> None:
    """No routes: the commands register themselves."""
