"""Entry point: `gunicorn main:app`; `python main.py` (development server); `python main.py CMD`."""

from __future__ import annotations

import os
import sys

from pyproject.config import ConfigError, layered_settings, metrics_folder

# Every process of the site (gunicorn's workers, the job worker, commands) counts its
# metrics in files in one folder, read together at /metrics. Set before the app's
# modules import prometheus_client, which reads it once.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(metrics_folder(layered_settings())))

from pyproject.app import create_app
from pyproject.cli import main as cli_main

try:
    app = create_app()
except ConfigError as error:
    print(f"PyProject cannot start: {error}", file=sys.stderr)
    raise SystemExit(2) from None

if __name__ == "__main__":
    sys.exit(cli_main(app, sys.argv[1:]))
