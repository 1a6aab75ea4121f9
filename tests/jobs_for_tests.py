"""Jobs the job tests give the real worker (loaded through the JOB_MODULES setting).

Each leaves its effect in a file named by its arguments, so a test, or a worker in
another process, can see what ran and how often.
"""

from __future__ import annotations

import time
from pathlib import Path

from pyproject.blog.jobs import job


def _append_once(path: str, token: str) -> None:
    """Add `token` as a line of the file unless it is there: the effect happens once."""
    target = Path(path)
    lines = target.read_text().splitlines() if target.exists() else []
    if token not in lines:
        with target.open("a") as out:
            out.write(token + "\n")


def _count(path: str) -> None:
    with Path(path).open("a") as out:
        out.write("ran\n")


@job(retries=2)
def note(path: str, token: str) -> None:
    """Write `token` to the file at `path`, once."""
    _count(path + ".runs")
    _append_once(path, token)


@job(retries=3)
def slow_note(path: str, token: str, seconds: float) -> None:
    """Say it started, take `seconds`, then write `token` once (for killing mid-job)."""
    _count(path + ".runs")
    Path(path + ".started").write_text("started")
    time.sleep(seconds)
    _append_once(path, token)


@job(retries=2)
def refuse(path: str) -> None:
    """Fail every time, as a mail server that is down would."""
    _count(path + ".runs")
    raise ConnectionRefusedError("the mail server refused the connection")


@job(retries=3)
def fail_then_work(path: str, failures: int) -> None:
    """Fail `failures` times, then write "done" (a server back after an outage)."""
    runs = Path(path + ".runs")
    tried = len(runs.read_text().splitlines()) if runs.exists() else 0
    _count(path + ".runs")
    if tried < failures:
        raise TimeoutError(f"attempt {tried + 1}: the server did not answer")
    _append_once(path, "done")
