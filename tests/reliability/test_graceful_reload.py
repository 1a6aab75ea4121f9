"""Graceful reload: SIGHUP to the master under load costs no request and no write.

For about five seconds three signed-in clients create posts and three anonymous readers
(and one signed-in one) read pages; half-way through, the master gets SIGHUP, starts new
workers and lets the old ones finish what they are doing. Every request is answered,
none with a 5xx, every acknowledged post is stored exactly once, and afterwards none of
the old workers is left.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.reliability.support import (
    CONNECTION_ERRORS,
    Client,
    Tally,
    account_for,
    create_posts,
    run_threads,
    seed_tags,
    server_trouble,
    signed_in_clients,
    stored_posts,
    summary,
)

pytestmark = pytest.mark.slow

LOAD_SECONDS = 5.0
WRITERS = 3
READERS = 3
READ_PATHS = ("/", "/posts", "/tags", "/posts/{slug}")


def test_sighup_under_load_loses_no_request_and_no_write(blog) -> None:
    seeds = seed_tags(blog.admin, WRITERS)
    writers = signed_in_clients(blog.port, WRITERS)
    dashboard = signed_in_clients(blog.port, 1)[0]
    readers = [Client(blog.port) for _ in range(READERS)]
    paths = [path.format(slug=seeds[0]) for path in READ_PATHS]
    old_workers = set(blog.server.worker_pids())
    done = threading.Event()
    reads: list[tuple[str, int | str, float]] = []
    tally = Tally()

    def read(client: Client, signed_in: bool) -> None:
        number = 0
        while not done.is_set():
            path = "/drafts" if signed_in else paths[number % len(paths)]
            number += 1
            started = time.monotonic()
            try:
                status: int | str = client.get(path).status
            except CONNECTION_ERRORS as error:
                status = f"{type(error).__name__}: {error}"
            reads.append((path, status, time.monotonic() - started))

    def write() -> None:
        try:
            create_posts(writers, seconds=LOAD_SECONDS, tally=tally)
        finally:
            done.set()

    def reload() -> None:
        time.sleep(LOAD_SECONDS / 2)
        blog.reload()

    run_threads(
        [write, reload, lambda: read(dashboard, True)]
        + [lambda c=c: read(c, False) for c in readers]
    )
    new_workers = _settled_workers(blog, old_workers)
    report = account_for(tally.writes, stored_posts(blog.url), ignore=seeds)
    trouble = server_trouble(blog.stderr_text())
    failed_reads = [r[:2] for r in reads if r[1] != 200]
    summary(
        f"17 graceful reload [{blog.kind}]",
        requests=len(reads) + report["requests"],
        reads=len(reads),
        failed_reads=len(failed_reads),
        writes=report["requests"],
        acknowledged=report["acknowledged"],
        present=report["present"],
        statuses=dict(tally.statuses),
        connection_errors=len(tally.unanswered)
        + sum(1 for r in reads if not isinstance(r[1], int)),
        slowest_read=round(max(r[2] for r in reads), 2),
        slowest_write=round(max(w.seconds for w in tally.writes), 2),
        old_workers=sorted(old_workers),
        new_workers=sorted(new_workers),
    )
    assert not tally.unanswered, [w.error for w in tally.unanswered][:5]
    assert not failed_reads, failed_reads[:10]
    assert not [w for w in tally.writes if w.status != 303], [
        (w.status, w.form_errors) for w in tally.writes if w.status != 303
    ][:5]
    assert not report["lost"], report["lost"][:20]
    assert not report["duplicated"], report["duplicated"][:20]
    assert not report["broken"], dict(list(report["broken"].items())[:10])
    assert report["present"] == report["acknowledged"] > 0
    assert new_workers and not new_workers & old_workers, (old_workers, new_workers)
    assert not trouble, "\n".join(trouble[:40])


def _settled_workers(blog, old: set[int], timeout: float = 30.0) -> set[int]:
    """Give the workers once the reload is over: no old worker left, four new ones up."""
    deadline = time.monotonic() + timeout
    while True:
        workers = set(blog.server.worker_pids())
        if (not workers & old and len(workers) == len(old)) or time.monotonic() > deadline:
            return workers
        time.sleep(0.1)
