"""Hostile Markdown through the editor: no shape of text can hold a worker or break a page.

Every shape of tests/adversarial_markdown.py, at the largest body a post may have, is sent
through the real editor form. Each save is either kept (303, and its page then answers
200 with HTML within the size budget) or refused with a 422 that says why and gives the
text back as typed; never a 500, and always within the render time limit (plus the
request's own costs). How long each shape takes is reported by bench/render.py, not here.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from blog.conftest import Cast, field_error, make_blog_app, make_cast, write_post

from pyproject.blog.db import get_database
from pyproject.blog.editor import BODY_MAX
from pyproject.blog.markup import DEFAULT_LIMITS
from tests.adversarial_markdown import SHAPES

pytestmark = pytest.mark.slow

# The render time limit (5 s by default) plus the request's own work, on a busy machine.
REQUEST_SECONDS = 15


@pytest.fixture(scope="module")
def editors(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cast]:
    app = make_blog_app(tmp_path_factory.mktemp("render-shapes"))
    try:
        yield make_cast(app)
    finally:
        get_database(app).dispose()


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_each_hostile_shape_is_saved_or_refused_in_time(editors: Cast, shape: str) -> None:
    body = SHAPES[shape](BODY_MAX)
    assert len(body) <= BODY_MAX
    started = time.monotonic()
    response = write_post(editors.author, title=f"Shape {shape}", body=body, status="published")
    took = time.monotonic() - started
    assert response.status_code in (303, 422), f"{shape}: {response.status_code}"
    assert took < REQUEST_SECONDS, f"{shape} took {took:.1f} s"
    if response.status_code == 422:
        assert field_error(response, "body"), f"{shape}: refused without a reason"
        typed = response.html.select_one('textarea[name="body"]').get_text()
        assert typed in (body, body.removeprefix("\n")), f"{shape}: the text came back changed"
        return
    page = editors.anonymous.get(response.location)
    assert page.status_code == 200
    assert len(page.data) < DEFAULT_LIMITS.html_max + 200_000, f"{shape}: page too large"
    assert "<script" not in page.html.select_one(".post-body").decode()
