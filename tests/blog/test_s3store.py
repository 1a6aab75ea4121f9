"""Tests for pyproject/blog/s3store.py against a real S3-compatible server on loopback.

The module starts `moto_server` (PyPI moto[server]) on a free loopback port, once for the
module, and stops it at the end; each test works in a bucket of its own. Without moto, or
when the server does not answer, every test that needs it skips and says why.
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import feedparser
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError
from PIL import Image
from sqlalchemy import select

from pyproject.blog.db import get_database
from pyproject.blog.media import make_variants_now
from pyproject.blog.mediastore import IMMUTABLE, check_name, media_store
from pyproject.blog.models import Media
from pyproject.blog.s3store import S3Store, StorageUnavailable
from pyproject.config import ConfigError
from tests.blog.conftest import Cast, csrf_token, make_cast, slug_of, write_post
from tests.conftest import build_app

ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key-never-shown"
REGION = "us-east-1"
NAME = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef/original.jpg"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP answer means it is up
    except OSError:
        return False


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Give the URL of a moto_server started for this module on 127.0.0.1."""
    # Only looked for, not imported: moto in this process would hook into every boto3 client.
    if importlib.util.find_spec("moto") is None:
        pytest.skip("moto[server] is not installed (pip install -r requirements-dev.txt)")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while not _answers(endpoint + "/moto-api/"):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-500:]
                pytest.skip(f"moto_server did not start on {endpoint}: {tail or 'no output'}")
            time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def raw_client(endpoint: str):
    """A plain boto3 client, to look at what the store left in the bucket."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=Config(s3={"addressing_style": "path"}),
    )


def make_bucket(endpoint: str) -> str:
    """Make a bucket whose objects anyone may read, as the README tells operators to."""
    bucket = f"media-{uuid.uuid4().hex[:12]}"
    client = raw_client(endpoint)
    client.create_bucket(Bucket=bucket)
    client.put_bucket_policy(Bucket=bucket, Policy=public_read_policy(bucket))
    return bucket


def public_read_policy(bucket: str) -> str:
    statement = {
        "Sid": "PublicReadMedia",
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def s3_settings(endpoint: str, bucket: str) -> dict[str, str]:
    """The MEDIA_* settings of a site keeping its media in `bucket`."""
    return {
        "MEDIA_STORAGE": "s3",
        "MEDIA_S3_BUCKET": bucket,
        "MEDIA_S3_ENDPOINT_URL": endpoint,
        "MEDIA_S3_REGION": REGION,
        "MEDIA_S3_ACCESS_KEY": ACCESS_KEY,
        "MEDIA_S3_SECRET_KEY": SECRET_KEY,
        "MEDIA_S3_PUBLIC_URL": f"{endpoint}/{bucket}",
    }


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    return make_bucket(s3_endpoint)


@pytest.fixture
def store(s3_endpoint: str, bucket: str) -> S3Store:
    return S3Store.from_config(s3_settings(s3_endpoint, bucket))


# --- the MediaStore promises -----------------------------------------------------------------


def test_put_then_get_gives_the_same_bytes(store: S3Store) -> None:
    data = b"\xff\xd8\xff\xe0 not really a jpeg \x00\x01"

    store.put(NAME, data, "image/jpeg")

    assert store.get(NAME) == data
    assert store.exists(NAME)


def test_put_stores_the_content_type_and_a_year_of_immutable_caching(
    store: S3Store, s3_endpoint: str, bucket: str
) -> None:
    store.put(NAME, b"webp bytes", "image/webp")

    head = raw_client(s3_endpoint).head_object(Bucket=bucket, Key=NAME)
    assert head["ContentType"] == "image/webp"
    assert head["CacheControl"] == "public, max-age=31536000, immutable" == IMMUTABLE
    assert head["ContentLength"] == len(b"webp bytes")


def test_put_again_replaces_the_object(store: S3Store) -> None:
    store.put(NAME, b"first", "image/jpeg")
    store.put(NAME, b"second", "image/jpeg")

    assert store.get(NAME) == b"second"


def test_a_missing_object_is_none_and_not_there(store: S3Store) -> None:
    assert store.get(NAME) is None
    assert store.exists(NAME) is False


def test_delete_removes_the_object_and_a_missing_one_is_fine(store: S3Store) -> None:
    store.put(NAME, b"bytes", "image/png")

    store.delete(NAME)
    store.delete(NAME)

    assert store.get(NAME) is None
    assert not store.exists(NAME)


def test_the_url_is_under_the_public_base_and_serves_the_object(
    store: S3Store, s3_endpoint: str, bucket: str
) -> None:
    store.put(NAME, b"gif bytes", "image/gif")

    url = store.url(NAME)

    assert url == f"{s3_endpoint}/{bucket}/{NAME}"
    with urllib.request.urlopen(url, timeout=5) as answer:
        assert answer.read() == b"gif bytes"
        assert answer.headers["Content-Type"] == "image/gif"
        assert answer.headers["Cache-Control"] == IMMUTABLE


def test_a_trailing_slash_on_the_public_url_makes_no_double_slash(bucket: str) -> None:
    store = S3Store(bucket=bucket, public_url="https://cdn.example.com/media/")

    assert store.url("ab/960.webp") == "https://cdn.example.com/media/ab/960.webp"


def test_the_bucket_of_another_store_is_not_seen(store: S3Store, s3_endpoint: str) -> None:
    other = S3Store.from_config(s3_settings(s3_endpoint, make_bucket(s3_endpoint)))
    store.put(NAME, b"mine", "image/jpeg")

    assert other.get(NAME) is None


def test_an_error_other_than_missing_is_a_503_that_keeps_the_cause(s3_endpoint: str) -> None:
    store = S3Store.from_config(s3_settings(s3_endpoint, "no-such-bucket-anywhere"))

    with pytest.raises(StorageUnavailable) as raised:
        store.put(NAME, b"bytes", "image/jpeg")

    assert raised.value.code == 503
    assert "NoSuchBucket" in str(raised.value.__cause__)


# --- names and settings ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "",
        "../etc/passwd",
        "ab/../../cd.jpg",
        "/ab/original.jpg",
        "ab//original.jpg",
        "AB/original.JPG",
        "ab/original.jpg\n",
        "ab/orig inal.jpg",
        "ab\\original.jpg",
        "ab/original.jpg?x=1",
        "ab/%2e%2e/x.jpg",
        "a" * 600,
    ],
)
def test_unsafe_names_are_refused_before_any_request(name: str) -> None:
    store = S3Store(
        bucket="b", public_url="https://cdn.example.com", endpoint_url="http://0.0.0.0:9"
    )

    with pytest.raises(ValueError, match="not a media object name"):
        check_name(name)
    with pytest.raises(ValueError):
        store.url(name)
    with pytest.raises(ValueError):
        store.put(name, b"x", "image/jpeg")


@pytest.mark.parametrize("name", [NAME, "ab/960.webp", "ab/2400.avif", "ab/original.gif"])
def test_the_names_mediastore_gives_out_are_accepted(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        ({"MEDIA_S3_BUCKET": ""}, "MEDIA_S3_BUCKET"),
        ({"MEDIA_S3_PUBLIC_URL": ""}, "MEDIA_S3_PUBLIC_URL"),
        ({"MEDIA_S3_PUBLIC_URL": "cdn.example.com"}, "MEDIA_S3_PUBLIC_URL"),
        ({"MEDIA_S3_PUBLIC_URL": "javascript:alert(1)//"}, "MEDIA_S3_PUBLIC_URL"),
        ({"MEDIA_S3_SECRET_KEY": ""}, "MEDIA_S3_SECRET_KEY"),
        ({"MEDIA_S3_ACCESS_KEY": ""}, "MEDIA_S3_ACCESS_KEY"),
    ],
)
def test_missing_or_wrong_settings_stop_with_a_message_naming_them(
    settings: dict[str, str], complaint: str
) -> None:
    config = s3_settings("http://127.0.0.1:9", "media") | settings

    with pytest.raises(ConfigError, match=complaint):
        S3Store.from_config(config)


def test_the_secret_is_never_in_the_stores_repr_or_its_log_lines(
    store: S3Store, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        store.put(NAME, b"bytes", "image/jpeg")
        store.get(NAME)
        store.exists("ab/missing.jpg")
        store.delete(NAME)

    assert caplog.records, "botocore logged nothing at DEBUG: the test would prove nothing"
    assert SECRET_KEY not in caplog.text
    assert SECRET_KEY not in repr(store)


def test_a_server_that_never_answers_fails_after_the_timeout_and_retries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        store = S3Store(
            bucket="media",
            public_url="https://cdn.example.com",
            endpoint_url=f"http://127.0.0.1:{port}",
            region=REGION,
            access_key=ACCESS_KEY,
            secret_key=SECRET_KEY,
            timeout=0.3,
            attempts=2,
        )
        started = time.monotonic()

        botocore_debug = caplog.at_level(logging.DEBUG, logger="botocore")
        with botocore_debug, pytest.raises(StorageUnavailable) as raised:
            store.get(NAME)

    assert isinstance(raised.value.__cause__, BotoCoreError)

    # Two tries of 0.3 s take about a second; without the timeout botocore waits 60 s a
    # try. 30 s leaves room for a two-core machine under load (12 s seen once).
    assert time.monotonic() - started < 30
    tries = [r for r in caplog.records if "Sending http request" in r.getMessage()]
    assert len(tries) == 2


def test_media_storage_s3_makes_the_factory_give_an_s3_store(s3_endpoint: str, bucket: str) -> None:
    store = media_store(s3_settings(s3_endpoint, bucket))

    assert isinstance(store, S3Store)
    assert store.url("ab/960.webp") == f"{s3_endpoint}/{bucket}/ab/960.webp"


# --- through the app -------------------------------------------------------------------------


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 40)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def s3_cast(tmp_path: Path, s3_endpoint: str, bucket: str) -> Iterator[Cast]:
    """The blog with its media in the test's bucket, and its people signed in."""
    app = build_app(tmp_path, **s3_settings(s3_endpoint, bucket))
    yield make_cast(app)
    get_database(app).dispose()


