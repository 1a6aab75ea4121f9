"""Two instances of the site, each a real gunicorn with its real job worker, on two loopback
ports, sending each other Webmentions when their authors publish (OUTGOING_ALLOW_LOOPBACK=1).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, VENV_BIN, ServerHandle
from tests.e2e.test_new_user_walk import Page, Visitor

PASSWORD = "a long and lovely passphrase"


@pytest.fixture
def start_worker() -> Iterator[Callable[[ServerHandle], subprocess.Popen[bytes]]]:
    """Start `python main.py worker` beside a server, with its settings; stop it after."""
    started: list[subprocess.Popen[bytes]] = []

    def start(server: ServerHandle) -> subprocess.Popen[bytes]:
        log = open(Path(server.env["INSTANCE_PATH"]) / "worker.log", "wb")  # noqa: SIM115 (closed with the process)
        process = subprocess.Popen(
            [str(VENV_BIN / "python"), "main.py", "worker"],
            cwd=ROOT,
            env=server.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)


def site(factory: Callable[..., ServerHandle], folder: Path) -> ServerHandle:
    folder.mkdir(parents=True, exist_ok=True)
    return factory(
        {
            "OUTGOING_ALLOW_LOOPBACK": "true",
            "OUTGOING_TIMEOUT": 5,
            "JOB_RETRY_SECONDS": 1,
            "LOG_LEVEL": "INFO",
            # Each site its own queue (beside its own database), as two hosts would have.
            "INSTANCE_PATH": str(folder),
        }
    )


def set_up(server: ServerHandle, name: str) -> Visitor:
    author = Visitor(server.url)
    author.submit(
        author.open("/setup"),
        "main form",
        username=name.lower(),
        email=f"{name.lower()}@example.com",
        display_name=name,
        password=PASSWORD,
        confirm=PASSWORD,
    )
    return author


def publish(author: Visitor, title: str, body: str) -> Page:
    page = author.submit(
        author.open("/posts/new"), "#post-form", title=title, body=body, status="published"
    )
    assert page.status == 200 and "/posts/" in page.url, page.text[:500]
    return page


def state_of(*servers: ServerHandle) -> str:
    """Give the jobs and mentions each site holds and its worker's log (for a failure)."""
    import sqlite3

    text = []
    for server in servers:
        database = sqlite3.connect(server.data_dir / "e2e.sqlite3")
        for table in ("jobs", "mentions", "sent_mentions", "posts"):
            text.append(
                f"{server.url} {table}: {database.execute(f'SELECT * FROM {table}').fetchall()}"
            )
        database.close()
        text.append((Path(server.env["INSTANCE_PATH"]) / "worker.log").read_text())
    return "\n".join(text)


def mentioned_by(server: ServerHandle, path: str, timeout: float = 40.0) -> list[tuple[str, str]]:
    """Wait until a post lists a mention; give (name, link) of each listed."""
    reader = Visitor(server.url)
    deadline = time.monotonic() + timeout
    while True:
        page = reader.open(path)
        found = [(a.text, a["href"]) for a in page.html.select("#mentions a.mention")]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.25)


def test_two_sites_mention_each_other_on_publish(
    gunicorn_factory: Callable[..., ServerHandle],
    start_worker: Callable[[ServerHandle], subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    alpha = site(gunicorn_factory, tmp_path / "alpha")
    beta = site(gunicorn_factory, tmp_path / "beta")
    for server in (alpha, beta):
        start_worker(server)
    ada, bo = set_up(alpha, "Ada"), set_up(beta, "Bob")

    # Bo writes first; Ada answers with a link: Bo's site hears of it.
    bo_post = publish(bo, "Bo's thoughts", "Something worth answering.")
    ada_post = publish(ada, "Answering Bo", f"I read [Bo's post]({bo_post.url}) and agree.")
    assert ada_post.html.select_one('link[rel="webmention"]')["href"] == f"{alpha.url}/webmention"
    bo_path = bo_post.url.removeprefix(beta.url)
    assert mentioned_by(beta, bo_path) == [("Ada", ada_post.url)], state_of(alpha, beta)

    # Bo edits his post to link back: Ada's site hears of it in turn.
    edit = bo.open(f"{bo_path}/edit")
    bo.submit(edit, "#post-form", body=f"Something worth answering. Ada [agrees]({ada_post.url}).")
    ada_path = ada_post.url.removeprefix(alpha.url)
    assert mentioned_by(alpha, ada_path) == [("Bob", bo_post.url)], state_of(alpha, beta)
    # Bo's edit told Ada's post once; Ada's post is unchanged, so Bo is not told again.
    assert mentioned_by(beta, bo_path) == [("Ada", ada_post.url)]
