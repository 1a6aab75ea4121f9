"""Load benchmark: what our framework costs per request, under gunicorn, against bare WSGI.

Starts two gunicorns with identical settings (2 sync workers on loopback, an empty
config file so the project's gunicorn.conf.py stays out of it): one serving a bare WSGI
"Hello" (`bench/hello.py:app`), one serving the site from `create_app()` with a
/bench/hello route (`bench/hello.py:framework_app`). It then drives each with wrk,
alternating bare/ours/ours/bare..., each run after a warm-up, and reports the median
requests/s, p50/p99 latency, errors, and the ratio ours/bare (target: at least 0.85).
It also reports the servers' CPU time per request (from /proc), and the ratio of those,
which a busy machine disturbs much less than requests/s.

    .venv/bin/python bench/framework.py [--duration 10] [--connections 32] [--rounds 2]
    .venv/bin/python bench/framework.py --profile [--calls 20000]

Results are saved as JSON in bench/results/. Exits 1 if any request failed (a socket
error or a status of 400 or more), 2 if the servers could not be started.
`--profile` starts no server: it times both apps in-process over a prebuilt environ and
prints cProfile's top costs for ours.
"""

from __future__ import annotations

import argparse
import cProfile
import http.client
import io
import json
import os
import platform
import pstats
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
VENV_BIN = ROOT / ".venv" / "bin"
TARGET_RATIO = 0.85
WARMUP_SECONDS = 2
WORKERS = 2
START_TIMEOUT = 20.0

# name -> (gunicorn app spec, path to load)
TARGETS: dict[str, tuple[str, str]] = {
    "bare": ("hello:app", "/"),
    "ours": ("hello:framework_app", "/bench/hello"),
}

# wrk's Lua `done` hook prints one JSON line, so no figure is scraped from its text.
# A script that counts answers other than 2xx in each thread's `non2xx` (bench/load.py's
# RANDOM_URLS_LUA) lists its threads in `threads`; without one, non_2xx is -1 (not counted).
WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  local non2xx = -1
  if threads then
    non2xx = 0
    for _, thread in ipairs(threads) do non2xx = non2xx + (thread:get("non2xx") or 0) end
  end
  io.write(string.format(
    '\\n{"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, '
    .. '"read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d, '
    .. '"p50_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d, "non_2xx": %d}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(99), latency.mean,
    latency.max, non2xx))
