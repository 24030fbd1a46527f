"""Classroom assignments from the chapters: the exercise convention, its check, the versions::

    python -m minit2i.tools.assignments build [--out assignments] [notebooks/NN_name.ipynb ...]
    python -m minit2i.tools.assignments check [notebooks/NN_name.ipynb ...]
    python -m minit2i.tools.assignments grade SUBMISSION.ipynb [...] [--chapter NN | --source PATH]
                                              [--json results.json]

The exercises follow nbgrader's conventions (cell metadata schema version 3). Each starts with a
heading ``### Exercise N.k — title (P points, M min)``; a title that starts with
"Experiment:" or "Written:" names its kind (else it is a coding exercise). In a solution cell the
lines from ``### BEGIN SOLUTION`` to ``### END SOLUTION`` become, at the same indentation,

    # YOUR CODE HERE
    raise NotImplementedError()

a markdown answer cell (``solution: true``, ``grade: true``) becomes "YOUR ANSWER HERE", the lines
from ``### BEGIN HIDDEN TESTS`` to ``### END HIDDEN TESTS`` are removed, and so are the lines from
``### BEGIN MARK SCHEME`` to ``### END MARK SCHEME`` of a rubric (a locked markdown cell after a
written answer); outputs are cleared. That is the student version. The public book shows it
(``public_version``: hidden tests and rubrics left out altogether), the instructors' edition
shows everything (``instructors_version``).

``build`` writes nbgrader's course layout: ``source/NN_name/NN_name.ipynb`` (the grader's key,
hidden tests and rubrics included), ``release/NN_name/NN_name.ipynb`` (what students get) and an
``nbgrader_config.py``. Grading lives in ``minit2i.tools.autograde``, the command line in
``minit2i.tools.cli``. See the book's page "For instructors".
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import nbformat

BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
BEGIN_RUBRIC, END_RUBRIC = "### BEGIN MARK SCHEME", "### END MARK SCHEME"   # nbgrader's names
CODE_STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]
ANSWER_STUB = "YOUR ANSWER HERE"
GRADE_ID = re.compile(r"^[A-Za-z0-9_-]+$")      # what nbgrader accepts as a grade_id
HEADING = re.compile(r"^###\s*Exercise\s+(?P<label>[\w.]+)\s*[—–-]+\s*(?P<title>.*?)\s*"
                     r"\((?P<points>\d+(?:\.\d+)?)\s*points?"
                     r"(?:,\s*(?:about\s+)?(?P<minutes>\d+)\s*min(?:utes)?)?\)", re.MULTILINE)
KINDS = {"experiment": "Experiment:", "written": "Written:"}     # else "code"
SECTION = re.compile(r"^#{1,2}\s", re.MULTILINE)    # a chapter-level heading ends the exercises
MESSAGE = re.compile(r"""^\s*(hint=)?[rf]?["']""")   # a line that continues a check's message
# What nbgrader needs to know about these notebooks; ``build`` writes it next to source/.
NBGRADER_CONFIG = """\
# nbgrader settings for the minit2i assignments (written by python -m minit2i.tools.assignments
# build). Run nbgrader from this folder: it reads this file.
import os

c = get_config()  # noqa: F821  (nbgrader provides it)
# The rubric of a written answer is a read-only markdown cell whose "### BEGIN MARK SCHEME" region
# nbgrader removes from the student version and puts back when it autogrades, so the formgrader
# shows it next to the answer. nbgrader expects mark schemes in "task" cells only; allow them here.
c.ClearMarkScheme.enforce_metadata = False
# A chapter's training cells can take longer than nbgrader's default of 30 s a cell.
c.Execute.timeout = 600
# Grade in the smoke preset (seconds per chapter) unless MINIT2I_PRESET says otherwise.
os.environ.setdefault("MINIT2I_PRESET", "smoke")
os.environ.setdefault("MPLBACKEND", "Agg")
"""


def nbgrader(cell) -> dict:
    """The cell's nbgrader metadata ({} for an ordinary cell)."""
    return cell.get("metadata", {}).get("nbgrader", {})


def is_solution(cell) -> bool:
    return bool(nbgrader(cell).get("solution"))


def is_grade(cell) -> bool:
    return bool(nbgrader(cell).get("grade"))


def is_answer(cell) -> bool:
    """A written answer: a markdown cell graded by hand."""
    return cell.cell_type == "markdown" and is_solution(cell) and is_grade(cell)


def is_rubric(cell) -> bool:
    """The rubric of a written answer: a locked markdown cell holding a mark scheme region."""
    meta = nbgrader(cell)
    return (cell.cell_type == "markdown" and bool(meta.get("locked")) and not meta.get("grade")
            and not meta.get("solution") and BEGIN_RUBRIC in cell.source)


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


def remove_regions(source: str, begin: str = BEGIN_HIDDEN, end: str = END_HIDDEN) -> str:
    """The source without its begin ... end regions (delimiter lines included)."""
    lines = source.splitlines()
    for first, last in reversed(regions(source, begin, end)):
        del lines[first:last + 1]
    return "\n".join(lines)


