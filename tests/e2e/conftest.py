"""End-to-end fixtures: a real `gunicorn main:app` on a free loopback port.

`start_gunicorn(env_overrides, workers)` prepares (`python main.py prepare`) and starts a
server exactly as `make run` does, waits until it answers and gives a `ServerHandle`.
`gunicorn_server` is one such server shared by the whole session; `gunicorn_factory`
starts servers with other settings and stops them when the test ends.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pyproject.config import DEFAULTS

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
START_TIMEOUT = 60.0  # a loaded two-core machine (CI running tests in parallel) starts slowly
STOP_TIMEOUT = 10.0
REQUEST_TIMEOUT = 15.0


def free_port() -> int:
    """Give a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_environ(port: int, data_dir: Path, overrides: dict[str, Any]) -> dict[str, str]:
    """Give the environment for `main.py prepare` and gunicorn: every setting explicit.

    Settings and GUNICORN_CMD_ARGS inherited from the caller are dropped, and every
    setting is given its default, so a developer's .env cannot change what tests see.
    `overrides` (settings or other variables) are applied last.
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in DEFAULTS and name != "GUNICORN_CMD_ARGS"
    }
    for name, default in DEFAULTS.items():
        env[name] = _env_text(default)
    env.update(
        SECRET_KEY="test-secret",
        HOST="127.0.0.1",
        PORT=str(port),
        WORKERS="2",
        BASE_URL=f"http://127.0.0.1:{port}",
        DATABASE_URL=f"sqlite:///{data_dir / 'e2e.sqlite3'}",
        LOG_LEVEL="WARNING",
        # gunicorn (25.1+) opens a control socket at $XDG_RUNTIME_DIR/gunicorn.ctl, else
        # ~/.gunicorn/gunicorn.ctl, and takes it over from any other gunicorn there: give
        # each test server its own, so a developer's `make run` is left alone.
        XDG_RUNTIME_DIR=str(data_dir),
        # Each server counts its metrics apart from every other (and from `make run`'s).
        PROMETHEUS_MULTIPROC_DIR=str(data_dir / "metrics"),
    )
    (data_dir / "metrics").mkdir(parents=True, exist_ok=True)
    env.update({name: _env_text(value) for name, value in overrides.items()})
    return env


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass
class RawResponse:
    """A response read off a socket: status, headers (names lower-cased), body, timing."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    raw: bytes
    elapsed: float

    def header(self, name: str) -> str | None:
        """Give the first value of a header, or None."""
        name = name.lower()
        return next((value for key, value in self.headers if key == name), None)


@dataclass
class ServerHandle:
    """A running gunicorn: its URL, process and log, and a way to stop it cleanly."""

    url: str
    port: int
    process: subprocess.Popen[bytes]
    stderr_path: Path
    env: dict[str, str]
    data_dir: Path
    _owns_data_dir: bool = False
    _stopped: bool = field(default=False, init=False)
    _final_stderr: str | None = field(default=None, init=False)

    @property
    def pid(self) -> int:
        """Give the gunicorn master's process id (also its process group id)."""
        return self.process.pid

    def stderr_text(self) -> str:
        """Give everything gunicorn and the app have written to stderr so far."""
        if self._final_stderr is not None:
            return self._final_stderr
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def worker_pids(self) -> list[int]:
        """Give the process ids of the master's live children (its workers)."""
        return [pid for pid, ppid, _ in _processes() if ppid == self.pid]

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> tuple[http.client.HTTPResponse, bytes]:
        """Send one request with http.client and give the response and its body."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=REQUEST_TIMEOUT)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return response, response.read()
        finally:
            connection.close()

    def raw(self, data: bytes, *, timeout: float = REQUEST_TIMEOUT) -> RawResponse:
        """Send bytes exactly as given and read one response (up to its length, or EOF).

        The body is read only as far as Content-Length says, so a server that answers
        before reading an announced request body is not waited on.
        """
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            sock.sendall(data)
            received = b""
            while b"\r\n\r\n" not in received:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
            head, _, body = received.partition(b"\r\n\r\n")
            response = _parse_head(head, body, started)
            is_head = data.split(b" ", 1)[0].upper() == b"HEAD"
            length = response.header("content-length")
            if is_head or response.status in (204, 304) or response.status < 200:
                wanted: int | None = 0
            else:
                wanted = int(length) if length and length.isdigit() else None
            body += _read_rest(sock, None if wanted is None else max(0, wanted - len(body)))
        response.body = body
        response.raw = head + b"\r\n\r\n" + body
        return response

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop gunicorn (SIGTERM, then SIGKILL) and check no process of it is left."""
        if self._stopped:
            return
        self._stopped = True
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                _kill_group(self.pid)
                self.process.wait(5)
        leftover = _wait_group_gone(self.pid, 5.0)
        if leftover:
            _kill_group(self.pid)
        if self._owns_data_dir:
            self._final_stderr = self.stderr_text()
            shutil.rmtree(self.data_dir, ignore_errors=True)
        assert not leftover, f"gunicorn left processes running: {leftover}"


