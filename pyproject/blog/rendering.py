"""Rendering posts in a helper process with a time limit, so no post can hold a worker.

The budgets in :mod:`pyproject.blog.markup` keep every known costly shape of Markdown cheap; this
is the last line behind them. Each worker process keeps one helper (a Python process
running :func:`main`) and sends it the Markdown over a pipe. A render that is not done
within the limit has its helper killed, the request gets a clear answer, and the next
render starts a fresh helper. The helper imports the Markdown pipeline once and warms its
highlighter, so a render costs what it would in process plus a few hundred microseconds.

Messages are JSON, each preceded by its length as 4 big-endian bytes.
"""

from __future__ import annotations

import atexit
import dataclasses
import json
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from pyproject.blog.markup import (
    DEFAULT_LIMITS,
    Heading,
    Rendered,
    RenderLimits,
    RenderRefused,
    fenced_code_length,
    render_markdown,
)
from pyproject.lib import App, current_app

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
# Starting the helper (a Python process importing Markdown, Pygments and bleach) is not
# part of any render's time.
START_TIMEOUT = 60.0
_LENGTH = struct.Struct(">I")


class RenderTimeout(Exception):
    """A render ran past its time limit (or its helper died); nothing was rendered."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"Rendering this text took longer than {seconds:g} seconds, so it was stopped."
        )
        self.seconds = seconds


class Renderer:
    """Renders Markdown in a helper process, one render at a time, within `time_limit` seconds.

    A `time_limit` of 0 renders in this process, with no limit (for commands run by hand).
    """

    def __init__(self, time_limit: float) -> None:
        self.time_limit = time_limit
        self._lock = threading.Lock()
        self._helper: subprocess.Popen[bytes] | None = None
        self._owner = 0  # the pid that started the helper (a forked worker needs its own)

    def render(
        self, text: str, limits: RenderLimits = DEFAULT_LIMITS, images: dict | None = None
    ) -> Rendered:
        """Give the rendering of `text`; RenderRefused past a budget, RenderTimeout past time.

        `images` describes the pictures of ours the text shows (see markup.render_markdown).
        """
        if self.time_limit <= 0:
            return render_markdown(text, limits, images)
        if not self._lock.acquire(timeout=self.time_limit):
            raise RenderTimeout(self.time_limit)
        try:
            return self._render_locked(text, limits, images or {})
        finally:
            self._lock.release()

    def _render_locked(self, text: str, limits: RenderLimits, images: dict) -> Rendered:
        request = {"text": text, "limits": dataclasses.asdict(limits), "images": images}
        helper = self._running_helper()
        deadline = time.monotonic() + self.time_limit
        try:
            _write_message(helper.stdin, request)
            answer = _read_message(helper.stdout, deadline)
        except (OSError, ValueError, TimeoutError) as error:
            # Killed for taking too long, or gone on its own: either way, start afresh.
            log.warning("render helper stopped (%s): %s", type(error).__name__, error)
            self.close()
            raise RenderTimeout(self.time_limit) from None
        if "refused" in answer:
            raise RenderRefused(*answer["refused"])
        if "error" in answer:
            raise RuntimeError(f"the render helper failed: {answer['error']}")
        return rendered_from_json(answer["rendered"])

    def _running_helper(self) -> subprocess.Popen[bytes]:
        helper = self._helper
        if helper is not None and self._owner == os.getpid() and helper.poll() is None:
            return helper
        self._helper = None
        # A second try: a helper that dies as it starts (a loaded machine, a signal) must
        # not cost an author their save; two in a row is a real fault.
        for attempt in (1, 2):
            helper = self._start_helper()
            if helper is not None:
                return helper
            log.warning("the render helper exited as it started (try %d of 2)", attempt)
        raise RuntimeError("the render helper did not start")

    def _start_helper(self) -> subprocess.Popen[bytes] | None:
        """Start a helper and wait for its "ready"; give it, or None if it did not come up."""
        paths = [str(ROOT), os.environ.get("PYTHONPATH", "")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, paths))}
        helper = subprocess.Popen(
            [sys.executable, "-c", "from pyproject.blog.rendering import main; main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=str(ROOT),
            env=env,
        )
        self._helper, self._owner = helper, os.getpid()
        try:
            ready = _read_message(helper.stdout, time.monotonic() + START_TIMEOUT)
        except (OSError, ValueError, TimeoutError):
            ready = {}
        if ready.get("ready") is not True:
            self.close()
            return None
        return helper

    @property
    def helper_pid(self) -> int | None:
        """Give the process id of this process's running helper, if there is one."""
        helper = self._helper
        if helper is None or self._owner != os.getpid() or helper.poll() is not None:
            return None
        return helper.pid

    def close(self) -> None:
        """Stop this process's helper, if it has one (the next render starts another)."""
        helper, self._helper = self._helper, None
        if helper is None or self._owner != os.getpid():
            return
        helper.kill()
        helper.wait()
        for stream in (helper.stdin, helper.stdout):
            if stream is not None:
                stream.close()