def remove_hidden_tests(source: str) -> str:
    return remove_regions(source, BEGIN_HIDDEN, END_HIDDEN)


def clear_outputs(nb) -> None:
    """Drop outputs, execution counts and the run records (timings, widgets, minit2i)."""
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("execution", None)
    for key in ("widgets", "minit2i"):
        nb.metadata.pop(key, None)


def student_version(nb):
    """The notebook a student gets: solutions stubbed, hidden tests and rubrics removed, outputs
    cleared."""
    nb = copy.deepcopy(nb)
    clear_outputs(nb)
    for cell in nb.cells:
        if is_solution(cell):
            cell.source = (stub_solution(cell.source) if cell.cell_type == "code"
                           else ANSWER_STUB)
        if BEGIN_HIDDEN in cell.source:
            cell.source = remove_hidden_tests(cell.source)
        if BEGIN_RUBRIC in cell.source:
            cell.source = remove_regions(cell.source, BEGIN_RUBRIC, END_RUBRIC)
        if nbgrader(cell).get("locked"):          # as nbgrader does: Jupyter will not edit them
            cell.metadata.update(editable=False, deletable=False)
    return nb


def public_version(nb):
    """What the public book shows: the chapter as it is, and each exercise as a student gets it
    (stubs, visible checks, given code), without outputs, hidden-test cells or rubrics."""
    student, exercises = student_version(nb), set(exercise_cells(nb))
    cells = []
    for index, (cell, original) in enumerate(zip(student.cells, nb.cells)):
        if index not in exercises:
            cells.append(original)                   # the chapter itself, outputs and all
            continue
        if is_rubric(original) or (is_grade(original) and cell.cell_type == "code"
                                   and not is_solution(original) and not cell.source.strip()):
            continue                                 # hidden tests, rubrics: nothing to show
        if is_solution(original):
            tags = [t for t in cell.metadata.get("tags", []) if t != "hide-input"]
            cell.metadata["tags"] = tags             # the stub is the task: show it
            if not tags:
                del cell.metadata["tags"]
        cells.append(cell)
    public = copy.deepcopy(nb)
    public.cells = copy.deepcopy(cells)
    return public


INSTRUCTORS_BANNER = (":::{warning}\nInstructors' edition: the exercises below show their "
                      "solutions, hidden tests and rubrics. Do not publish this build; students "
                      "read the public book and work in the notebooks that `python -m "
                      "minit2i.tools.assignments build` writes to `release/`.\n:::")


def instructors_version(nb):
    """What the instructors' edition of the book shows: everything, with hidden tests behind a
    toggle and each rubric in a box, and a warning under the chapter's title."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if BEGIN_HIDDEN in cell.source and "remove-cell" in tags:
            cell.metadata["tags"] = [t for t in tags if t != "remove-cell"] + ["hide-input"]
        if is_rubric(cell):
            cell.source = (cell.source.replace(BEGIN_RUBRIC, ":::{admonition} Rubric (graders "
                                                             "only)\n:class: tip")
                           .replace(END_RUBRIC, ":::"))
    if any(nbgrader(c) for c in nb.cells):
        nb.cells.insert(1, nbformat.v4.new_markdown_cell(INSTRUCTORS_BANNER))
    return nb


def words_of(text: str) -> str:
    """The words and numbers of a text, one space apart: what survives rendering (Markdown marks,
    maths delimiters, HTML and syntax highlighting go), padded with a space at each end."""
    return " " + " ".join(re.findall(r"[0-9A-Za-z]+", text)) + " "


def secret_lines(nb) -> list[str]:
    """The lines students must not see before they hand in: the code of every solution region,
    the model answers, the hidden tests and the rubrics; without the lines that the public
    version shows anyway (a line such as ``return out`` may also be part of the chapter), the
    lines that continue a check's message (feedback that students see when a check fails) and
    lines of fewer than 12 letters and digits."""
    public = words_of("\n".join(c.source for c in public_version(nb).cells))
    found = []
    for cell in nb.cells:
        lines = cell.source.splitlines()
        spans = []
        if is_solution(cell) and cell.cell_type == "code":
            spans = regions(cell.source, BEGIN_SOLUTION, END_SOLUTION)
        elif is_answer(cell):
            spans = [(-1, len(lines))]
        for begin, end in ((BEGIN_HIDDEN, END_HIDDEN), (BEGIN_RUBRIC, END_RUBRIC)):
            spans += regions(cell.source, begin, end)
        for first, last in spans:
            for line in lines[first + 1:last]:
                words = words_of(line)
                message = cell.cell_type == "code" and MESSAGE.match(line)
                if len(words.replace(" ", "")) >= 12 and words not in public and not message:
                    found.append(line.strip())
    return list(dict.fromkeys(found))


def leaked_lines(nb, page_text: str, secrets: list[str] | None = None) -> list[str]:
    """The secret lines of a chapter (or the given ``secrets``) whose words appear, in order, in
    a rendered page's text."""
    text = words_of(page_text)
    return [line for line in (secret_lines(nb) if secrets is None else secrets)
            if words_of(line) in text]