end
"""


# --- tools -----------------------------------------------------------------------------


def ensure_wrk() -> str:
    """Give the path of wrk, installing it with apt-get if it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is not installed; installing it with apt-get ...", file=sys.stderr)
    install = ["apt-get", "install", "-y", "wrk"]
    if subprocess.run(install, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "update"], stdout=subprocess.DEVNULL, check=False)
        subprocess.run(install, stdout=subprocess.DEVNULL, check=False)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is needed: install it (apt-get install wrk) and run again")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_environ(data_dir: Path) -> dict[str, str]:
    """Give the servers' environment: ours, minus anything that would change gunicorn or the app."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from pyproject.config import DEFAULTS

    env = {
        name: value
        for name, value in os.environ.items()
        if name not in DEFAULTS and name != "GUNICORN_CMD_ARGS"
    }
    env["BENCH_DATA_DIR"] = str(data_dir)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


# --- servers ---------------------------------------------------------------------------


class Server:
    """One gunicorn serving `spec` on a free loopback port."""

    def __init__(self, name: str, spec: str, path: str, data_dir: Path, config: Path) -> None:
        self.name = name
        self.path = path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}{path}"
        self.log_path = data_dir / f"{name}.log"
        command = [
            str(VENV_BIN / "gunicorn"),
            "--config",
            str(config),
            "--chdir",
            str(BENCH),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(WORKERS),
            "--worker-class",
            "sync",
            "--no-control-socket",
            "--log-level",
            "warning",
            "--error-logfile",
            "-",
            spec,
        ]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=BENCH,
                env=clean_environ(data_dir),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def cpu_seconds(self) -> float | None:
        """Give the CPU time (user + system) used so far by the master and its workers."""
        return group_cpu_seconds(self.process.pid)

    def wait_until_ready(self) -> None:
        """Return once the server answers 200 "Hello" at its path; exit 2 if it never does."""
        deadline = time.monotonic() + START_TIMEOUT
        last = "no answer"
        while time.monotonic() < deadline and self.process.poll() is None:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            try:
                connection.request("GET", self.path)
                response = connection.getresponse()
                body = response.read()
                if response.status == 200 and body == b"Hello":
                    return
                last = f"{response.status} {body[:200]!r}"
            except OSError as error:
                last = str(error)
            finally:
                connection.close()
            time.sleep(0.1)
        self.stop()
        print(f"{self.name}: gunicorn is not serving Hello ({last}); its log:", file=sys.stderr)
        print(self.log(), file=sys.stderr)
        raise SystemExit(2)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        try:  # workers left behind by a killed master
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def group_cpu_seconds(pgid: int) -> float | None:
    """Give the CPU time of the live processes in a process group (Linux), else None."""
    if not os.path.isdir("/proc"):
        return None
    ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])  # utime + stime
    return ticks / os.sysconf("SC_CLK_TCK")


@contextmanager
def servers(data_dir: Path) -> Iterator[dict[str, Server]]:
    """Start both servers, wait until they serve, and stop them afterwards."""
    config = data_dir / "empty.gunicorn.conf.py"
    config.write_text("# Deliberately empty: every option is on the command line.\n")
    with ExitStack() as stack:
        started: dict[str, Server] = {}
        for name, (spec, path) in TARGETS.items():
            server = Server(name, spec, path, data_dir, config)
            stack.callback(server.stop)
            started[name] = server
        for server in started.values():
            server.wait_until_ready()
        yield started


# --- load ------------------------------------------------------------------------------


def run_wrk(wrk: str, script: Path, url: str, seconds: int, connections: int) -> dict[str, Any]:
    """Give wrk's figures for one run against `url`."""
    command = [
        wrk,
        "--threads",
        "1",  # one load thread: the two cores are for the server under test
        "--connections",
        str(connections),
        "--duration",
        f"{seconds}s",
        "--timeout",
        "5s",
        "--script",
        str(script),
        url,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    report = next(
        (line for line in done.stdout.splitlines() if line.startswith('{"requests"')), None
    )
    if done.returncode != 0 or report is None:
        raise SystemExit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    figures = json.loads(report)
    figures["requests_per_second"] = figures["requests"] / (figures["duration_us"] / 1e6)
    # Counted by the script, non-2xx includes wrk's statuses of 400 or more, and redirects.
    figures["status_errors"] = max(figures["status_errors"], figures["non_2xx"])
    figures["errors"] = sum(
        figures[key]
        for key in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    )
    return figures


def benchmark(args: argparse.Namespace) -> int:
    wrk = ensure_wrk()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="pyproject-bench-") as tmp:
        data_dir = Path(tmp)
        script = data_dir / "report.lua"
        script.write_text(WRK_SCRIPT)
        with servers(data_dir) as started:
            # bare, ours, then ours, bare, ...: neither always goes first on a drifting machine.
            order = ["bare", "ours"]
            for round_number in range(args.rounds):
                for name in order if round_number % 2 == 0 else order[::-1]:
                    server = started[name]
                    warmup = run_wrk(wrk, script, server.url, WARMUP_SECONDS, args.connections)
                    cpu_before = server.cpu_seconds()
                    figures = run_wrk(wrk, script, server.url, args.duration, args.connections)
                    cpu_after = server.cpu_seconds()
                    figures.update(
                        target=name,
                        round=round_number + 1,
                        warmup_errors=warmup["errors"],
                        cpu_us_per_request=(
                            (cpu_after - cpu_before) * 1e6 / figures["requests"]
                            if cpu_before is not None and cpu_after is not None
                            else None
                        ),
                    )
                    runs.append(figures)
                    print(
                        f"round {round_number + 1} {name:>4}: "
                        f"{figures['requests_per_second']:9.0f} req/s  "
                        f"p50 {figures['p50_us'] / 1000:6.2f} ms  "
                        f"p99 {figures['p99_us'] / 1000:6.2f} ms  "
                        f"server CPU {format_cpu(figures['cpu_us_per_request'])}  "
                        f"errors {figures['errors'] + warmup['errors']}",
                        flush=True,
                    )
            logs = {name: server.log() for name, server in started.items()}

    summary = summarise(runs)
    report = {
        "benchmark": "framework",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "settings": {
            "duration_s": args.duration,
            "warmup_s": WARMUP_SECONDS,
            "connections": args.connections,
            "rounds": args.rounds,
            "workers": WORKERS,
            "worker_class": "sync",
            "wrk_threads": 1,
        },
        "summary": summary,
        "runs": runs,
        "server_logs": logs,
    }
    RESULTS.mkdir(exist_ok=True)
    saved = RESULTS / f"framework-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    saved.write_text(json.dumps(report, indent=2) + "\n")

    print()
    for name in TARGETS:
        figures = summary[name]
        print(
            f"{name:>4} (median of {args.rounds}): {figures['requests_per_second']:9.0f} req/s  "
            f"p50 {figures['p50_ms']:6.2f} ms  p99 {figures['p99_ms']:6.2f} ms  "
            f"server CPU {format_cpu(figures['cpu_us_per_request'])}  "
            f"errors {figures['errors']}"
        )
    verdict = "meets" if summary["ratio"] >= TARGET_RATIO else "BELOW"
    print(f"ratio ours/bare: {summary['ratio']:.3f} ({verdict} the target of {TARGET_RATIO})")
    if summary["cpu_ratio"] is not None:
        print(
            f"CPU ratio bare/ours: {summary['cpu_ratio']:.3f} "
            "(server CPU per request; steadier than req/s on a busy machine)"
        )
    print(f"saved {saved.relative_to(ROOT)}")
    if summary["bare"]["errors"] or summary["ours"]["errors"]:
        print("FAILED: some requests failed (see errors above)", file=sys.stderr)
        return 1
    return 0


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Give per-target medians and error totals, and the ratio of the median rates."""
    summary: dict[str, Any] = {}
    for name in TARGETS:
        mine = [run for run in runs if run["target"] == name]
        summary[name] = {
            "requests_per_second": statistics.median(r["requests_per_second"] for r in mine),
            "p50_ms": statistics.median(r["p50_us"] for r in mine) / 1000,
            "p99_ms": statistics.median(r["p99_us"] for r in mine) / 1000,
            "errors": sum(r["errors"] + r["warmup_errors"] for r in mine),
            "cpu_us_per_request": median_or_none([r["cpu_us_per_request"] for r in mine]),
        }
    summary["ratio"] = (
        summary["ours"]["requests_per_second"] / summary["bare"]["requests_per_second"]
    )
    bare_cpu, ours_cpu = (summary[n]["cpu_us_per_request"] for n in ("bare", "ours"))
    summary["cpu_ratio"] = bare_cpu / ours_cpu if bare_cpu and ours_cpu else None
    summary["target_ratio"] = TARGET_RATIO
    return summary


def median_or_none(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def format_cpu(microseconds: float | None) -> str:
    return f"{microseconds:5.0f} us/req" if microseconds is not None else "   n/a"


def git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5
        )
    except OSError:
        return None
    return done.stdout.strip() or None


# --- in-process profile ----------------------------------------------------------------


def prebuilt_environ(path: str) -> dict[str, Any]:
    """Give an environ like the one gunicorn builds for `GET path` from a browser."""
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "RAW_URI": path,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64) bench",
        "HTTP_ACCEPT": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        "HTTP_ACCEPT_ENCODING": "gzip, deflate",
        "HTTP_ACCEPT_LANGUAGE": "en",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }


def call_many(app: Callable[..., Any], path: str, calls: int) -> float:
    """Call `app` `calls` times as a server would; give the mean CPU seconds per call.

    CPU time (not wall time) so that other processes on a busy machine count less.
    """
    base = prebuilt_environ(path)

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        if not status.startswith("200"):
            raise AssertionError(f"{path} answered {status}")

    started = time.thread_time()
    for _ in range(calls):
        environ = dict(base)
        body = app(environ, start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close is not None:
            close()
    return (time.thread_time() - started) / calls


def profile(args: argparse.Namespace) -> int:
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))
    import hello

    with tempfile.TemporaryDirectory(prefix="pyproject-bench-") as tmp:
        ours = hello.build_framework_app(tmp)
        call_many(hello.app, "/", 1000)  # warm caches (templates, imports) before timing
        call_many(ours, hello.FRAMEWORK_PATH, 1000)
        bare_each = call_many(hello.app, "/", args.calls)
        ours_each = call_many(ours, hello.FRAMEWORK_PATH, args.calls)
        profiler = cProfile.Profile()
        profiler.enable()
        call_many(ours, hello.FRAMEWORK_PATH, args.calls)
        profiler.disable()
    print(f"in-process, {args.calls} calls each (CPU time):")
    print(f"  bare: {bare_each * 1e6:7.2f} us per request")
    print(
        f"  ours: {ours_each * 1e6:7.2f} us per request ({(ours_each - bare_each) * 1e6:.2f} more)"
    )
    print()
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run [10]")
    parser.add_argument("--connections", type=int, default=32, help="open connections [32]")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each server [2]")
    parser.add_argument(
        "--profile", action="store_true", help="profile in-process instead of load testing"
    )
    parser.add_argument("--calls", type=int, default=20_000, help="calls for --profile [20000]")
    parser.add_argument("--top", type=int, default=25, help="rows of --profile output [25]")
    args = parser.parse_args(argv)
    if min(args.duration, args.connections, args.rounds, args.calls) < 1:
        parser.error("--duration, --connections, --rounds and --calls must be at least 1")
    return profile(args) if args.profile else benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