def _read_rest(sock: socket.socket, wanted: int | None) -> bytes:
    """Read to EOF, or `wanted` bytes and whatever else arrives within a moment.

    Bytes past `wanted` (a body after HEAD or 304) show up in the result.
    """
    received = b""
    while wanted is None or len(received) < wanted:
        chunk = sock.recv(65536)
        if not chunk:
            return received
        received += chunk
    sock.settimeout(0.2)
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return received


def _parse_head(head: bytes, body: bytes, started: float) -> RawResponse:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise AssertionError(f"not an HTTP response: {head[:200]!r}")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.append((name.strip().lower(), value.strip()))
    return RawResponse(
        status=int(parts[1]),
        reason=parts[2] if len(parts) > 2 else "",
        headers=headers,
        body=body,
        raw=b"",
        elapsed=time.monotonic() - started,
    )


def _processes() -> Iterator[tuple[int, int, int]]:
    """Give (pid, ppid, pgid) of every live, non-zombie process (Linux /proc)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces; fields follow it.
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] in ("Z", "X"):
            continue
        yield int(entry), int(fields[1]), int(fields[2])


def _group_members(pgid: int) -> list[int]:
    return [pid for pid, _, group in _processes() if group == pgid]


def _wait_group_gone(pgid: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while True:
        members = _group_members(pgid)
        if not members or time.monotonic() > deadline:
            return members
        time.sleep(0.05)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _is_ready(port: int, host: str = "127.0.0.1") -> bool:
    """Give whether a worker answers HTTP on the port (any status will do)."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.sendall(b"HEAD / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            return sock.recv(5) == b"HTTP/"
    except OSError:
        return False


