"""What every benchmark script shares: writing its result where the book's results page reads it.

The scripts run as ``python benchmarks/NAME.py``, so this folder is on ``sys.path`` and they
import it as ``from common import write_record``.
"""

from __future__ import annotations

import json
from pathlib import Path


def write_record(result: dict, path: str | Path) -> Path:
    """Write a benchmark's result as indented JSON (making its folder) and say where."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return path
