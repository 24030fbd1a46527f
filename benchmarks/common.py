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


def chosen_variants(spec: str, known: dict) -> list[str]:
    """The variant names of a comma-separated ``--variants`` value, each checked against
    ``known`` (a benchmark's table of variants); an unknown one stops with the allowed names."""
    names = [v.strip() for v in spec.split(",") if v.strip()]
    unknown = [v for v in names if v not in known]
    if unknown:
        raise SystemExit(f"unknown variant {unknown[0]!r}; known: {', '.join(known)}")
    return names


def previous_record(path: str | Path, **same) -> dict:
    """The record a benchmark wrote before at ``path``, to add variants to, or {} when there is
    none or it was made with other settings (each of ``same`` must match where recorded)."""
    path = Path(path)
    result = json.loads(path.read_text()) if path.exists() else {}
    if any(result.get(key) not in (None, value) for key, value in same.items()):
        return {}
    return result


# The targets in the cpu preset (2 CPU cores), judged by minit2i.eval on at least 256 prompts per
# task: the scale every chapter shows. The results page shows each measured figure beside them.
CPU_TARGETS = {
    "tokenizer_ceiling": {"single_object": 0.97, "two_objects": 0.92},
    "dalle": {"single_object": 0.90, "colour": 0.88, "position": 0.88, "two_objects": 0.60,
              "colour_attribution": 0.45, "heldout_pairs": 0.75, "best_of_8_single": 0.95,
              "best_of_8_two": 0.75, "pipeline_train_seconds": 1200},
    "vqgan_clip": {"single_object": 0.50, "colour": 0.40, "seconds_per_image": 10},
}
