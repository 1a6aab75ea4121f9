"""Static files: nothing outside static/ (or hidden in it, or the folder itself) is ever sent.

A fixture puts a hidden file and two symbolic links pointing out of static/ (to a file and
to a folder, each holding a secret) for the length of this module, and removes them even
when a test fails. Every path is tried in process and, byte for byte, against gunicorn,
so no client tidies the path first.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from pyproject.config import ROOT
from pyproject.lib import App

from .live import Live

STATIC = ROOT / "static"
MAIN_PY = (ROOT / "main.py").read_bytes()


@dataclass
class Planted:
    hidden: str
    file_link: str
    dir_link: str
    secret: bytes


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Planted]:
    """A hidden file and two links out of static/, there only while this module runs."""
    secret = f"secret-{uuid.uuid4().hex}".encode()
    outside = tmp_path_factory.mktemp("outside")
    (outside / "secret.txt").write_bytes(secret)
    name = f"security-test-{uuid.uuid4().hex[:8]}"
    made = Planted(f".{name}.txt", f"{name}.txt", f"{name}-dir", secret)
    paths = [STATIC / made.hidden, STATIC / made.file_link, STATIC / made.dir_link]
    try:
        paths[0].write_bytes(secret)
        os.symlink(outside / "secret.txt", paths[1])
        os.symlink(outside, paths[2], target_is_directory=True)
        yield made
    finally:
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def traversals(planted: Planted) -> dict[str, str]:
    """Give each attack's request target, as it would appear on the request line."""
    return {
        "dot-dot": "/static/../main.py",
        "dot-dot twice": "/static/../../../../etc/passwd",
        "dot-dot after a folder": "/static/css/../../main.py",
        "encoded dots": "/static/%2e%2e/main.py",
        "encoded dots, upper case": "/static/%2E%2E/%2E%2E/etc/passwd",
        "double-encoded dots": "/static/%252e%252e/main.py",
        "encoded slash": "/static/..%2fmain.py",
        "encoded slash, upper case": "/static/css/..%2F..%2Fmain.py",
        "double-encoded slash": "/static/..%252fmain.py",
        "backslash": "/static/..\\main.py",
        "encoded backslash": "/static/..%5cmain.py",
        "backslashes in a folder": "/static/css\\..\\..\\main.py",
        "absolute path": "/static//etc/passwd",
        "encoded absolute path": "/static/%2fetc/passwd",
        "NUL before an extension": "/static/css/site.css%00.txt",
        "NUL at the end": "/static/css/site.css%00",
        "NUL alone": "/static/%00",
        "overlong UTF-8 dots": "/static/%c0%ae%c0%ae/main.py",
        "overlong UTF-8 slash": "/static/..%c0%afmain.py",
        "%u encoding": "/static/%u002e%u002e/main.py",
        "four dots": "/static/....//main.py",
        "a dot segment": "/static/./css/site.css",
        "a drive letter": "/static/C:/Windows/win.ini",
        "a drive letter, backslash": "/static/c:\\boot.ini",
        "trailing slash on a file": "/static/css/site.css/",
        "the folder": "/static/",
        "a sub-folder": "/static/css",
        "a sub-folder with slash": "/static/css/",
        "a hidden file": f"/static/{planted.hidden}",
        "a hidden file, reached through a folder": f"/static/css/../{planted.hidden}",
        "a link to a file outside": f"/static/{planted.file_link}",
        "a link to a folder outside": f"/static/{planted.dir_link}/secret.txt",
        "a link to a folder outside, itself": f"/static/{planted.dir_link}",
    }


def assert_reveals_nothing(body: bytes, planted: Planted) -> None:
    assert planted.secret not in body
    assert MAIN_PY[:60] not in body and b"cli_main" not in body
    assert b"root:" not in body and b"[boot loader]" not in body
    assert b"site.css" not in body and b"Index of" not in body


CASES = tuple(traversals(Planted("h", "f", "d", b"")))


def test_the_files_are_there_and_static_files_are_served(world_app: App, planted) -> None:
    """The control: the planted files exist, and a real static file is served."""
    assert (STATIC / planted.hidden).read_bytes() == planted.secret
    assert (STATIC / planted.file_link).read_bytes() == planted.secret
    assert (STATIC / planted.dir_link / "secret.txt").read_bytes() == planted.secret
    response = world_app.test_client().get("/static/css/site.css")
    assert response.status_code == 200


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_static_traversal_is_a_plain_404(world_app: App, planted, case: str, method: str) -> None:
    target = traversals(planted)[case]
    response = world_app.test_client().open(method, target, headers={"If-None-Match": "*"})
    assert response.status_code == 404, response.status_code
    assert_reveals_nothing(response.data, planted)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_gunicorn_sends_nothing_outside_static(live: Live, live_log, planted, case: str) -> None:
    target = traversals(planted)[case]
    response = live.raw(live.get_raw(target))
    # 400: gunicorn refused the request line itself (a backslash, say); it never got further.
    assert response.status in (404, 400), response.status
    assert_reveals_nothing(response.body, planted)