_renderers: dict[float, Renderer] = {}
_renderers_lock = threading.Lock()


def get_renderer(time_limit: float) -> Renderer:
    """Give this process's renderer for a time limit (one helper per process, not per app)."""
    with _renderers_lock:
        renderer = _renderers.get(time_limit)
        if renderer is None:
            renderer = _renderers[time_limit] = Renderer(time_limit)
        return renderer


def limits_from_config(config: dict[str, Any]) -> RenderLimits:
    """Give the render budgets the settings ask for."""
    return dataclasses.replace(
        DEFAULT_LIMITS,
        headings=config["MARKDOWN_MAX_HEADINGS"],
        depth=config["MARKDOWN_MAX_DEPTH"],
        table_cells=config["MARKDOWN_MAX_TABLE_CELLS"],
        code_blocks=config["MARKDOWN_MAX_CODE_BLOCKS"],
        rules=config["MARKDOWN_MAX_RULES"],
        attributes=config["MARKDOWN_MAX_ATTRIBUTES"],
        abbreviations=config["MARKDOWN_MAX_ABBREVIATIONS"],
        footnotes=config["MARKDOWN_MAX_FOOTNOTES"],
        inline_marks=config["MARKDOWN_MAX_INLINE_MARKS"],
        html_elements=config["MARKDOWN_MAX_HTML_ELEMENTS"],
        html_ratio=config["MARKDOWN_MAX_HTML_RATIO"],
        html_max=config["MARKDOWN_MAX_HTML_KB"] * 1024,
        highlighted_code=config["MARKDOWN_HIGHLIGHT_MAX"],
    )


def init_app(app: App) -> None:
    """Give the app its renderer and budgets, from the settings."""
    app.extensions["renderer"] = get_renderer(app.config["RENDER_TIME_LIMIT_MS"] / 1000)
    app.extensions["render_limits"] = limits_from_config(app.config)


def render_post(text: str, app: App | None = None) -> Rendered:
    """Give the rendering of a post's Markdown within the app's budgets and time limit.

    Raises RenderRefused (a budget) or RenderTimeout (the time limit): both mean the text
    cannot be saved as it is, and the message says why. `app` defaults to the current one.
    The pictures of ours the text shows are looked up first by the app's "image_lookup"
    (the media area's), so they render with their sizes and variants.
    """
    app = app or current_app()
    lookup = app.extensions.get("image_lookup")
    images = lookup(app, text) if lookup is not None else None
    limits = app.extensions["render_limits"]
    if smart_punctuation(app):
        limits = dataclasses.replace(limits, smart_punctuation=True)
    return app.extensions["renderer"].render(text, limits, images)


def smart_punctuation(app: App) -> bool:
    """Give whether the site asks for curly quotes and dashes (#23), off if unknown."""
    from pyproject.blog.settings import site_settings  # (settings reads the database)

    return site_settings(app).smart_punctuation


@atexit.register
def _close_all() -> None:
    for renderer in list(_renderers.values()):
        renderer.close()


# --- the wire ------------------------------------------------------------------------------


def rendered_to_json(rendered: Rendered) -> dict[str, Any]:
    """Give a Rendered as plain JSON values."""
    return dataclasses.asdict(rendered)


