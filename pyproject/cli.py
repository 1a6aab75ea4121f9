"""`python main.py [COMMAND]`: serve for development, or run a task."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from pyproject.lib import App

# name -> (help, add_arguments(parser), run(app, args) -> exit code)
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[..., int]]] = {}


def command(
    name: str, help: str, arguments: Callable[[argparse.ArgumentParser], None] | None = None
):
    """Register `func(app, args) -> int` as `python main.py NAME`."""

    def decorator(func: Callable[[App, Any], int]) -> Callable[[App, Any], int]:
        COMMANDS[name] = (help, arguments or (lambda parser: None), func)
        return func

    return decorator


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="address to listen on (default: HOST setting)")
    parser.add_argument("--port", type=int, help="port to listen on (default: PORT setting)")


@command(
    "serve", "serve with the standard library's wsgiref server (development only)", _serve_arguments
)
def serve(app: App, args: Any) -> int:
    """Serve the app with wsgiref until interrupted."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # the app logs requests
            pass

    prepare(app, args)
    host = args.host or app.config["HOST"]
    port = args.port or app.config["PORT"]
    with make_server(host, port, app, ThreadingWSGIServer, QuietHandler) as server:
        print(f"Serving {app.config['SITE_NAME']} on http://{host}:{port}/")
        print("This is the development server; use `make run` (gunicorn) for real traffic.")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("\nStopped.")
    return 0


# Steps that make a fresh checkout ready to serve (the blog adds "apply migrations").
def _setting_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="a setting's name, such as PORT")


@command(
    "setting", "print the value of one setting (after .env and the environment)", _setting_arguments
)
def setting(app: App, args: Any) -> int:
    if args.name not in app.config:
        print(f"No setting named {args.name}.", file=sys.stderr)
        return 2
    print(app.config[args.name])
    return 0


PREPARE_STEPS: list[Callable[[App], None]] = []


@command("prepare", "make the instance folder and bring the database up to date")
def prepare(app: App, args: Any) -> int:
    """Run every preparation step; `make run` calls this before starting gunicorn."""
    from pathlib import Path

    Path(app.config["INSTANCE_PATH"]).mkdir(parents=True, exist_ok=True)
    for step in PREPARE_STEPS:
        step(app)
    return 0


def main(app: App, argv: list[str]) -> int:
    """Run the command named in argv (default: serve)."""
    parser = argparse.ArgumentParser(prog="python main.py", description="PyProject blog")
    sub = parser.add_subparsers(dest="command")
    for name, (help_text, add_arguments, _) in sorted(COMMANDS.items()):
        add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv or ["serve"])
    return COMMANDS[args.command][2](app, args)
