"""Re-execute chapter notebooks in place and record how they were run::

    python -m minit2i.tools.execute [--preset smoke|cpu|full] [--timeout S] notebooks/*.ipynb

Each notebook runs top to bottom in a fresh ``python3`` kernel whose working directory is the
notebook's folder, with ``MINIT2I_PRESET`` set. Its outputs are written back into the file, and
its metadata gains a ``minit2i`` record that the book's status page shows::

    {"preset": "cpu", "device": "cpu", "torch": "2.4.0", "version": "0.1.0",
     "duration_s": 212.4, "matmul_gflops": 113.8, "executed_at": "2025-01-01T12:00:00+00:00"}

``matmul_gflops`` is the machine's speed, read just before the run (``minit2i.budget``
scales the run's seconds to the budget's laptop by it; none in the ``smoke`` preset).

Figures are kept (the inline backend is used even where ``MPLBACKEND=Agg`` is set) and each
progress bar (a tqdm widget) is stored as one sentence of text (steps, time, last losses), which
the book shows offline.
A failing cell stops that notebook (the file is left untouched), the error names the notebook and
the cell, and the command exits non-zero after trying the remaining notebooks.
See the book's page "How to run this book".
"""

from __future__ import annotations

import argparse
import html
import os
import re
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import nbformat
import torch
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError

from .. import __version__
from ..config import PRESETS, device_name, matmul_gflops, preset_name

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


class NotebookFailed(RuntimeError):
    """A notebook did not run to the end; the message says which notebook and which cell."""


def _failing_cell(nb: nbformat.NotebookNode) -> tuple[int, str]:
    """The index and first source line of the first cell with an error output (or (-1, ""))."""
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
                return index, first
    return -1, ""


def _progress_line(model_id: str, state: dict) -> str | None:
    """The final text of a tqdm.auto bar: a box of (HTML, FloatProgress, HTML) widgets."""
    def model(ref: str) -> dict:
        return state.get(ref.removeprefix("IPY_MODEL_"), {}).get("state", {})

    parts = [model(ref) for ref in model(model_id).get("children", [])]
    if len(parts) != 3 or "max" not in parts[1]:
        return None
    left, bar, right = (html.unescape(re.sub(r"<[^>]+>", "", str(p.get("value", ""))))
                        .replace("\xa0", " ").replace("\u2007", " ").strip() for p in parts)
    return progress_sentence(left, right)


def progress_sentence(left: str, right: str) -> str:
    """A finished tqdm bar as a sentence: ``demo: 8/8 steps in 00:03 (2.5 it/s); at the end:
    loss=1``. (A drawn bar, frozen in a page, looks like something still running.)"""
    desc = re.sub(r":?\s*\d+%$", "", left).strip()
    m = re.match(r"(\d+)/(\d+)\s*\[([^<\]]*)<[^,\]]*,\s*([^,\]]*)(?:,\s*(.*))?\]", right)
    if not m:
        return f"{desc}: {right}" if desc else right
    done, total, elapsed, rate, post = m.groups()
    head = f"{desc}: " if desc else ""
    text = f"{head}{done}/{total} steps in {elapsed.strip()} ({rate.strip()})"
    return text + (f"; at the end: {post.strip()}" if post else "")


def static_widgets(nb: nbformat.NotebookNode) -> None:
    """Replace widget outputs (tqdm.auto's progress bars) by their final state as text.

    A stored widget needs JavaScript from a CDN to show anything in the book; the text shows the
    bar as it ended (steps, time, last losses) on any page, offline.
    """
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in nb.cells:
        outputs = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data:
                line = _progress_line(data.pop(WIDGET_VIEW).get("model_id", ""), state)
                if line is not None:
                    data["text/plain"] = line
                elif not data.get("text/plain", "").strip():
                    continue                  # a widget with no text to show: drop the output
            outputs.append(output)
        if cell.cell_type == "code":
            cell.outputs = outputs
    nb.metadata.pop("widgets", None)


def execute_notebook(path: str | Path, preset: str | None = None, timeout: int = 1800) -> dict:
    """Run one notebook in place; return the ``minit2i`` record written into its metadata."""
    path = Path(path)
    preset = preset_name(preset)
    nb = nbformat.read(path, as_version=4)
    # how fast this machine is, read before the kernel starts, so that the status page can set
    # the run's minutes against the laptop the budget is written for (two-core machines differ)
    reading = matmul_gflops() if preset != "smoke" else None
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    start = time.perf_counter()
    try:
        # The kernel gets this environment plus the preset (the notebook reads it via minit2i),
        # and the inline backend even where MPLBACKEND=Agg is set, so figures are stored.
        client.execute(env={**os.environ, "MINIT2I_PRESET": preset,
                            "MPLBACKEND": "module://matplotlib_inline.backend_inline"})
    except CellTimeoutError as error:
        raise NotebookFailed(f"{path}: a cell ran longer than {timeout} s in preset {preset!r} "
                             f"(raise --timeout?):\n{error}") from error
    except CellExecutionError as error:
        index, first = _failing_cell(nb)
        where = (f"cell {index + 1} of {len(nb.cells)}, starting {first!r},"
                 if index >= 0 else "a cell")
        raise NotebookFailed(f"{path}: {where} failed in preset {preset!r}:\n{error}") from error
    record = {
        "preset": preset,
        "device": device_name(),
        "torch": torch.__version__,
        "version": __version__,
        "duration_s": round(time.perf_counter() - start, 1),
        "matmul_gflops": reading,          # the machine's speed (minit2i.config.matmul_gflops)
        "executed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    static_widgets(nb)
    nb.metadata["minit2i"] = record
    nbformat.write(nb, path)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m minit2i.tools.execute",
        description="Re-execute notebooks in place and record how they were run.")
    parser.add_argument("notebooks", nargs="+", type=Path, help="the .ipynb files to run in place")
    parser.add_argument("--preset", choices=PRESETS, default=None,
                        help="default: $MINIT2I_PRESET, else full on CUDA, else cpu")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds allowed per cell")
    args = parser.parse_args(argv)

    failed = []
    for path in args.notebooks:
        if not path.is_file():
            print(f"FAILED {path}: no such notebook", file=sys.stderr)
            failed.append(path)
            continue
        print(f"running {path} ...", flush=True)
        try:
            record = execute_notebook(path, args.preset, args.timeout)
        except NotebookFailed as error:
            print(f"FAILED {error}", file=sys.stderr)
            failed.append(path)
            continue
        print(f"  done in {record['duration_s']} s "
              f"({record['preset']} preset on {record['device']})")
    if failed:
        print(f"{len(failed)} of {len(args.notebooks)} notebook(s) failed: "
              + ", ".join(map(str, failed)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