def test_an_upload_lands_in_the_bucket_and_the_post_shows_it_from_the_public_url(
    s3_cast: Cast, s3_endpoint: str, bucket: str
) -> None:
    author = s3_cast.author
    values = {"csrf_token": csrf_token(author, "/media"), "alt": "A red field"}
    answer = author.post(
        "/media",
        data=values,
        files={"file": ("field.png", png(1200, 800), "image/png")},
        headers={"Accept": "application/json"},
    )

    assert answer.status_code == 200, answer.text
    (picture,) = answer.json["files"]
    public = f"{s3_endpoint}/{bucket}/"
    assert picture["url"].startswith(public)
    name = picture["url"].removeprefix(public)
    head = raw_client(s3_endpoint).head_object(Bucket=bucket, Key=name)
    assert head["ContentType"] == "image/png"
    assert head["CacheControl"] == IMMUTABLE
    assert not (Path(s3_cast.app.config["INSTANCE_PATH"]) / "media").exists()

    with get_database(s3_cast.app).read() as db:
        media_id = db.scalar(select(Media.id))
    make_variants_now(s3_cast.app, media_id)
    keys = {
        item["Key"]
        for item in raw_client(s3_endpoint).list_objects_v2(Bucket=bucket).get("Contents", [])
    }
    folder = name.split("/")[0]
    assert {f"{folder}/480.webp", f"{folder}/960.avif", f"{folder}/1200.png"} <= keys

    slug = slug_of(write_post(author, title="Red", body=picture["markdown"]))
    page = s3_cast.anonymous.get(f"/posts/{slug}")
    img = page.html.select_one(".post-body picture img")
    assert img is not None, page.text
    assert img["src"] == picture["url"]
    sources = page.html.select(".post-body picture source")
    assert sources and all(
        url.split()[0].startswith(public)
        for source in sources
        for url in source["srcset"].split(",")
    )
    with urllib.request.urlopen(picture["url"], timeout=5) as served:
        assert served.read()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_upload_while_the_storage_is_down_is_a_503_and_stores_nothing(tmp_path: Path) -> None:
    settings = s3_settings(f"http://127.0.0.1:{free_port()}", "media")  # nothing listens
    app = build_app(tmp_path, **settings, MEDIA_S3_TIMEOUT=1)
    cast = make_cast(app)
    values = {"csrf_token": csrf_token(cast.author, "/media"), "alt": "A red field"}

    answer = cast.author.post(
        "/media", data=values, files={"file": ("field.png", png(300, 200), "image/png")}
    )

    assert answer.status_code == 503
    assert "picture storage did not answer" in answer.text
    with get_database(app).read() as db:
        assert db.scalar(select(Media.id)) is None
    get_database(app).dispose()