def rendered_from_json(data: dict[str, Any]) -> Rendered:
    """Give the Rendered that rendered_to_json made these values from."""
    headings = tuple(Heading(*heading) for heading in data.pop("headings"))
    return Rendered(headings=headings, **data)


def _write_message(stream: IO[bytes] | None, message: dict[str, Any]) -> None:
    if stream is None:
        raise OSError("no pipe to the helper")
    payload = json.dumps(message).encode()
    stream.write(_LENGTH.pack(len(payload)) + payload)
    stream.flush()


def _read_message(stream: IO[bytes] | None, deadline: float) -> dict[str, Any]:
    """Read one message, raising TimeoutError if it is not all there by `deadline`."""
    if stream is None:
        raise OSError("no pipe from the helper")
    fd = stream.fileno()
    header = _read_exactly(fd, _LENGTH.size, deadline)
    (length,) = _LENGTH.unpack(header)
    return json.loads(_read_exactly(fd, length, deadline))


def _read_exactly(fd: int, size: int, deadline: float) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        wait = deadline - time.monotonic()
        if wait <= 0:
            raise TimeoutError("the render took too long")
        # poll, not select: select refuses descriptors past 1023, which a busy process has.
        waiting = select.poll()
        waiting.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        if not waiting.poll(max(1, int(wait * 1000))):
            raise TimeoutError("the render took too long")
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise OSError("the render helper closed its pipe")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


# --- the helper ----------------------------------------------------------------------------

# Some of Pygments' lexers take seconds (one, exponential time) on code no person
# writes: colouring gets this long, then the post is rendered with its code plain.
HIGHLIGHT_SECONDS = 0.75


class _Overtime(Exception):
    """The highlighting render ran past HIGHLIGHT_SECONDS."""


def _overtime(_signum: int, _frame: Any) -> None:
    raise _Overtime


def render_within(
    text: str, limits: RenderLimits = DEFAULT_LIMITS, images: dict | None = None
) -> Rendered:
    """Give the rendering of `text`, its code plain if colouring it takes too long.

    Only for the helper (or any process's main thread): it times itself with SIGALRM,
    which a runaway regular expression in a lexer still notices.
    """
    if not limits.highlighted_code or not fenced_code_length(text):
        return render_markdown(text, limits, images)
    previous = signal.signal(signal.SIGALRM, _overtime)
    try:
        signal.setitimer(signal.ITIMER_REAL, HIGHLIGHT_SECONDS)
        try:
            return render_markdown(text, limits, images)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _Overtime:
        log.warning("colouring code took over %g s: rendering it plain", HIGHLIGHT_SECONDS)
    finally:
        signal.signal(signal.SIGALRM, previous)
    return render_markdown(text, dataclasses.replace(limits, highlighted_code=0), images)


_WARM_UP = "# Warm\n\n*a* [b](https://example.org)\n\n```python\nprint(1)\n```\n"


def serve(incoming: IO[bytes], outgoing: IO[bytes]) -> None:
    """Answer render requests until the worker closes the pipe (the helper's main loop)."""
    render_markdown(_WARM_UP)  # compiles the highlighter's patterns before the first request
    _write_message(outgoing, {"ready": True})
    while True:
        header = incoming.read(_LENGTH.size)
        if len(header) < _LENGTH.size:
            return
        (length,) = _LENGTH.unpack(header)
        request = json.loads(incoming.read(length))
        try:
            rendered = render_within(
                request["text"], RenderLimits(**request["limits"]), request.get("images")
            )
            answer: dict[str, Any] = {"rendered": rendered_to_json(rendered)}
        except RenderRefused as refused:
            answer = {"refused": [refused.what, refused.message]}
        except Exception as error:  # answered, so the worker can say so rather than hang
            answer = {"error": f"{type(error).__name__}: {error}"}
        _write_message(outgoing, answer)


def main() -> None:
    """Run as the helper: the protocol owns stdout, anything printed goes to stderr."""
    incoming, outgoing = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr
    serve(incoming, outgoing)


if __name__ == "__main__":
    main()
