"""View counts: 500 concurrent anonymous views of one post add exactly 500 to its count.

Anonymous pages come from each worker's page cache after the first render, and a view
is counted on a cache hit too, as one SQL increment; 32 readers (no cookies, so no
session) send 500 plain GETs between them, and the database, read before and after,
must show exactly 500 more.
"""

from __future__ import annotations

import threading

import pytest

from tests.reliability.support import (
    CONNECTION_ERRORS,
    Client,
    run_threads,
    scalar,
    server_trouble,
    summary,
    view_counts,
)

pytestmark = pytest.mark.slow

VIEWS = 500
READERS = 32


def test_concurrent_views_are_each_counted_once(blog) -> None:
    created = blog.admin.create_post(
        {"title": "Much read", "body": "Everyone reads this.", "status": "published"}
    )
    assert created.status == 303, created.form_errors
    slug = created.location.rsplit("/", 1)[-1]
    post_id = scalar(blog.url, "SELECT id FROM posts WHERE slug = :slug", slug=slug)
    before = view_counts(blog.url).get(post_id, 0)
    readers = [Client(blog.port) for _ in range(READERS)]
    numbers = iter(range(VIEWS))
    lock = threading.Lock()
    statuses: list[int | str] = []
    start = threading.Barrier(READERS)

    def read(client: Client) -> None:
        start.wait()
        while True:
            with lock:
                if next(numbers, None) is None:
                    return
            try:
                answer = client.get(f"/posts/{slug}")
                statuses.append(answer.status)
                assert "set-cookie" not in answer.headers, "an anonymous view got a session"
            except CONNECTION_ERRORS as error:
                statuses.append(f"{type(error).__name__}: {error}")

    run_threads([lambda c=c: read(c) for c in readers])
    after = view_counts(blog.url).get(post_id, 0)
    trouble = server_trouble(blog.stderr_text())
    summary(
        f"18 view counts [{blog.kind}]",
        requests=len(statuses),
        answered_200=statuses.count(200),
        before=before,
        after=after,
        counted=after - before,
        errors=len([s for s in statuses if s != 200]),
    )
    assert statuses == [200] * VIEWS, sorted(set(map(str, statuses)))
    assert after - before == VIEWS
    assert not trouble, "\n".join(trouble[:40])
