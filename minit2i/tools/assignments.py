"""Classroom assignments from the chapters: build the student versions, check, grade::

    python -m minit2i.tools.assignments build [--out assignments] [notebooks/NN_name.ipynb ...]
    python -m minit2i.tools.assignments check [notebooks/NN_name.ipynb ...]
    python -m minit2i.tools.assignments grade SUBMISSION.ipynb [...] [--chapter NN | --source PATH]
                                        [--json results.json]

The exercises follow nbgrader's conventions (cell metadata schema version 3). In a solution cell
the lines from ``### BEGIN SOLUTION`` to ``### END SOLUTION`` become, at the same indentation,

    # YOUR CODE HERE
    raise NotImplementedError()

a markdown answer cell (``solution: true``) becomes "YOUR ANSWER HERE", the lines from
``### BEGIN HIDDEN TESTS`` to ``### END HIDDEN TESTS`` are removed, and outputs are cleared.
``build`` writes nbgrader's course layout: ``source/NN_name/NN_name.ipynb`` (the grader's key,
hidden tests included) and ``release/NN_name/NN_name.ipynb`` (what students get). Grading lives
in ``minit2i.tools.autograde``, the command line in ``minit2i.tools.cli``. See the book's page
"For instructors".
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import nbformat

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
CODE_STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]
ANSWER_STUB = "YOUR ANSWER HERE"
GRADE_ID = re.compile(r"^[A-Za-z0-9_-]+$")      # what nbgrader accepts as a grade_id
HEADING = re.compile(r"^###\s*Exercise\s+(?P<label>[\w.]+)\s*[—–-]+\s*(?P<title>.*?)\s*"
                     r"\((?P<points>\d+(?:\.\d+)?)\s*points?\)", re.MULTILINE)


def nbgrader(cell) -> dict:
    """The cell's nbgrader metadata ({} for an ordinary cell)."""
    return cell.get("metadata", {}).get("nbgrader", {})


def is_solution(cell) -> bool:
    return bool(nbgrader(cell).get("solution"))


def is_grade(cell) -> bool:
    return bool(nbgrader(cell).get("grade"))


def regions(source: str, begin: str, end: str) -> list[tuple[int, int]]:
    """Line spans (first, last) of the begin ... end regions; ValueError if unbalanced."""
    spans, start = [], None
    for number, line in enumerate(source.splitlines()):
        text = line.strip()
        if text.startswith(begin):
            if start is not None:
                raise ValueError(f"'{begin}' on line {number + 1} inside an open region "
                                 f"(opened on line {start + 1})")
            start = number
        elif text.startswith(end):
            if start is None:
                raise ValueError(f"'{end}' on line {number + 1} without a '{begin}' before it")
            spans.append((start, number))
            start = None
    if start is not None:
        raise ValueError(f"'{begin}' on line {start + 1} is never closed by '{end}'")
    return spans


def stub_solution(source: str) -> str:
    """Replace each solution region by the stub, indented like its BEGIN line."""
    lines = source.splitlines()
    spans = regions(source, BEGIN_SOLUTION, END_SOLUTION)
    if not spans:                               # nbgrader's rule: no region, the whole cell goes
        return "\n".join(CODE_STUB)
    for first, last in reversed(spans):
        indent = lines[first][: len(lines[first]) - len(lines[first].lstrip())]
        lines[first:last + 1] = [indent + stub for stub in CODE_STUB]
    return "\n".join(lines)


def remove_hidden_tests(source: str) -> str:
    lines = source.splitlines()
    for first, last in reversed(regions(source, BEGIN_HIDDEN, END_HIDDEN)):
        del lines[first:last + 1]
    return "\n".join(lines)


