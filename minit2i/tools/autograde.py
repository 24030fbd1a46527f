"""The autograder: run a student's notebook with the hidden tests put back, and score it::

    python -m minit2i.tools.assignments grade submissions/*.ipynb [--chapter NN | --source PATH]
        [--json results.json] [--preset smoke] [--exercise-timeout 60] [--cell-timeout 300]
        [--notebook-timeout 1200] [--executed DIR]

Nothing in the student's copy of a test is trusted. The graded notebook is the student's, with
every locked cell (visible checks, hidden tests) replaced by the source's cell of the same
grade_id, deleted locked cells put back, and points read from the source's metadata.

It runs cell by cell in a fresh kernel (the ``smoke`` preset, the source's folder as working
directory). An exception in a cell is recorded and the next cell runs. A cell that runs past its
time limit is interrupted and recorded as an error. If the kernel dies, or an interrupted cell
will not stop, the grader starts a fresh kernel and runs the notebook again from the top with that
cell skipped (at most ``max_restarts`` times). Cells left when the notebook's time limit or the
restarts run out are "not run". A grade cell scores its points when it ran without an error, and
nothing otherwise, so a crash or an endless loop costs only the exercises whose tests it breaks;
each failed exercise's ``detail`` says why, in words (the message of the check that failed).
Markdown answer cells with points are listed for grading by hand. See "For instructors".
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import re
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync

from .assignments import (
    clear_outputs,
    exercise_headings,
    is_grade,
    is_solution,
    nbgrader,
    student_version,
)

TIMEOUT_ERROR = "CellTimeout"


def merge(source, submission):
    """The notebook to grade: the submission with the source's locked cells and metadata."""
    by_id = {nbgrader(c)["grade_id"]: c for c in source.cells if nbgrader(c).get("grade_id")}
    stubs = {nbgrader(c)["grade_id"]: c for c in student_version(source).cells
             if nbgrader(c).get("grade_id")}
    graded, placed = copy.deepcopy(submission), set()
    cells = []
    for cell in graded.cells:
        gid = nbgrader(cell).get("grade_id")
        if gid not in by_id:                       # the student's own cell: never a grade cell
            cell.get("metadata", {}).pop("nbgrader", None)
        elif gid in placed:
            continue                               # a pasted copy of an exercise cell
        elif nbgrader(by_id[gid]).get("locked"):
            cell = copy.deepcopy(by_id[gid])
        else:                                      # the student's answer, the source's metadata
            cell.metadata["nbgrader"] = copy.deepcopy(nbgrader(by_id[gid]))
        if gid in by_id:
            placed.add(gid)
        cells.append(cell)
    # Put back the exercise cells the student deleted, after the cell that precedes them.
    order = list(by_id)
    for rank, gid in enumerate(order):
        if gid in placed:
            continue
        before = [g for g in order[:rank] if g in placed]
        at = (next(i for i, c in enumerate(cells) if nbgrader(c).get("grade_id") == before[-1])
              + 1) if before else len(cells)
        cells.insert(at, copy.deepcopy(by_id[gid] if nbgrader(by_id[gid]).get("locked")
                                       else stubs[gid]))
        placed.add(gid)
    graded.cells = cells
    clear_outputs(graded)
    return graded


def _responsive(client: NotebookClient, wait: float) -> bool:
    """Does the kernel answer a trivial request within `wait` seconds (after an interrupt)?"""
    try:
        reply = run_sync(client.kc.execute_interactive)(
            "None", timeout=wait, store_history=False, output_hook=lambda msg: None)
    except (TimeoutError, RuntimeError):
        return False
    return reply["content"]["status"] == "ok"


