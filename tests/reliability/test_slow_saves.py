"""No save slows a reader: while an author's save renders for seconds, readers are answered at
once and every view is counted.

A real gunicorn (three sync workers) on SQLite, then on PostgreSQL, with the render budgets
raised so that one save of 25,000 small links deliberately takes seconds to render. While it
renders (in the worker's render helper, before its write transaction begins), twenty
anonymous readers fetch a post one after another: each answer must come in under a second
(a reader held behind the save would wait its whole ~10 s; the time itself is reported, and
a busy two-core machine running other tests beside this one has shown 0.6 s once),
the save must still be rendering when the last one is answered (else the test proves
nothing), and afterwards the post's count must have grown by exactly twenty.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_URL, _postgres_reason, reset_postgres
from tests.e2e.conftest import start_gunicorn
from tests.reliability.support import Client, scalar, set_up_admin, summary, view_counts

pytestmark = pytest.mark.slow

READS = 20
READ_LIMIT = 1.0  # far below the save's seconds: a stall, not a slow machine
# Budgets lifted so that a save can be slow on purpose; the time limit is well past it.
SLOW_SETTINGS = {
    "MARKDOWN_MAX_INLINE_MARKS": 1_000_000,
    "MARKDOWN_MAX_HTML_ELEMENTS": 1_000_000,
    "MARKDOWN_MAX_HTML_RATIO": 1000,
    "MARKDOWN_MAX_HTML_KB": 100_000,
    "RENDER_TIME_LIMIT_MS": 25_000,
}


def slow_body() -> str:
    """Give about 150,000 characters of links: sanitising them takes seconds."""
    paragraph = " ".join(f"[w](/{n % 10})" for n in range(50)) + "\n\n"
    return paragraph * (150_000 // len(paragraph))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        reason = _postgres_reason()
        if reason:
            pytest.skip(reason)
        reset_postgres()
        return POSTGRES_URL
    return f"sqlite:///{tmp_path / 'slow-saves.sqlite3'}"


def test_readers_are_answered_and_counted_while_a_save_renders(
    database_url: str, tmp_path: Path
) -> None:
    server = start_gunicorn({"DATABASE_URL": database_url, **SLOW_SETTINGS}, 3, data_dir=tmp_path)
    try:
        admin = set_up_admin(server.port)
        created = admin.create_post(
            {"title": "Read while saving", "body": "Readers read this.", "status": "published"}
        )
        assert created.status == 303
        slug = created.location.rsplit("/", 1)[-1]
        post_id = scalar(database_url, "SELECT id FROM posts WHERE slug = :s", s=slug)
        for _ in range(10):  # every worker has compiled its templates and kept the page
            assert Client(server.port).get(f"/posts/{slug}").status == 200
        before = view_counts(database_url).get(post_id, 0)

        saving: dict[str, float | int] = {}

        def save() -> None:
            saving["start"] = time.monotonic()
            answer = admin.create_post({"title": "Slow", "body": slow_body(), "status": "draft"})
            saving["end"], saving["status"] = time.monotonic(), answer.status

        saver = threading.Thread(target=save)
        saver.start()
        time.sleep(0.5)  # the save is in its worker, rendering
        times = []
        for _ in range(READS):
            reader = Client(server.port)
            started = time.monotonic()
            answer = reader.get(f"/posts/{slug}")
            times.append(time.monotonic() - started)
            assert answer.status == 200
            reader.close()
        last_read = time.monotonic()
        saver.join(60)
        after = view_counts(database_url).get(post_id, 0)
        summary(
            "slow save",
            save_seconds=round(saving["end"] - saving["start"], 2),
            slowest_read_ms=round(max(times) * 1000, 1),
            counted=after - before,
        )
        assert saving["status"] == 303
        assert saving["end"] > last_read, "the save ended before the reads: make it slower"
        assert max(times) < READ_LIMIT, [round(t, 3) for t in times]
        assert after - before == READS
    finally:
        server.stop()