def clear_outputs(nb) -> None:
    """Drop outputs, execution counts and the run records (timings, widgets, minit2i)."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("execution", None)
    for key in ("widgets", "minit2i"):
        nb.metadata.pop(key, None)


def student_version(nb):
    """The notebook a student gets: solutions stubbed, hidden tests removed, outputs cleared."""
    nb = copy.deepcopy(nb)
    clear_outputs(nb)
    for cell in nb.cells:
        if is_solution(cell):
            cell.source = (stub_solution(cell.source) if cell.cell_type == "code"
                           else ANSWER_STUB)
        if BEGIN_HIDDEN in cell.source:
            cell.source = remove_hidden_tests(cell.source)
        if nbgrader(cell).get("locked"):          # as nbgrader does: Jupyter will not edit them
            cell.metadata.update(editable=False, deletable=False)
    return nb


def exercise_headings(nb) -> dict[int, dict]:
    """Cell index -> {label, title, points} of each '### Exercise N.k — title (P points)'."""
    found = {}
    for index, cell in enumerate(nb.cells):
        match = HEADING.search(cell.source) if cell.cell_type == "markdown" else None
        if match:
            found[index] = {"label": match["label"], "title": match["title"],
                            "points": float(match["points"])}
    return found


def check_notebook(nb) -> list[str]:
    """Everything wrong with a chapter's exercise structure, as messages ([] when all is well)."""
    problems, seen, waiting = [], {}, None      # waiting: a solution cell with no grade cell yet
    headings, heading, heading_sum = exercise_headings(nb), None, 0.0

    def close_heading():
        if heading is not None and heading_sum != heading["points"]:
            problems.append(f"Exercise {heading['label']} says {heading['points']:g} points but "
                            f"its grade cells carry {heading_sum:g}")

    for index, cell in enumerate(nb.cells):
        where = f"cell {index + 1}"
        if index in headings:
            close_heading()
            heading, heading_sum = headings[index], 0.0
        meta = nbgrader(cell)
        for begin, end in ((BEGIN_SOLUTION, END_SOLUTION), (BEGIN_HIDDEN, END_HIDDEN)):
            try:
                spans = regions(cell.source, begin, end)
            except ValueError as error:
                problems.append(f"{where}: {error}")
                continue
            if spans and begin == BEGIN_SOLUTION and not (is_solution(cell)
                                                          and cell.cell_type == "code"):
                problems.append(f"{where}: a solution region outside a code solution cell "
                                "would be given to students")
            if spans and begin == BEGIN_HIDDEN and not meta.get("locked"):
                problems.append(f"{where}: hidden tests in a cell that is not locked")
        if not meta:
            continue
        gid = meta.get("grade_id", "")
        where = f"cell {index + 1} ({gid or 'no grade_id'})"
        if meta.get("schema_version") != 3:
            problems.append(f"{where}: nbgrader schema_version must be 3")
        if not GRADE_ID.match(str(gid)):
            problems.append(f"{where}: grade_id must be letters, digits, '_' or '-'")
        elif gid in seen:
            problems.append(f"{where}: grade_id already used by cell {seen[gid] + 1}")
        seen.setdefault(gid, index)
        if is_solution(cell) and meta.get("locked"):
            problems.append(f"{where}: a solution cell must not be locked")
        if is_solution(cell) and cell.cell_type == "code":
            if BEGIN_SOLUTION not in cell.source:
                problems.append(f"{where}: a code solution cell needs a {BEGIN_SOLUTION} region")
            if waiting is not None:
                problems.append(f"cell {waiting[0] + 1} ({waiting[1]}): no grade cell with "
                                "points before the next solution cell")
            waiting = (index, gid)
        if is_grade(cell):
            points = meta.get("points")
            if not isinstance(points, (int, float)) or points <= 0:
                problems.append(f"{where}: a grade cell needs points > 0, got {points!r}")
            else:
                heading_sum += points
            if cell.cell_type == "code" and not (meta.get("locked") or is_solution(cell)):
                problems.append(f"{where}: a test cell must be locked")
            if cell.cell_type == "code":
                waiting = None
    if waiting is not None:
        problems.append(f"cell {waiting[0] + 1} ({waiting[1]}): no grade cell with points after "
                        "this solution cell")
    close_heading()
    if not seen:
        problems.append("no exercises: no cell has nbgrader metadata")
    return problems


def chapter_name(path: str | Path) -> str:
    return Path(path).stem


def build(paths: list[Path], out: Path) -> list[tuple[Path, Path]]:
    """Write source/NAME/NAME.ipynb and release/NAME/NAME.ipynb under out for each chapter."""
    written = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        problems = check_notebook(nb)
        if problems:
            raise ValueError(f"{path} does not follow the exercise convention:\n  "
                             + "\n  ".join(problems))
        name = chapter_name(path)
        key = copy.deepcopy(nb)
        clear_outputs(key)
        student = student_version(nb)
        for version, kind in ((key, "source"), (student, "release")):
            version.metadata["minit2i_assignment"] = {"chapter": name, "version": kind}
            target = out / kind / name / f"{name}.ipynb"
            target.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(version, target)
        written.append((out / "source" / name / f"{name}.ipynb",
                        out / "release" / name / f"{name}.ipynb"))
    return written


def default_chapters() -> list[Path]:
    return sorted(Path("notebooks").glob("[0-9][0-9]_*.ipynb"))


if __name__ == "__main__":         # the command line (build, check, grade) lives in cli.py
    from .cli import main

    sys.exit(main())
