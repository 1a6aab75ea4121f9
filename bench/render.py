"""Render benchmark: how long render_markdown takes on each adversarial shape at BODY_MAX.

    .venv/bin/python bench/render.py                       # every shape at BODY_MAX
    .venv/bin/python bench/render.py --shapes toc_copies,big_table --sizes 25000 50000 200000
    .venv/bin/python bench/render.py --timeout 20

The shapes are tests/adversarial_markdown.py's: Markdown that costs far more time or output
than its length suggests. Each is built at the size asked for (BODY_MAX, 200,000 characters,
by default) and rendered as a worker's render helper does (pyproject.blog.rendering.
render_within: the budgets, and code shown plain when colouring it takes too long) in a
child process, one shape
after another, so that a shape which never finishes is stopped after --timeout seconds and
one that eats memory fails alone (each child may use at most --memory MiB).

For each shape and size it prints the input's length, the outcome ("rendered", the message
of a RenderRefused, or the name and message of any other exception; "timeout" or "killed"
when the child had to be stopped), the wall-clock and CPU seconds of render_markdown alone,
the bytes of HTML it gave (body and table of contents) and the amplification, those bytes
over the input's characters. Several --sizes show how the time grows: doubling the size and
quadrupling the time is quadratic. Then the slowest shape at BODY_MAX against the target:
every shape rendered or refused in under 1 s. JSON goes to bench/results/render-*.json.
Exits 1 if the target is missed.
"""

from __future__ import annotations

import argparse
import json
import resource
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pyproject.blog.editor import BODY_MAX  # noqa: E402
from tests.adversarial_markdown import SHAPES  # noqa: E402

sys.path.insert(0, str(BENCH))
from saving import save_results  # noqa: E402

TARGET_SECONDS = 1.0


# --- the child: renders what it is sent, one JSON line per job -------------------------------


def child(memory_mib: int) -> int:
    """Render jobs read from stdin, one JSON line each; answer one JSON line per job."""
    limit = memory_mib * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    # What a worker's render helper runs: the Markdown pipeline within its budgets, code
    # shown plain when a lexer cannot colour it in time.
    from pyproject.blog.rendering import render_within as render_markdown

    render_markdown("warm *up*\n\n```python\nx = 1\n```\n")  # imports, lexers, cleaner
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        text = SHAPES[job["shape"]](job["size"])
        answer: dict[str, Any] = {"chars": len(text)}
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            rendered = render_markdown(text)
        except Exception as error:  # what happened is the measurement
            answer["outcome"] = (
                str(error)
                if type(error).__name__ == "RenderRefused"
                else f"{type(error).__name__}: {error}"
            )
            answer["output_bytes"] = 0
        else:
            answer["outcome"] = "rendered"
            answer["output_bytes"] = len(rendered.html.encode()) + len(rendered.toc_html.encode())
        answer["seconds"] = time.perf_counter() - wall
        answer["cpu_seconds"] = time.process_time() - cpu
        print(json.dumps(answer), flush=True)
    return 0


class Renderer:
    """A child process that renders; replaced by a fresh one when a job overruns or kills it."""

    def __init__(self, memory_mib: int) -> None:
        self.memory_mib = memory_mib
        self.process = self._start()

    def _start(self) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, __file__, "--child", "--memory", str(self.memory_mib)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert process.stdout is not None
        if not json.loads(process.stdout.readline() or "{}").get("ready"):
            raise RuntimeError("the render child did not start")
        return process

    def render(self, shape: str, size: int, timeout: float) -> dict[str, Any]:
        """Give the child's answer for one shape, or say why there was none."""
        process = self.process
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps({"shape": shape, "size": size}) + "\n")
        process.stdin.flush()
        ready, _, _ = select.select([process.stdout], [], [], timeout)
        line = process.stdout.readline() if ready else ""
        if line:
            return json.loads(line)
        # Overran, or died (out of memory, a crash in C): stop it and start another.
        process.kill()
        process.wait()
        outcome = f"timeout after {timeout:g} s" if not ready else f"killed ({process.returncode})"
        self.process = self._start()
        return {
            "chars": len(SHAPES[shape](size)),
            "outcome": outcome,
            "seconds": timeout if not ready else None,
            "cpu_seconds": None,
            "output_bytes": None,
        }

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()


# --- the table -------------------------------------------------------------------------------


def amplification(row: dict[str, Any]) -> float | None:
    if not row["output_bytes"] or not row["chars"]:
        return None
    return row["output_bytes"] / row["chars"]


def print_row(row: dict[str, Any]) -> None:
    seconds = "" if row["seconds"] is None else f"{row['seconds']:.2f}"
    cpu = "" if row["cpu_seconds"] is None else f"{row['cpu_seconds']:.2f}"
    output = "" if row["output_bytes"] is None else f"{row['output_bytes']:,}"
    amp = amplification(row)
    outcome = row["outcome"] if len(row["outcome"]) <= 60 else row["outcome"][:57] + "..."
    print(
        f"{row['shape']:<34} {row['chars']:>8,}  {outcome:<60} {seconds:>7} {cpu:>7}"
        f" {output:>12} {'' if amp is None else f'{amp:.1f}':>6}",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[BODY_MAX])
    parser.add_argument("--shapes", help="comma-separated shape names [all]")
    parser.add_argument("--timeout", type=float, default=60, help="seconds per shape [60]")
    parser.add_argument("--memory", type=int, default=4096, help="MiB per child [4096]")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.memory)

    names = args.shapes.split(",") if args.shapes else list(SHAPES)
    unknown = [name for name in names if name not in SHAPES]
    if unknown:
        parser.error(f"no such shape: {', '.join(unknown)}")

    header = (
        f"{'shape':<34} {'chars':>8}  {'outcome':<60} {'seconds':>7} {'cpu s':>7}"
        f" {'output bytes':>12} {'amp':>6}"
    )
    print(header)
    print("-" * len(header))
    renderer = Renderer(args.memory)
    rows: list[dict[str, Any]] = []
    try:
        for name in names:
            for size in sorted(args.sizes):
                row = {"shape": name, "size": size, **renderer.render(name, size, args.timeout)}
                rows.append(row)
                print_row(row)
    finally:
        renderer.close()

    timed = [row for row in rows if row["size"] == BODY_MAX]
    met = None
    if not timed:
        print(f"\nTarget not measured: run with {BODY_MAX:,} among --sizes.")
    else:
        slowest = max(timed, key=lambda row: row["seconds"] or 0)
        met = all(row["seconds"] is not None and row["seconds"] < TARGET_SECONDS for row in timed)
        print(
            f"\nSlowest at {BODY_MAX:,} characters: {slowest['shape']}, "
            f"{slowest['seconds']:.2f} s ({slowest['outcome'][:60]}). "
            f"Target (every shape under {TARGET_SECONDS:g} s): {'MET' if met else 'NOT MET'}"
        )
        over = [row["shape"] for row in timed if (row["seconds"] or 0) >= TARGET_SECONDS]
        if over:
            print(f"Over the target: {', '.join(over)}")

    out = save_results(
        "render",
        {
            "timeout": args.timeout,
            "target": {"size": BODY_MAX, "seconds": TARGET_SECONDS, "met": met},
            "results": rows,
        },
    )
    print(f"saved {out.relative_to(ROOT)}")
    return 0 if met in (True, None) else 1


if __name__ == "__main__":
    raise SystemExit(main())