def exercise_headings(nb) -> dict[int, dict]:
    """Cell index -> {label, title, kind, points, minutes} of each
    '### Exercise N.k — title (P points, M min)' (minutes None where the heading gives none)."""
    found = {}
    for index, cell in enumerate(nb.cells):
        match = HEADING.search(cell.source) if cell.cell_type == "markdown" else None
        if match:
            kind = next((k for k, prefix in KINDS.items() if match["title"].startswith(prefix)),
                        "code")
            found[index] = {"label": match["label"], "title": match["title"], "kind": kind,
                            "points": float(match["points"]),
                            "minutes": int(match["minutes"]) if match["minutes"] else None}
    return found


def exercise_cells(nb) -> list[int]:
    """Indices of the cells of the exercise sections: from each exercise heading to the next
    chapter-level (# or ##) heading, plus every cell with nbgrader metadata."""
    headings, inside, found = exercise_headings(nb), False, []
    for index, cell in enumerate(nb.cells):
        if index in headings:
            inside = True
        elif cell.cell_type == "markdown" and SECTION.search(cell.source):
            inside = False
        if inside or nbgrader(cell):
            found.append(index)
    return found


def exercise_table(nb) -> list[dict]:
    """One row per exercise: label, title, kind, points, minutes and its grade cells' ids."""
    rows, current = [], None
    headings = exercise_headings(nb)
    for index, cell in enumerate(nb.cells):
        if index in headings:
            current = {**headings[index], "grade_ids": []}
            rows.append(current)
        if current is not None and is_grade(cell):
            current["grade_ids"].append(nbgrader(cell)["grade_id"])
    return rows


def check_notebook(nb) -> list[str]:
    """Everything wrong with a chapter's exercise structure, as messages ([] when all is well)."""
    problems, seen, waiting = [], {}, None      # waiting: a solution cell with no grade cell yet
    headings, heading, heading_sum = exercise_headings(nb), None, 0.0

    answers_seen, rubric_wanted = 0, None        # rubric_wanted: a written answer's cell

    def close_heading():
        if heading is None:
            return
        if heading_sum != heading["points"]:
            problems.append(f"Exercise {heading['label']} says {heading['points']:g} points but "
                            f"its grade cells carry {heading_sum:g}")
        if heading["minutes"] is None:
            problems.append(f"Exercise {heading['label']} states no time: end its heading with "
                            "(P points, M min)")
        if (heading["kind"] == "written") != bool(answers_seen):
            problems.append(f"Exercise {heading['label']}: a 'Written:' exercise needs a markdown "
                            "answer cell, and only a 'Written:' exercise has one")

    for index, cell in enumerate(nb.cells):
        where = f"cell {index + 1}"
        if index in headings:
            close_heading()
            heading, heading_sum, answers_seen = headings[index], 0.0, 0
        meta = nbgrader(cell)
        if rubric_wanted is not None and (is_rubric(cell) or index in headings
                                          or is_solution(cell)):
            if not is_rubric(cell):
                problems.append(f"cell {rubric_wanted + 1}: a written answer needs a rubric after "
                                f"it (a locked markdown cell with a {BEGIN_RUBRIC} region)")
            rubric_wanted = None
        if is_answer(cell):
            answers_seen += 1
            rubric_wanted = index
        for begin, end in ((BEGIN_SOLUTION, END_SOLUTION), (BEGIN_HIDDEN, END_HIDDEN),
                           (BEGIN_RUBRIC, END_RUBRIC)):
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
            if spans and begin == BEGIN_RUBRIC and not is_rubric(cell):
                problems.append(f"{where}: a mark scheme outside a locked markdown cell (with "
                                "no points) would be given to students")
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
    if rubric_wanted is not None:
        problems.append(f"cell {rubric_wanted + 1}: a written answer needs a rubric after it (a "
                        f"locked markdown cell with a {BEGIN_RUBRIC} region)")
    close_heading()
    if not seen:
        problems.append("no exercises: no cell has nbgrader metadata")
    return problems


def chapter_name(path: str | Path) -> str:
    return Path(path).stem


def build(paths: list[Path], out: Path) -> list[tuple[Path, Path]]:
    """Write source/NAME/NAME.ipynb and release/NAME/NAME.ipynb under out for each chapter, and
    out/nbgrader_config.py."""
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
    if written:
        (out / "nbgrader_config.py").write_text(NBGRADER_CONFIG)
    return written


def default_chapters() -> list[Path]:
    return sorted(Path("notebooks").glob("[0-9][0-9]_*.ipynb"))


if __name__ == "__main__":         # the command line (build, check, grade) lives in cli.py
    from .cli import main

    sys.exit(main())
