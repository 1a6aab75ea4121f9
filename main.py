"""Entry point: `gunicorn main:app`; `python main.py` (development server); `python main.py CMD`."""

from __future__ import annotations

import sys

from pyproject.app import create_app
from pyproject.cli import main as cli_main
from pyproject.config import ConfigError

try:
    app = create_app()
except ConfigError as error:
    print(f"PyProject cannot start: {error}", file=sys.stderr)
    raise SystemExit(2) from None

if __name__ == "__main__":
    sys.exit(cli_main(app, sys.argv[1:]))
