"""The render helper process: what it answers, and how it recovers when it is gone."""

from __future__ import annotations

import os
import signal
import time

import pytest

from pyproject.blog.markup import RenderLimits, RenderRefused, render_markdown
from pyproject.blog.rendering import (
    HIGHLIGHT_SECONDS,
    Renderer,
    RenderTimeout,
    rendered_from_json,
    rendered_to_json,
)
from tests.adversarial_markdown import SHAPES

SAMPLE = "# Title\n\nSome *text* with a [link](https://example.org).\n\n```python\nx = 1\n```\n"


@pytest.fixture
def renderer() -> Renderer:
    helper = Renderer(time_limit=10)
    yield helper
    helper.close()


def test_the_helper_renders_exactly_what_the_worker_would(renderer: Renderer) -> None:
    assert renderer.render(SAMPLE) == render_markdown(SAMPLE)


def test_a_rendering_survives_the_wire_unchanged() -> None:
    rendered = render_markdown(SAMPLE)
    assert rendered_from_json(rendered_to_json(rendered)) == rendered


def test_budgets_travel_to_the_helper_and_refusals_come_back(renderer: Renderer) -> None:
    with pytest.raises(RenderRefused) as refused:
        renderer.render("# a\n\n# b\n\n# c\n", RenderLimits(headings=2))
    assert refused.value.what == "headings"
    assert "at most 2" in refused.value.message


def test_a_helper_that_died_is_replaced_on_the_next_render(renderer: Renderer) -> None:
    renderer.render("warm")
    first = renderer.helper_pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    time.sleep(0.1)
    assert renderer.render("Hello.").html == "<p>Hello.</p>"
    assert renderer.helper_pid not in (None, first)


def test_a_render_past_the_limit_kills_the_helper_within_the_limit() -> None:
    hurried = Renderer(time_limit=0.05)
    try:
        hurried.render("warm")
        first = hurried.helper_pid
        slow = "".join(f"Part {n}: [a](/{n}) *b* `c`\n\n" for n in range(1500))
        started = time.monotonic()
        with pytest.raises(RenderTimeout):
            hurried.render(slow)
        assert time.monotonic() - started < 2
        assert hurried.helper_pid is None
        with pytest.raises(ProcessLookupError):
            os.kill(first, 0)
        assert hurried.render("Fine.").html == "<p>Fine.</p>"
    finally:
        hurried.close()


def test_code_a_lexer_cannot_colour_in_time_is_shown_plain(renderer: Renderer) -> None:
    # Pygments' Scala lexer takes seconds (exponential time) on a few dozen backslashes.
    text = "Before.\n\n" + SHAPES["scala_backslashes"](200) + "\n\nAfter."
    started = time.monotonic()
    rendered = renderer.render(text)
    assert time.monotonic() - started < HIGHLIGHT_SECONDS + 3
    assert "codehilite" not in rendered.html
    assert "<pre><code" in rendered.html and "After." in rendered.html
    assert "codehilite" in renderer.render("```python\nx = 1\n```").html


def test_a_time_limit_of_zero_renders_in_this_process() -> None:
    in_process = Renderer(time_limit=0)
    assert in_process.render(SAMPLE) == render_markdown(SAMPLE)
    assert in_process.helper_pid is None


def test_a_process_with_many_open_files_still_renders() -> None:
    """Descriptors past 1023 (a busy worker, a long test run) once made every start fail:
    select() refuses them. The helper's pipes are waited on with poll()."""
    import resource

    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        pytest.skip(f"this process may open only {soft} files")
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    renderer = Renderer(time_limit=5.0)
    try:
        assert renderer.render("Hello *there*.").html == "<p>Hello <em>there</em>.</p>"
    finally:
        renderer.close()
        for fd in held:
            os.close(fd)
