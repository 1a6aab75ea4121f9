"""Same slug at once: concurrent creations never share a slug and never get a 500.

Fifty clients create a post with the same title at the same instant (no slug given):
each is stored under its own slug (title, title-2, title-3...) or refused with a clean
422 form error on the slug. Then twenty clients ask for the same explicit slug at the
same instant: exactly one post is created, and the nineteen others are 422 with the
slug error beside the field.
"""

from __future__ import annotations

import pytest

from tests.reliability.support import (
    all_at_once,
    server_trouble,
    signed_in_clients,
    stored_posts,
    summary,
)

pytestmark = pytest.mark.slow

SAME_TITLE_CLIENTS = 50
SAME_SLUG_CLIENTS = 20
TITLE = "Everyone Writes This Title"
SLUG = "the-contested-slug"


def test_same_title_at_once_gives_distinct_slugs_or_clean_form_errors(blog) -> None:
    clients = signed_in_clients(blog.port, SAME_TITLE_CLIENTS)
    answers = all_at_once(
        SAME_TITLE_CLIENTS,
        lambda i: clients[i].create_post(
            {"title": TITLE, "body": f"Writer {i} was here.", "status": "published"}
        ),
    )
    created = [a.location.rsplit("/", 1)[-1] for a in answers if a.status == 303]
    refused = [a for a in answers if a.status == 422]
    stored = [post for post in stored_posts(blog.url) if post.title == TITLE]
    trouble = server_trouble(blog.stderr_text())
    summary(
        f"16a same title [{blog.kind}]",
        requests=len(answers),
        acknowledged=len(created),
        refused_422=len(refused),
        present=len(stored),
        distinct_slugs=len({p.slug for p in stored}),
        other=sorted(a.status for a in answers if a.status not in (303, 422)),
        slug_errors={a.form_errors.get("slug") for a in refused},
    )
    assert not [a.status for a in answers if a.status not in (303, 422)], trouble[:20]
    assert all(set(a.form_errors) == {"slug"} for a in refused), [a.form_errors for a in refused]
    assert len(set(created)) == len(created), sorted(created)
    assert sorted(created) == sorted(p.slug for p in stored)
    assert {p.body_md for p in stored} <= {
        f"Writer {i} was here." for i in range(SAME_TITLE_CLIENTS)
    }
    assert len({p.body_md for p in stored}) == len(stored)
    assert not trouble, "\n".join(trouble[:40])


def test_same_explicit_slug_at_once_is_given_to_exactly_one(blog) -> None:
    clients = signed_in_clients(blog.port, SAME_SLUG_CLIENTS)
    answers = all_at_once(
        SAME_SLUG_CLIENTS,
        lambda i: clients[i].create_post(
            {"title": f"Slug wanted by {i}", "body": f"Writer {i}.", "slug": SLUG}
        ),
    )
    statuses = sorted(a.status for a in answers)
    refused = [a for a in answers if a.status == 422]
    stored = [post for post in stored_posts(blog.url) if post.title.startswith("Slug wanted by")]
    trouble = server_trouble(blog.stderr_text())
    summary(
        f"16b same slug [{blog.kind}]",
        requests=len(answers),
        acknowledged=statuses.count(303),
        refused_422=len(refused),
        present=len(stored),
        slug_errors={a.form_errors.get("slug") for a in refused},
    )
    assert statuses == [303] + [422] * (SAME_SLUG_CLIENTS - 1), (statuses, trouble[:20])
    assert all(set(a.form_errors) == {"slug"} for a in refused), [a.form_errors for a in refused]
    winner = next(a for a in answers if a.status == 303)
    assert winner.location.endswith(f"/posts/{SLUG}")
    assert [p.slug for p in stored] == [SLUG]
    assert not trouble, "\n".join(trouble[:40])