def run_cells(nb, *, cwd: Path, env: dict, timeout_of, notebook_timeout: float,
              max_restarts: int = 2, grace: float = 10) -> tuple[dict[int, dict], int]:
    """Run every code cell; return ({cell index: {status, ename, evalue}}, restarts).

    `grace`: seconds an interrupted cell has to stop before the kernel counts as hung.
    """
    deadline, poisoned, restarts = time.monotonic() + notebook_timeout, {}, 0
    while True:
        results, replies, crashed = {}, {}, None
        client = NotebookClient(
            nb, kernel_name="python3", allow_errors=True, interrupt_on_timeout=True,
            error_on_timeout={"ename": TIMEOUT_ERROR, "evalue": "", "traceback": []},
            shutdown_kernel="immediate", resources={"metadata": {"path": str(cwd)}})
        client.on_cell_executed = lambda cell, cell_index, execute_reply, into=replies: (
            into.update({cell_index: execute_reply}))
        with client.setup_kernel(env=env):
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                left = deadline - time.monotonic()
                if index in poisoned:
                    results[index] = {"status": "skipped", "ename": "", "evalue": poisoned[index]}
                    continue
                if crashed is not None or left <= 1:
                    results[index] = {"status": "not run", "ename": "", "evalue":
                                      "the notebook's time limit ran out" if crashed is None
                                      else "the kernel was lost"}
                    continue
                limit = max(1, math.floor(min(timeout_of(cell), left)))
                client.timeout = limit
                try:
                    client.execute_cell(cell, index)
                except (DeadKernelError, CellTimeoutError) as error:
                    crashed = (index, "the kernel died in this cell"
                               if isinstance(error, DeadKernelError) else "the kernel hung")
                    results[index] = {"status": "error", "ename": "DeadKernel",
                                      "evalue": crashed[1]}
                    continue
                content = replies.get(index, {}).get("content", {"status": "ok"})
                if content.get("status") != "error":
                    results[index] = {"status": "ok", "ename": "", "evalue": ""}
                elif content.get("ename") == TIMEOUT_ERROR:
                    results[index] = {"status": "timeout", "ename": TIMEOUT_ERROR,
                                      "evalue": f"ran longer than {limit} s and was interrupted"}
                    if not _responsive(client, wait=grace):
                        crashed = (index, f"this cell ignored the interrupt after {limit} s")
                        results[index]["evalue"] = crashed[1]
                else:
                    results[index] = {"status": "error", "ename": content.get("ename", ""),
                                      "evalue": content.get("evalue", "")}
        if crashed is None or restarts >= max_restarts or time.monotonic() >= deadline:
            return results, restarts
        poisoned[crashed[0]] = f"skipped after a kernel restart ({crashed[1]})"
        restarts += 1


def find_source(submission: Path, chapter: str | None, source_dir: Path) -> Path:
    """The source notebook for a submission: --chapter, else its metadata, else its file name."""
    if chapter is None:
        try:
            nb = nbformat.read(submission, as_version=4)
            chapter = nb.metadata.get("minit2i_assignment", {}).get("chapter")
        except Exception:                       # unreadable: the file name may still tell
            chapter = None
    if chapter is None:
        match = re.match(r"\d\d", submission.name)
        chapter = match[0] if match else None
    if chapter is None:
        raise ValueError(f"{submission}: cannot tell which chapter it is; use --chapter NN "
                         "or --source PATH")
    prefix = chapter if "_" in chapter else f"{int(chapter):02d}_"
    found = sorted(source_dir.glob(f"{prefix}*.ipynb")) + sorted(
        source_dir.glob(f"{prefix}*/{prefix}*.ipynb"))
    if not found:
        raise ValueError(f"no source notebook for chapter {chapter!r} in {source_dir}")
    return found[0]


def explain(run: dict, unanswered: bool = False) -> str:
    """Why a grade cell lost its points, in words a student can act on. ``unanswered``: the
    exercise's solution cell still raised the stub's NotImplementedError."""
    ename, first = run["ename"], (run["evalue"].strip().splitlines() or [""])[0]
    if run["status"] != "error":
        return first[:300]
    if ename == "NotImplementedError" or (unanswered and ename == "NameError"):
        return "not answered yet: the exercise still raises NotImplementedError (the stub)"
    if ename == "NameError":
        return (f"{first}: the test needs a name that no cell defined (was a cell above not run, "
                "or did it fail?)")[:300]
    if ename in ("CheckFailed", "AssertionError"):
        return (first or "a check failed (an assert without a message)")[:300]
    return f"{ename}: {first}".strip(": ")[:300]


