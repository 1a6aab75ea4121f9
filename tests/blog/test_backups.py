"""Tests for pyproject/blog/backups.py: a backup taken while the site writes keeps every
write acknowledged before it began; a restore checks everything first, and goes only into
an empty site unless forced; damaged and hostile archives change nothing."""

from __future__ import annotations

import io
import json
import shutil
import stat
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import POSTGRES_URL, _plain, _postgres_reason, build_app, reset_postgres
from sqlalchemy import func, select

from blog.conftest import Cast, make_blog_app, make_cast, write_post
from pyproject.blog import backups
from pyproject.blog.db import get_database
from pyproject.blog.mediastore import media_root
from pyproject.blog.models import Post
from pyproject.cli import main
from pyproject.lib import App

WRITING_SECONDS = 3.0  # of writes before the backup starts, and again while and after


def titles(app: App) -> set[str]:
    with get_database(app).read() as db:
        return set(db.scalars(select(Post.title)))


def post_count(app: App) -> int:
    with get_database(app).read() as db:
        return db.scalar(select(func.count()).select_from(Post)) or 0


class Writer(threading.Thread):
    """Saves posts through the editor, one after another, noting when each was acknowledged."""

    def __init__(self, cast: Cast) -> None:
        super().__init__(daemon=True)
        self.cast = cast
        self.acknowledged: list[tuple[float, str]] = []
        self.stop = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        number = 0
        try:
            while not self.stop.is_set():
                number += 1
                title = f"Written while backing up {number}"
                answer = write_post(self.cast.author, title=title, body=f"Words {number}.")
                if answer.status_code == 303:
                    self.acknowledged.append((time.monotonic(), title))
        except BaseException as error:  # reported by the test
            self.failure = error


@pytest.fixture
def cast(tmp_path: Path) -> Iterator[Cast]:
    app = make_blog_app(tmp_path / "site")
    yield make_cast(app)
    get_database(app).dispose()


def fresh_site(tmp_path: Path) -> App:
    return make_blog_app(tmp_path / "fresh")