def start_gunicorn(
    env_overrides: dict[str, Any] | None = None,
    workers: int = 2,
    *,
    data_dir: Path | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    prepare: bool = True,
) -> ServerHandle:
    """Prepare and start `gunicorn main:app` on a free port; give it once it answers.

    The database and gunicorn's stderr live in `data_dir` (a fresh temporary folder,
    removed on stop, when none is given). Fails the test with gunicorn's stderr if the
    server does not answer within START_TIMEOUT seconds. `host` is the loopback address
    to bind (the multi-host test gives each app host its own) and `port` a fixed port
    (to start a stopped host again where its proxy expects it). `prepare=False` skips
    `main.py prepare`, for a host whose database another host has already migrated.
    """
    owns_data_dir = data_dir is None
    if data_dir is None:
        data_dir = Path(tempfile.mkdtemp(prefix="pyproject-e2e-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    env = server_environ(
        port, data_dir, {"HOST": host, "WORKERS": workers, **(env_overrides or {})}
    )
    python, gunicorn = VENV_BIN / "python", VENV_BIN / "gunicorn"
    if not gunicorn.exists():
        pytest.fail(f"{gunicorn} is missing: run `make setup` first")

    if prepare:
        _prepare(python, env, data_dir if owns_data_dir else None)

    stderr_path = data_dir / f"gunicorn-{port}.stderr"
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(
            [str(gunicorn), "main:app"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            start_new_session=True,  # its own process group: workers are easy to find
        )
    handle = ServerHandle(
        url=f"http://{host}:{port}",
        port=port,
        process=process,
        stderr_path=stderr_path,
        env=env,
        data_dir=data_dir,
        _owns_data_dir=owns_data_dir,
    )
    deadline = time.monotonic() + START_TIMEOUT
    while not _is_ready(port, host):
        if process.poll() is not None or time.monotonic() > deadline:
            why = (
                f"exited with {process.returncode}"
                if process.poll() is not None
                else f"did not answer within {START_TIMEOUT:.0f} s"
            )
            log = handle.stderr_text()
            handle._owns_data_dir = False  # keep the log for whoever investigates
            handle.stop()
            pytest.fail(f"gunicorn {why} on {handle.url}; its stderr:\n{log}")
        time.sleep(0.05)
    return handle


def _prepare(python: Path, env: dict[str, str], remove_on_failure: Path | None) -> None:
    """Run `main.py prepare` (instance folder, migrations); fail the test if it fails."""
    prepared = subprocess.run(
        [str(python), "main.py", "prepare"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if prepared.returncode != 0:
        if remove_on_failure is not None:
            shutil.rmtree(remove_on_failure, ignore_errors=True)
        pytest.fail(
            f"`main.py prepare` exited {prepared.returncode}:\n{prepared.stdout}{prepared.stderr}"
        )


_SESSION_START_FAILURE: list[str] = []


@pytest.fixture(scope="session")
def gunicorn_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    """Give one gunicorn with the default test settings, shared by the whole session."""
    if _SESSION_START_FAILURE:  # pytest retries a failed fixture for every test
        pytest.fail(_SESSION_START_FAILURE[0], pytrace=False)
    try:
        handle = start_gunicorn(data_dir=tmp_path_factory.mktemp("gunicorn"))
    except pytest.fail.Exception as failure:
        _SESSION_START_FAILURE.append(f"the shared gunicorn could not start:\n{failure}")
        raise
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def base_url(gunicorn_server: ServerHandle) -> str:
    """Give the base URL of the shared gunicorn ("http://127.0.0.1:PORT")."""
    return gunicorn_server.url


class LogWatch:
    """What a server logs during one test: `new_text()` gives it, `take()` also skips it."""

    def __init__(self, server: ServerHandle) -> None:
        self.server = server
        self.start = len(server.stderr_text())

    def new_text(self) -> str:
        """Give what the server has logged since the test began (or the last `take`)."""
        return self.server.stderr_text()[self.start :]

    def take(self) -> str:
        """Give the new log text and leave it out of later checks."""
        text = self.new_text()
        self.start += len(text)
        return text


@pytest.fixture
def server_log(gunicorn_server: ServerHandle) -> Iterator[LogWatch]:
    """Give a LogWatch on the shared server; fail the test if it logs a traceback.

    Requests are answered after the app has logged, so the log is complete by the time a
    test has read its responses. A test that checks the log itself calls `take()`.
    """
    watch = LogWatch(gunicorn_server)
    yield watch
    text = watch.new_text()
    if "Traceback" in text:
        pytest.fail(f"the server logged a traceback during this test:\n{text}")


@pytest.fixture
def gunicorn_factory(tmp_path: Path) -> Iterator[Callable[..., ServerHandle]]:
    """Give `start(env_overrides=None, workers=2)`; every server it starts is stopped after."""
    started: list[ServerHandle] = []

    def start(env_overrides: dict[str, Any] | None = None, workers: int = 2) -> ServerHandle:
        handle = start_gunicorn(
            env_overrides, workers, data_dir=tmp_path / f"gunicorn-{len(started)}"
        )
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()