def grade(submission: str | Path, source: str | Path, *, preset: str = "smoke",
          exercise_timeout: float = 60, cell_timeout: float = 300,
          notebook_timeout: float = 1200, max_restarts: int = 2, grace: float = 10,
          executed: Path | None = None) -> dict:
    """Run one submission against its source; return the scores as a JSON-ready dict."""
    submission, source = Path(submission), Path(source)
    src = nbformat.read(source, as_version=4)
    start = time.perf_counter()
    try:
        nb = merge(src, nbformat.read(submission, as_version=4))
    except Exception as error:                  # not a notebook: it scores nothing
        nb, problem = None, f"cannot read the submission: {type(error).__name__}: {error}"
    if nb is not None:
        env = {**os.environ, "MINIT2I_PRESET": preset, "MPLBACKEND": "Agg"}
        results, restarts = run_cells(
            nb, cwd=source.parent.resolve(), env=env, notebook_timeout=notebook_timeout,
            max_restarts=max_restarts, grace=grace,
            timeout_of=lambda c: exercise_timeout if nbgrader(c) else cell_timeout)
        if executed is not None:
            executed.mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, executed / submission.name)
    headings, heading, rows = exercise_headings(src), None, []
    where = {nbgrader(c).get("grade_id"): i for i, c in enumerate(nb.cells)} if nb else {}
    unanswered = False                  # did this exercise's solution cell still raise the stub?
    for index, cell in enumerate(src.cells):
        if index in headings:
            heading, unanswered = headings[index], False
        if nb is not None and is_solution(cell) and cell.cell_type == "code":
            ran = results.get(where.get(nbgrader(cell)["grade_id"]), {})
            unanswered = unanswered or ran.get("ename") == "NotImplementedError"
        if not is_grade(cell):
            continue
        gid, points = nbgrader(cell)["grade_id"], nbgrader(cell)["points"]
        row = {"exercise": heading["label"] if heading else gid,
               "title": heading["title"] if heading else "", "grade_id": gid,
               "kind": heading["kind"] if heading else "code",
               "points": 0, "max_points": points}
        if cell.cell_type == "markdown" and is_solution(cell):
            row.update(status="manual", detail="a written answer: grade it by hand")
        elif nb is None:
            row.update(status="not run", detail=problem)
        else:
            run = results.get(where[gid], {"status": "ok", "ename": "", "evalue": ""})
            row.update(status={"ok": "passed", "error": "failed"}.get(run["status"], run["status"]),
                       detail=explain(run, unanswered))
            row["points"] = points if run["status"] == "ok" else 0
        rows.append(row)
    errors = [] if nb is None else [
        {"cell": i + 1, "grade_id": nbgrader(nb.cells[i]).get("grade_id"), **r}
        for i, r in sorted(results.items()) if r["status"] != "ok"]
    auto = [r for r in rows if r["status"] != "manual"]
    return {"submission": str(submission), "source": str(source), "preset": preset,
            "score": sum(r["points"] for r in auto),
            "max_score": sum(r["max_points"] for r in auto),
            "manual_points": sum(r["max_points"] for r in rows if r["status"] == "manual"),
            "exercises": rows, "errors": errors,
            "restarts": 0 if nb is None else restarts,
            "duration_s": round(time.perf_counter() - start, 1)}


def table(result: dict) -> str:
    """A plain-text table of one graded submission."""
    lines = [f"{result['submission']}  (key: {result['source']}, {result['preset']} preset, "
             f"{result['duration_s']} s)",
             f"  {'exercise':<9} {'grade cell':<16} {'points':>8}  status"]
    for row in result["exercises"]:
        status = row["status"] + (f" ({row['detail']})" if row["detail"]
                                  and row["status"] != "passed" else "")
        lines.append(f"  {row['exercise']:<9} {row['grade_id']:<16} "
                     f"{row['points']:>3g} / {row['max_points']:<2g}  {status}")
    lines.append(f"  {'total':<26} {result['score']:>3g} / {result['max_score']:g}"
                 + (f"  (+ {result['manual_points']:g} point(s) to grade by hand)"
                    if result["manual_points"] else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minit2i.tools.assignments grade",
                                     description="Run submissions and score their exercises.")
    parser.add_argument("submissions", nargs="+", type=Path, help="the students' .ipynb files")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--chapter", help="the chapter number (01) or name (01_gan)")
    which.add_argument("--source", type=Path, help="the source notebook with the hidden tests")
    parser.add_argument("--source-dir", type=Path, default=Path("notebooks"),
                        help="where --chapter looks (notebooks/ or assignments/source/)")
    parser.add_argument("--json", type=Path, help="also write all results to this file")
    parser.add_argument("--preset", default="smoke", help="MINIT2I_PRESET for the run")
    parser.add_argument("--exercise-timeout", type=float, default=60,
                        help="seconds allowed to each exercise cell (default 60)")
    parser.add_argument("--cell-timeout", type=float, default=300,
                        help="seconds allowed to each other cell (default 300)")
    parser.add_argument("--notebook-timeout", type=float, default=1200,
                        help="seconds allowed to a whole submission (default 1200)")
    parser.add_argument("--executed", type=Path, help="save the graded notebooks here")
    args = parser.parse_args(argv)

    results, status = [], 0
    for path in args.submissions:
        try:
            source = args.source or find_source(path, args.chapter, args.source_dir)
        except (ValueError, OSError) as error:
            print(f"error: {error}", file=sys.stderr)
            status = 1
            continue
        result = grade(path, source, preset=args.preset,
                       exercise_timeout=args.exercise_timeout, cell_timeout=args.cell_timeout,
                       notebook_timeout=args.notebook_timeout, executed=args.executed)
        results.append(result)
        print(table(result), end="\n\n", flush=True)
    if len(results) > 1:
        print("summary")
        for result in results:
            print(f"  {result['score']:>4g} / {result['max_score']:<4g} {result['submission']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main())
