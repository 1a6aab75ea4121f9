"""Tests for pyproject/blog/mediastore.py: the local folder store, its names and its mount."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyproject.app import create_app
from pyproject.blog.mediastore import (
    IMMUTABLE,
    LocalStore,
    MediaFiles,
    check_name,
    media_root,
    media_store,
)
from pyproject.config import ConfigError

SHA = "ab" * 32


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "media", "/media/files/")


def test_put_get_exists_delete_url(store: LocalStore) -> None:
    name = f"{SHA}/original.jpg"
    assert store.get(name) is None and not store.exists(name)
    store.put(name, b"one", "image/jpeg")
    store.put(name, b"two", "image/jpeg")  # an overwrite
    assert store.get(name) == b"two" and store.exists(name)
    assert store.url(name) == f"/media/files/{name}"
    store.delete(name)
    store.delete(name)  # a missing file is fine
    assert store.get(name) is None
    assert not (store.root / SHA).exists()  # the emptied folder goes too


def test_put_leaves_no_temporary_files(store: LocalStore) -> None:
    store.put(f"{SHA}/480.webp", b"x" * 1000, "image/webp")
    assert [p.name for p in (store.root / SHA).iterdir()] == ["480.webp"]


@pytest.mark.parametrize(
    "name",
    ["../etc/passwd", "/etc/passwd", f"{SHA}/../../x", "A/B.jpg", f"{SHA}/x y.jpg", "", ".hidden",
     f"{SHA}//x.jpg", "x\\y", f"{SHA}/x.jpg\n", "é/x.jpg"],
)  # fmt: skip
def test_unsafe_names_are_refused(store: LocalStore, name: str) -> None:
    with pytest.raises(ValueError):
        check_name(name)
    with pytest.raises(ValueError):
        store.put(name, b"x", "image/jpeg")
    with pytest.raises(ValueError):
        store.url(name)


def test_the_factory_defaults_to_a_folder_in_the_instance(tmp_path: Path) -> None:
    config = {"INSTANCE_PATH": str(tmp_path), "MEDIA_URL": "/media/files/"}
    store = media_store(config)
    assert isinstance(store, LocalStore)
    assert store.root == (tmp_path / "media").resolve()
    assert (
        media_root({**config, "MEDIA_ROOT": str(tmp_path / "elsewhere")}) == tmp_path / "elsewhere"
    )
    with pytest.raises(ConfigError):
        media_store({**config, "MEDIA_STORAGE": "ftp"})


def test_the_s3_choice_needs_its_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        media_store({"INSTANCE_PATH": str(tmp_path), "MEDIA_STORAGE": "s3"})


def make_app(tmp_path: Path):
    return create_app(
        {
            "SECRET_KEY": "k",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}",
            "INSTANCE_PATH": str(tmp_path),
            "LOG_LEVEL": "WARNING",
        }
    )


def test_the_app_serves_the_folder_for_a_year_with_nosniff(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    assert isinstance(app.wsgi_app, MediaFiles)
    assert not (Path(__file__).resolve().parents[2] / "static" / "media").exists()
    store = media_store(app.config)
    for ext, kind in (("avif", "image/avif"), ("webp", "image/webp"), ("jpg", "image/jpeg")):
        store.put(f"{SHA}/480.{ext}", b"bytes", kind)
        answer = app.test_client().get(f"/media/files/{SHA}/480.{ext}")
        assert answer.status_code == 200
        assert answer.headers["Content-Type"] == kind
        assert answer.headers["Cache-Control"] == IMMUTABLE
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        etag = answer.headers["ETag"]
        again = app.test_client().get(
            f"/media/files/{SHA}/480.{ext}", headers={"If-None-Match": etag}
        )
        assert again.status_code == 304


def test_a_deleted_file_is_gone_at_once(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    store = media_store(app.config)
    store.put(f"{SHA}/original.png", b"png", "image/png")
    client = app.test_client()
    assert client.get(f"/media/files/{SHA}/original.png").status_code == 200
    store.delete(f"{SHA}/original.png")
    assert client.get(f"/media/files/{SHA}/original.png").status_code == 404


@pytest.mark.parametrize(
    "path", ["/media/files/../pyproject.sqlite3", "/media/files/%2e%2e/x.sqlite3", "/media/files/"]
)
def test_nothing_outside_the_folder_is_served(tmp_path: Path, path: str) -> None:
    app = make_app(tmp_path)
    (tmp_path / "x.sqlite3").write_bytes(b"secret")
    assert app.test_client().get(path).status_code == 404
