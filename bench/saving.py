"""Where the benchmarks keep what they measured: bench/results/<kind>-<time>.json."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def save_results(kind: str, figures: dict[str, Any]) -> Path:
    """Write the figures with the time and the machine they were taken on; give the file."""
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"{kind}-{stamp}.json"
    machine = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    out.write_text(json.dumps({"when": stamp, "machine": machine, **figures}, indent=2))
    return out