def test_a_cover_in_the_bucket_is_previewed_and_enclosed_from_the_public_url(
    s3_cast: Cast, s3_endpoint: str, bucket: str
) -> None:
    author = s3_cast.author
    values = {"csrf_token": csrf_token(author, "/media"), "alt": "A red field"}
    answer = author.post(
        "/media",
        data=values,
        files={"file": ("field.png", png(800, 400), "image/png")},
        headers={"Accept": "application/json"},
    )
    (picture,) = answer.json["files"]
    with get_database(s3_cast.app).read() as db:
        media_id = db.scalar(select(Media.id))

    slug = slug_of(write_post(author, title="Covered", cover=str(media_id)))

    page = s3_cast.anonymous.get(f"/posts/{slug}")
    og_image = page.html.select_one('meta[property="og:image"]')["content"]
    assert og_image == picture["url"]
    assert page.html.select_one(".post-cover img")["src"] == picture["url"]
    (entry,) = feedparser.parse(s3_cast.anonymous.get("/feed.rss").data).entries
    assert entry.enclosures[0].href == picture["url"]


def test_the_app_does_not_start_with_s3_storage_and_no_bucket(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MEDIA_S3_BUCKET"):
        build_app(tmp_path, MEDIA_STORAGE="s3", MEDIA_S3_PUBLIC_URL="https://cdn.example.com")
