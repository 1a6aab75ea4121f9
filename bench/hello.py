"""Two WSGI apps that answer "Hello", for bench/framework.py.

`app` is a bare WSGI callable: the floor of what gunicorn can do. `framework_app` is the
real site from `create_app()` (static middleware, hooks, sessions, security headers)
with one extra route, /bench/hello, so the difference between them is our framework's
cost per request. `framework_app` is built on first use, so a server that only serves
`app` never imports the project.

Settings come from create_app overrides; BENCH_DATA_DIR (set by bench/framework.py)
holds the SQLite file and instance folder, so nothing is written in the repository.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BODY = b"Hello"
FRAMEWORK_PATH = "/bench/hello"


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Give "Hello" with nothing else: no routing, no headers beyond the necessary."""
    start_response(
        "200 OK",
        [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(BODY)))],
    )
    return [BODY]


def build_framework_app(data_dir: str | None = None) -> Any:
    """Give the site's App with a /bench/hello route that returns "Hello"."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from pyproject.app import create_app

    data = Path(
        data_dir
        or os.environ.get("BENCH_DATA_DIR")
        or Path(tempfile.gettempdir(), "pyproject-bench")
    )
    data.mkdir(parents=True, exist_ok=True)
    site = create_app(
        {
            "SECRET_KEY": "bench-secret",
            "DEBUG": False,
            "LOG_LEVEL": "WARNING",
            "DATABASE_URL": f"sqlite:///{data / 'bench.sqlite3'}",
            "INSTANCE_PATH": str(data / "instance"),
        }
    )

    def hello(request: Any) -> str:
        return BODY.decode()

    # Registered before the first request, as every route must be.
    site.add_route(FRAMEWORK_PATH, hello, endpoint="bench_hello")
    return site


def __getattr__(name: str) -> Any:
    # gunicorn looks the app up with getattr, so `hello:framework_app` builds it here.
    if name == "framework_app":
        built = build_framework_app()
        globals()["framework_app"] = built
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