def test_a_backup_taken_while_writing_keeps_every_write_acknowledged_before_it(
    cast: Cast, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    picture = media_root(cast.app.config) / "ab" / "original.png"
    picture.parent.mkdir(parents=True)
    picture.write_bytes(b"\x89PNG not really, but bytes to keep")
    writer = Writer(cast)
    writer.start()
    time.sleep(WRITING_SECONDS)
    started = time.monotonic()
    assert main(cast.app, ["backup", str(tmp_path / "backups")]) == 0
    time.sleep(WRITING_SECONDS)  # the site went on writing while and after
    writer.stop.set()
    writer.join()
    assert writer.failure is None
    before = {title for at, title in writer.acknowledged if at < started}
    assert len(before) >= 5, "too few writes before the backup to prove anything"
    (archive,) = (tmp_path / "backups").glob("pyproject-backup-*.tar.gz")
    assert "Backup written to" in capsys.readouterr().out
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600  # it holds the site's secrets
    assert not [p for p in (tmp_path / "backups").iterdir() if p != archive]  # nothing half-done

    fresh = fresh_site(tmp_path)
    try:
        assert main(fresh, ["restore", str(archive)]) == 0
        restored = titles(fresh)
        assert before <= restored  # every acknowledged write before the backup is there
        assert restored <= titles(cast.app)  # and nothing that never was
        copy = media_root(fresh.config) / "ab" / "original.png"
        assert copy.read_bytes() == picture.read_bytes()
        # The restored site works: its author signs in and reads a restored post.
        reader = fresh.test_client()
        assert reader.get("/").status_code == 200
    finally:
        get_database(fresh).dispose()


def test_the_manifest_lists_every_file_with_its_checksum(cast: Cast, tmp_path: Path) -> None:
    write_post(cast.author, title="One")
    archive = backups.backup(cast.app, tmp_path / "out")
    with tarfile.open(archive) as opened:
        manifest = json.loads(opened.extractfile("manifest.json").read())
        names = sorted(member.name for member in opened.getmembers())
    assert manifest["format"] == 1
    assert manifest["database"] == "sqlite"
    assert manifest["migration"]
    listed = {entry["name"] for entry in manifest["files"]}
    assert listed == set(names) - {"manifest.json"}
    assert {"database.sqlite3", "settings.json"} <= listed
    assert all(len(entry["sha256"]) == 64 for entry in manifest["files"])


def test_a_site_that_is_not_empty_is_refused_unless_forced(
    cast: Cast, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_post(cast.author, title="Kept in the backup")
    archive = backups.backup(cast.app, tmp_path / "out")
    write_post(cast.author, title="Written after the backup")
    assert main(cast.app, ["restore", str(archive)]) == 1
    assert "restore into an empty site" in capsys.readouterr().out
    assert "Written after the backup" in titles(cast.app)  # nothing changed
    assert main(cast.app, ["restore", str(archive), "--force"]) == 0
    assert "Written after the backup" not in titles(cast.app)
    assert "Kept in the backup" in titles(cast.app)


def rewrite(archive: Path, target: Path, change: dict[str, bytes | None]) -> Path:
    """Copy a backup, replacing (bytes) or dropping (None) the named entries."""
    with tarfile.open(archive) as source, tarfile.open(target, "w:gz") as out:
        for member in source.getmembers():
            data = source.extractfile(member).read()
            if member.name in change:
                if change[member.name] is None:
                    continue
                data = change[member.name]
            info = tarfile.TarInfo(member.name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return target


def hostile(target: Path, member: tarfile.TarInfo, data: bytes = b"x") -> Path:
    with tarfile.open(target, "w:gz") as out:
        manifest = json.dumps({"format": 1, "files": []}).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        out.addfile(info, io.BytesIO(manifest))
        member.size = len(data) if member.isfile() else 0
        out.addfile(member, io.BytesIO(data) if member.isfile() else None)
    return target


def link(name: str, to: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, to
    return info


def test_damaged_and_hostile_archives_are_refused_and_change_nothing(
    cast: Cast, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_post(cast.author, title="Real")
    good = backups.backup(cast.app, tmp_path / "out")
    with tarfile.open(good) as opened:
        database = opened.extractfile("database.sqlite3").read()
    damaged = bytearray(database)
    damaged[len(damaged) // 2] ^= 0xFF
    (tmp_path / "not-a-backup.tar.gz").write_bytes(b"plain text, not gzip")
    (tmp_path / "truncated.tar.gz").write_bytes(good.read_bytes()[:2000])
    cases = {
        "damaged": rewrite(good, tmp_path / "damaged.tar.gz", {"database.sqlite3": bytes(damaged)}),
        "no manifest": rewrite(good, tmp_path / "bare.tar.gz", {"manifest.json": None}),
        "missing file": rewrite(good, tmp_path / "short.tar.gz", {"settings.json": None}),
        "bad manifest": rewrite(good, tmp_path / "odd.tar.gz", {"manifest.json": b"[1, 2"}),
        "not gzip": tmp_path / "not-a-backup.tar.gz",
        "truncated": tmp_path / "truncated.tar.gz",
        "traversal": hostile(tmp_path / "up.tar.gz", tarfile.TarInfo("../../etc/cron.d/x")),
        "absolute": hostile(tmp_path / "abs.tar.gz", tarfile.TarInfo("/etc/passwd")),
        "symlink": hostile(tmp_path / "sym.tar.gz", link("media/x", "/etc/passwd")),
        "hard link": hostile(tmp_path / "hl.tar.gz", link("y", "/etc/passwd", tarfile.LNKTYPE)),
        "missing": tmp_path / "nowhere.tar.gz",
    }  # fmt: skip
    fresh = fresh_site(tmp_path)
    try:
        for case, archive in cases.items():
            assert main(fresh, ["restore", str(archive)]) == 1, case
            assert "restore failed" in capsys.readouterr().out, case
            assert post_count(fresh) == 0, case
        assert not (tmp_path / "etc").exists()
        media = media_root(fresh.config)
        assert not media.exists() or not any(media.rglob("*"))
    finally:
        get_database(fresh).dispose()


def test_a_backup_of_an_in_use_folder_never_leaves_a_partial_archive(
    cast: Cast, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    stamp = backups.backup(cast.app, out)
    with pytest.raises(backups.BackupError, match="exists already"):
        backups.backup(cast.app, out, now=backups_time(stamp))
    assert sorted(p.name for p in out.iterdir()) == [stamp.name]


def backups_time(archive: Path):
    from datetime import UTC, datetime

    stamp = archive.name.removeprefix("pyproject-backup-").removesuffix(".tar.gz")
    return datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


# --- PostgreSQL --------------------------------------------------------------------------------


@pytest.fixture
def second_postgres_database() -> Iterator[str]:
    """A second empty PostgreSQL database of this run's, to restore into."""
    reason = _postgres_reason()
    if reason:
        pytest.skip(reason)
    if shutil.which("pg_dump") is None or shutil.which("pg_restore") is None:
        pytest.skip(
            "pg_dump and pg_restore are not on the PATH (apt-get install postgresql-client)"
        )
    import psycopg

    name = POSTGRES_URL.rsplit("/", 1)[1] + "_restore"
    admin = _plain(POSTGRES_URL.rsplit("/", 1)[0] + "/test")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    yield POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_postgresql_is_backed_up_with_pg_dump_and_restored_with_pg_restore(
    tmp_path: Path, second_postgres_database: str
) -> None:
    reset_postgres()
    source = build_app(tmp_path / "source", POSTGRES_URL)
    target = build_app(tmp_path / "target", second_postgres_database)
    try:
        cast = make_cast(source)
        for number in range(5):
            assert write_post(cast.author, title=f"On PostgreSQL {number}").status_code == 303
        archive = backups.backup(source, tmp_path / "out")
        with tarfile.open(archive) as opened:
            assert "database.pgdump" in opened.getnames()
        assert main(target, ["restore", str(archive)]) == 0
        assert titles(target) == titles(source)
        assert target.test_client().get("/").status_code == 200
    finally:
        get_database(source).dispose()
        get_database(target).dispose()
