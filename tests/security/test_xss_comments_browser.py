"""XSS through comments in a real browser (#18): a post whose comments are corpus payloads,
served by gunicorn, runs no script in Chromium, with the site's CSP and with CSP bypassed.

The comments are stored as the form stores them (comments.render_comment on the body, the
name and website as typed), approved, and their pages loaded with the recorder of
test_xss_browser.py; the writer's own view (held comment, edit page) is loaded too.
"""

from __future__ import annotations

from typing import Any

import pytest
from blog.conftest import slug_of, write_post
from sqlalchemy import select

from pyproject.blog import comments
from pyproject.blog.db import get_database
from pyproject.blog.models import Comment, Post

from .checks import CORPUS_FILE, CORPUS_MISSING, chunked, load_corpus, pack
from .live import Live
from .test_xss_browser import RECORDER, load
from .test_xss_comments import in_comment, website_of

pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.skipif(not CORPUS_FILE.is_file(), reason=CORPUS_MISSING),
]

COMMENTS = 120  # 2 or 3 pages of threads
PER_COMMENT = 10


@pytest.fixture(scope="module")
def commented(live: Live) -> tuple[str, int]:
    """Give the slug of a post under hostile comments, and the number of comment pages."""
    payloads = load_corpus()
    sample = payloads[:: max(1, len(payloads) // (COMMENTS * PER_COMMENT))]
    app, admin = live.world.app, live.world.clients["admin"]
    slug = slug_of(write_post(admin, title="Hostile comments", body="Answer me."))
    with get_database(app).write() as db:
        post_id = db.scalar(select(Post.id).where(Post.slug == slug))
        parent = None
        for i, chunk in enumerate(chunked(sample, PER_COMMENT)[:COMMENTS]):
            body = in_comment(chunk)
            comment = Comment(
                post_id=post_id,
                parent_id=parent if i % 3 == 2 else None,
                name=pack(chunk, comments.MAX_NAME),
                website=website_of(chunk),
                body_md=body,
                body_html=comments.render_comment(body),
                state="approved",
            )
            db.add(comment)
            db.flush()
            parent = comment.id
    pages = -(-sum(1 for i in range(COMMENTS) if i % 3 != 2) // comments.PER_PAGE)
    return slug, pages


@pytest.mark.parametrize("bypass_csp", [False, True], ids=["CSP enforced", "CSP bypassed"])
def test_chromium_runs_no_comment_payload(
    browser: Any, live: Live, commented: tuple[str, int], bypass_csp: bool
) -> None:
    slug, pages = commented
    base = live.base_url
    context = browser.new_context(bypass_csp=bypass_csp, java_script_enabled=True)
    problems: list[str] = []
    try:
        context.add_init_script(RECORDER)
        page = context.new_page()
        page.on("dialog", lambda d: (problems.append(f"a {d.type} dialog"), d.dismiss()))
        page.on("pageerror", lambda error: problems.append(f"uncaught: {str(error)[:120]}"))
        paths = [
            f"/posts/{slug}",
            *(f"/posts/{slug}/comments/older?page={n}" for n in range(1, pages + 1)),
        ]
        for path in paths:
            problems.extend(load(page, base + path))
    finally:
        context.close()
    assert not problems, "\n".join(problems[:20])
