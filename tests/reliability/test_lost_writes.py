"""No lost writes: 1,000 post creations from 32 concurrent clients, all stored exactly once.

Thirty-two signed-in clients (one session each) share a queue of 1,000 creations; each
post carries a unique marker in its title and body. Afterwards the database is read
directly: every creation answered 303 is there exactly once and whole, nothing else is
there, no request got a 5xx, the server never logged "database is locked", and SQLite's
integrity check passes.

The load uses tags that exist before it starts; a second test has posts that name a tag
no post has yet arrive at the same instant, and every one of them must be accepted.
"""

from __future__ import annotations

import pytest

from tests.reliability.support import (
    account_for,
    all_at_once,
    seed_tags,
    server_trouble,
    signed_in_clients,
    sqlite_integrity,
    stored_posts,
    summary,
)
from tests.reliability.support import create_posts as run_creations

pytestmark = pytest.mark.slow

POSTS = 1000
CLIENTS = 32


def test_every_acknowledged_creation_is_stored_exactly_once(blog) -> None:
    seeds = seed_tags(blog.admin, CLIENTS)
    clients = signed_in_clients(blog.port, CLIENTS)

    tally = run_creations(clients, POSTS)

    report = account_for(tally.writes, stored_posts(blog.url), ignore=seeds)
    trouble = server_trouble(blog.stderr_text())
    integrity = sqlite_integrity(blog.url) if blog.kind == "sqlite" else "n/a"
    summary(
        f"14 lost writes [{blog.kind}]",
        requests=report["requests"],
        acknowledged=report["acknowledged"],
        present=report["present"],
        statuses=dict(tally.statuses),
        lost=len(report["lost"]),
        duplicated=len(report["duplicated"]),
        broken=len(report["broken"]),
        strangers=len(report["strangers"]),
        integrity=integrity,
        stderr_trouble=len(trouble),
        seconds=round(tally.seconds, 1),
    )
    refused = [(w.marker, w.status, w.form_errors) for w in tally.writes if w.status != 303]
    assert not tally.unanswered, [w.error for w in tally.unanswered][:5]
    assert not tally.server_errors, "\n".join(trouble[:40])
    assert not [line for line in trouble if "database is locked" in line], trouble[:20]
    assert not refused, f"{len(refused)} creations were refused: {refused[:5]}"
    assert not report["lost"], f"acknowledged but missing: {report['lost'][:20]}"
    assert not report["duplicated"], f"stored more than once: {report['duplicated'][:20]}"
    assert not report["broken"], dict(list(report["broken"].items())[:10])
    assert not report["strangers"], report["strangers"][:20]
    assert report["present"] == report["acknowledged"] == POSTS
    assert integrity in ("ok", "n/a"), integrity
    assert not trouble, "\n".join(trouble[:40])


TAG_RACE_CLIENTS = 16
TAG_RACE_ROUNDS = 4


@pytest.mark.parametrize(
    "blog",
    [
        "sqlite",
        pytest.param(
            "postgres",
            marks=[
                pytest.mark.postgres,
            ],
        ),
    ],
    indirect=True,
)
def test_posts_created_at_once_with_a_new_tag_are_all_accepted(blog) -> None:
    # Each round, sixteen posts naming the same brand-new tag are released together.
    clients = signed_in_clients(blog.port, TAG_RACE_CLIENTS)
    answers = []
    for round_number in range(TAG_RACE_ROUNDS):
        answers += all_at_once(
            TAG_RACE_CLIENTS,
            lambda i, r=round_number: clients[i].create_post(
                {
                    "title": f"New tag round {r} by {i}",
                    "body": "Many posts, one new tag.",
                    "tags": f"fresh-{r}",
                    "status": "published",
                }
            ),
        )
    refused = [(a.status, a.form_errors) for a in answers if a.status != 303]
    tagged = [p for p in stored_posts(blog.url) if any(t.startswith("fresh-") for t in p.tag_slugs)]
    summary(
        f"14b new tag race [{blog.kind}]",
        requests=len(answers),
        acknowledged=len(answers) - len(refused),
        refused=len(refused),
        examples=refused[:2],
    )
    assert not refused, f"{len(refused)} of {len(answers)} refused: {refused[:3]}"
    assert len(tagged) == TAG_RACE_ROUNDS * TAG_RACE_CLIENTS
