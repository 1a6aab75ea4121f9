"""Crashes: workers killed under load, and once the whole server, lose no acknowledged post.

Sixteen clients create 400 posts while a random worker is killed (SIGKILL) every second
and a half (a new worker imports the app, ~1.5 s of CPU: killing faster than that on two
cores leaves the machine doing nothing but starting workers); half-way through, the master
and all its workers are killed at once and gunicorn
is started again on the same port and database. A creation that got no answer is sent
again as a new attempt with a new marker. Afterwards every acknowledged attempt (303)
is in the database exactly once and whole (title, Markdown, HTML, tags, a 'save'
revision); an attempt that got no answer may be there or not, but whole if there.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import pytest

from tests.reliability.support import (
    Tally,
    account_for,
    create_posts,
    seed_tags,
    server_trouble,
    signed_in_clients,
    sqlite_integrity,
    stored_posts,
    summary,
)

pytestmark = pytest.mark.slow

POSTS = 400
CLIENTS = 16
KILL_EVERY = 1.5
RETRY_FOR = 60.0


def test_acknowledged_posts_survive_killed_workers_and_a_killed_server(blog) -> None:
    seeds = seed_tags(blog.admin, CLIENTS)
    clients = signed_in_clients(blog.port, CLIENTS)
    stop = threading.Event()
    chaos: dict[str, object] = {"worker_kills": 0, "server_kills": 0, "restart_seconds": 0.0}
    tally = Tally()

    def kill_things() -> None:
        try:
            wreak_havoc()
        except BaseException as error:  # reported by the test, not lost in the thread
            chaos["error"] = repr(error)

    def wreak_havoc() -> None:
        rng = random.Random(15)
        while not stop.wait(KILL_EVERY):
            if not chaos["server_kills"] and tally.done >= POSTS // 2:
                started = time.monotonic()
                blog.kill()
                chaos["server_kills"] += 1
                blog.restart()
                chaos["restart_seconds"] = round(time.monotonic() - started, 1)
                continue
            workers = blog.server.worker_pids()
            if workers:
                try:
                    os.kill(rng.choice(workers), signal.SIGKILL)
                    chaos["worker_kills"] += 1
                except ProcessLookupError:
                    pass

    killer = threading.Thread(target=kill_things, daemon=True)
    killer.start()
    try:
        create_posts(clients, POSTS, retry_for=RETRY_FOR, tally=tally)
    finally:
        stop.set()
        killer.join(30)

    report = account_for(tally.writes, stored_posts(blog.url), ignore=seeds)
    trouble = [
        line
        for line in server_trouble(blog.stderr_text())
        # What gunicorn says when a worker is killed is the test's doing, not a failure.
        if "was sent SIGKILL" not in line and "was sent code" not in line
    ]
    integrity = sqlite_integrity(blog.url) if blog.kind == "sqlite" else "n/a"
    summary(
        f"15 crashes [{blog.kind}]",
        posts=POSTS,
        requests=report["requests"],
        acknowledged=report["acknowledged"],
        present=report["present"],
        unanswered=len(tally.unanswered),
        unanswered_but_stored=len(report["unacknowledged_present"]),
        statuses=dict(tally.statuses),
        lost=len(report["lost"]),
        duplicated=len(report["duplicated"]),
        broken=len(report["broken"]),
        strangers=len(report["strangers"]),
        integrity=integrity,
        stderr_trouble=len(trouble),
        seconds=round(tally.seconds, 1),
        **chaos,
    )
    assert "error" not in chaos, chaos
    assert chaos["server_kills"] == 1, chaos
    assert chaos["worker_kills"] >= 2, chaos
    assert tally.done == POSTS
    assert not tally.server_errors, "\n".join(trouble[:40])
    refused = [(w.marker, w.status, w.form_errors) for w in tally.writes if w.status == 422]
    assert not refused, refused[:5]
    assert not report["lost"], f"acknowledged but missing: {report['lost'][:20]}"
    assert not report["duplicated"], f"stored more than once: {report['duplicated'][:20]}"
    assert not report["broken"], dict(list(report["broken"].items())[:10])
    assert not report["strangers"], report["strangers"][:20]
    assert report["present"] == report["acknowledged"] + len(report["unacknowledged_present"])
    assert integrity in ("ok", "n/a"), integrity
    assert not [line for line in trouble if "database is locked" in line], trouble[:20]
