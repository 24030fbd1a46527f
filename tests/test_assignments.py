"""Assignments: student, public and instructors' versions, the structure check, the autograder.

The fixture tests/fixtures/00_tiny.ipynb is a small chapter in the exercise convention (three
code exercises, a written answer with its rubric and an experiment), so the grader's corner cases
run in seconds. Every real chapter in notebooks/ is checked too; grading a real chapter runs it
in the smoke preset, so those tests are marked slow. tests/fixtures/wrong_answers.json holds one
plausible wrong answer for every automatically graded exercise of every chapter.
"""

import copy
import json
from pathlib import Path

import nbformat
import pytest

from minit2i.tools.assignments import (
    ANSWER_STUB,
    BEGIN_RUBRIC,
    BEGIN_SOLUTION,
    END_RUBRIC,
    END_SOLUTION,
    INSTRUCTORS_BANNER,
    build,
    check_notebook,
    exercise_table,
    instructors_version,
    leaked_lines,
    nbgrader,
    public_version,
    regions,
    secret_lines,
    student_version,
)
from minit2i.tools.autograde import explain, find_source, grade, merge, table
from minit2i.tools.cli import main

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "00_tiny.ipynb"
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
WRONG = json.loads((ROOT / "tests" / "fixtures" / "wrong_answers.json").read_text())
FAST = {"exercise_timeout": 20, "cell_timeout": 60, "notebook_timeout": 120}
FIXTURE_POINTS = {"ex0_1_tests": 2, "ex0_2_tests": 3, "ex0_3_tests": 3, "ex0_5_tests": 2}
FIXTURE_WRONG = {"ex0_1": "return None", "ex0_2": "return None", "ex0_3": "return None",
                 "ex0_5": "spread_100 = float(torch.tensor([average_of_draws(10, s) "
                          "for s in range(50)]).std())"}


def read(path):
    return nbformat.read(path, as_version=4)


def cell_of(nb, grade_id):
    return next(c for c in nb.cells if nbgrader(c).get("grade_id") == grade_id)


def replace_region(nb, grade_id, body):
    """A copy of nb whose solution region in cell grade_id holds `body` (at its indentation)."""
    nb = copy.deepcopy(nb)
    cell = cell_of(nb, grade_id)
    lines = cell.source.splitlines()
    (first, last), = regions(cell.source, BEGIN_SOLUTION, END_SOLUTION)
    indent = lines[first][: len(lines[first]) - len(lines[first].lstrip())]
    lines[first:last + 1] = [indent + line for line in body.splitlines()]
    cell.source = "\n".join(lines)
    return nb


def points(result):
    return {row["grade_id"]: row["points"] for row in result["exercises"]
            if row["status"] != "manual"}


def grade_nb(nb, tmp_path, source=FIXTURE, name="submission.ipynb", **kw):
    path = tmp_path / name
    nbformat.write(nb, path)
    return grade(path, source, **{**FAST, **kw})


# --- building the student version -------------------------------------------------------------

def test_student_version_stubs_solutions_keeps_the_rest():
    nb = read(FIXTURE)
    nb.cells[3].outputs = [nbformat.v4.new_output("stream", text="old output")]
    nb.cells[3].execution_count = 7
    student = student_version(nb)
    assert cell_of(student, "ex0_1_solution").source == (
        'def scaled_sum(x):\n    """SCALE times the sum of the entries of x, as a float."""\n'
        "    # YOUR CODE HERE\n    raise NotImplementedError()")
    # a region inside a loop keeps its indentation and the code after it
    assert cell_of(student, "ex0_2_solution").source.endswith(
        "    for a, b in zip(values, values[1:]):\n        # YOUR CODE HERE\n"
        "        raise NotImplementedError()\n    return count")
    assert cell_of(student, "ex0_4_answer").source == ANSWER_STUB
    for gid in FIXTURE_POINTS:                      # hidden tests gone, the cell and its id kept
        assert cell_of(student, gid).source.strip() == ""
        assert nbgrader(cell_of(student, gid)) == nbgrader(cell_of(nb, gid))
    assert cell_of(student, "ex0_1_checks").source == cell_of(nb, "ex0_1_checks").source
    assert cell_of(student, "ex0_1_checks").metadata["editable"] is False
    assert "editable" not in cell_of(student, "ex0_1_solution").metadata
    assert all(c.outputs == [] and c.execution_count is None
               for c in student.cells if c.cell_type == "code")
    assert "SOLUTION" not in "".join(c.source for c in student.cells)
    assert "HIDDEN" not in "".join(c.source for c in student.cells)
    assert len(student.cells) == len(nb.cells)
    assert nb.cells[3].execution_count == 7         # the chapter itself is not modified


def test_build_writes_nbgrader_layout(tmp_path):
    (source, release), = build([FIXTURE], tmp_path)
    assert source == tmp_path / "source" / "00_tiny" / "00_tiny.ipynb"
    assert release == tmp_path / "release" / "00_tiny" / "00_tiny.ipynb"
    key, student = read(source), read(release)
    assert "### BEGIN HIDDEN TESTS" in cell_of(key, "ex0_1_tests").source
    assert cell_of(student, "ex0_1_tests").source == ""
    assert student.metadata["minit2i_assignment"] == {"chapter": "00_tiny", "version": "release"}
    assert student.metadata["kernelspec"]["name"] == "python3"


def test_build_writes_the_nbgrader_config(tmp_path):
    build([FIXTURE], tmp_path)
    config = (tmp_path / "nbgrader_config.py").read_text()
    assert "c.ClearMarkScheme.enforce_metadata = False" in config
    assert 'os.environ.setdefault("MINIT2I_PRESET", "smoke")' in config
    compile(config, "nbgrader_config.py", "exec")


def test_rubrics_leave_the_student_version():
    nb = read(FIXTURE)
    student = student_version(nb)
    rubric = cell_of(student, "ex0_4_rubric")
    assert BEGIN_RUBRIC not in rubric.source and "Rubric (1 point)" not in rubric.source
    assert "instructors' version" in rubric.source           # the visible line stays
    assert "Rubric (1 point)" in cell_of(nb, "ex0_4_rubric").source


def test_public_version_shows_the_task_and_nothing_of_the_key():
    nb = read(FIXTURE)
    nb.cells[3].outputs = [nbformat.v4.new_output("stream", text="chapter output")]
    cell_of(nb, "ex0_1_checks").outputs = [nbformat.v4.new_output("stream", text="6.0")]
    public = public_version(nb)
    ids = [nbgrader(c).get("grade_id") for c in public.cells if nbgrader(c)]
    assert ids == ["ex0_1_solution", "ex0_1_checks", "ex0_2_solution", "ex0_2_checks",
                   "ex0_3_solution", "ex0_3_checks", "ex0_4_answer", "ex0_5_given",
                   "ex0_5_solution", "ex0_5_checks"]             # no hidden tests, no rubric
    stub = cell_of(public, "ex0_1_solution")
    assert "# YOUR CODE HERE" in stub.source and "hide-input" not in stub.metadata.get("tags", [])
    assert cell_of(public, "ex0_4_answer").source == ANSWER_STUB
    assert cell_of(public, "ex0_1_checks").outputs == []           # exercise outputs go
    assert public.cells[3].outputs[0]["text"] == "chapter output"  # the chapter's stay
    assert public.cells[-1].source == 'print("the end of the chapter")'
    text = "\n".join(c.source for c in public.cells)
    assert leaked_lines(nb, text) == []
    assert read(FIXTURE).cells[6].source == nb.cells[6].source     # the key is not modified


def test_secret_lines_are_what_the_key_adds():
    nb = read(FIXTURE)
    secrets = secret_lines(nb)
    assert "return float(SCALE * x.sum())" in secrets                 # a solution line
    assert "assert scaled_sum(x) == 30.0" in secrets                  # a hidden test
    assert any(line.startswith("**Rubric (1 point).**") for line in secrets)
    assert any(line.startswith("Because $e^{z_i - m}") for line in secrets)   # the model answer
    assert "def scaled_sum(x):" not in secrets                        # the stub shows it anyway
    assert 'hint="Use n = 100 and the seeds 0 to 49.")' not in secrets  # feedback, not a secret
    key_text = "\n".join(c.source for c in nb.cells)
    assert leaked_lines(nb, key_text) == secrets                      # the key leaks them all
    # compared by their words: Markdown, maths and HTML around them change nothing
    rendered = ("Rubric (1 point). 1 point for saying that the factor \\(e^{-m}\\) appears "
                "in the numerator and in every term of the denominator, so it cancels.")
    assert leaked_lines(nb, rendered) == [s for s in secrets if s.startswith("**Rubric")]


def test_instructors_version_shows_everything_and_says_so():
    nb = instructors_version(read(FIXTURE))
    assert nb.cells[1].source == INSTRUCTORS_BANNER
    tests = cell_of(nb, "ex0_1_tests")
    assert "hide-input" in tests.metadata["tags"] and "remove-cell" not in tests.metadata["tags"]
    rubric = cell_of(nb, "ex0_4_rubric").source
    assert ":::{admonition} Rubric (graders only)" in rubric and END_RUBRIC not in rubric
    assert "### BEGIN SOLUTION" in cell_of(nb, "ex0_1_solution").source


def test_exercise_table_reads_kinds_points_and_minutes():
    rows = exercise_table(read(FIXTURE))
    assert [(r["label"], r["kind"], r["points"], r["minutes"]) for r in rows] == [
        ("0.1", "code", 2, 5), ("0.2", "code", 3, 10), ("0.3", "code", 3, 10),
        ("0.4", "written", 1, 5), ("0.5", "experiment", 2, 5)]
    assert rows[3]["grade_ids"] == ["ex0_4_answer"] and rows[4]["grade_ids"] == ["ex0_5_tests"]


def test_feedback_is_in_words():
    run = {"status": "error", "ename": "NotImplementedError", "evalue": ""}
    assert explain(run).startswith("not answered yet")
    run = {"status": "error", "ename": "NameError", "evalue": "name 'spread_100' is not defined"}
    assert "no cell defined" in explain(run)
    assert explain(run, unanswered=True).startswith("not answered yet")
    run = {"status": "error", "ename": "CheckFailed", "evalue": "d_loss: expected 0.5, got 1\n.."}
    assert explain(run) == "d_loss: expected 0.5, got 1"
    assert explain({"status": "error", "ename": "AssertionError", "evalue": ""}).startswith(
        "a check failed")


# --- the structure check ----------------------------------------------------------------------

def test_fixture_passes_the_check():
    assert check_notebook(read(FIXTURE)) == []


def _drop_end(nb):
    cell = cell_of(nb, "ex0_2_solution")
    cell.source = cell.source.replace(END_SOLUTION, "")


def _dup_id(nb):
    nbgrader(cell_of(nb, "ex0_3_checks"))["grade_id"] = "ex0_1_checks"


def _no_points(nb):
    del nbgrader(cell_of(nb, "ex0_2_tests"))["points"]


def _no_grade_cell(nb):
    nb.cells.remove(cell_of(nb, "ex0_1_tests"))


def _wrong_heading(nb):
    nbgrader(cell_of(nb, "ex0_3_tests"))["points"] = 5


def _unlocked_tests(nb):
    nbgrader(cell_of(nb, "ex0_1_tests"))["locked"] = False


def _leak(nb):
    cell_of(nb, "ex0_1_checks").source += f"\n{BEGIN_SOLUTION}\nx = 1\n{END_SOLUTION}"


def _no_minutes(nb):
    nb.cells[5].source = nb.cells[5].source.replace("(2 points, 5 min)", "(2 points)")


def _no_rubric(nb):
    nb.cells.remove(cell_of(nb, "ex0_4_rubric"))


def _rubric_in_the_open(nb):
    cell_of(nb, "ex0_1_checks").source += f"\n# {BEGIN_RUBRIC}\n# x\n# {END_RUBRIC}"
    cell_of(nb, "ex0_1_checks").source = cell_of(nb, "ex0_1_checks").source.replace("# ###", "###")


def _written_without_answer(nb):
    nb.cells[9].source = nb.cells[9].source.replace("Big steps", "Written: big steps")


@pytest.mark.parametrize("corrupt, message", [
    (_drop_end, "never closed"), (_dup_id, "already used"), (_no_points, "needs points"),
    (_no_grade_cell, "no grade cell"), (_wrong_heading, "says 3 points"),
    (_unlocked_tests, "must be locked"), (_leak, "outside a code solution cell"),
    (_no_minutes, "states no time"), (_no_rubric, "needs a rubric"),
    (_rubric_in_the_open, "mark scheme outside a locked markdown cell"),
    (_written_without_answer, "'Written:' exercise needs a markdown answer")])
def test_check_finds_broken_structure(corrupt, message):
    nb = read(FIXTURE)
    corrupt(nb)
    problems = check_notebook(nb)
    assert any(message in p for p in problems), problems


def test_check_command(tmp_path, capsys):
    assert main(["check", str(FIXTURE)]) == 0
    nb = read(FIXTURE)
    _dup_id(nb)
    nbformat.write(nb, tmp_path / "bad.ipynb")
    assert main(["check", str(tmp_path / "bad.ipynb")]) == 1
    assert "already used" in capsys.readouterr().out


def test_build_command_skips_a_broken_chapter(tmp_path, capsys):
    nb = read(FIXTURE)
    _no_points(nb)
    nbformat.write(nb, tmp_path / "01_bad.ipynb")
    out = tmp_path / "assignments"
    assert main(["build", "--out", str(out), str(tmp_path / "01_bad.ipynb"), str(FIXTURE)]) == 1
    assert "01_bad" in capsys.readouterr().err
    assert (out / "release" / "00_tiny" / "00_tiny.ipynb").is_file()
    assert not (out / "release" / "01_bad").exists()


def test_find_source_from_metadata_name_or_option(tmp_path):
    (source, release), = build([FIXTURE], tmp_path / "a")
    keys = tmp_path / "a" / "source"
    renamed = tmp_path / "alice.ipynb"                      # the chapter is in its metadata
    renamed.write_text(release.read_text())
    assert find_source(renamed, None, keys) == source
    named = tmp_path / "00_tiny-bob.ipynb"                  # no metadata: the file name tells
    nbformat.write(nbformat.v4.new_notebook(), named)
    assert find_source(named, None, keys) == source
    assert find_source(tmp_path / "whatever.ipynb", "0", keys) == source
    with pytest.raises(ValueError, match="--chapter"):
        find_source(tmp_path / "whatever.ipynb", None, keys)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_real_chapter_passes_the_check(chapter):
    assert check_notebook(read(chapter)) == []


# --- merging: the student's copy of a test is never trusted -----------------------------------

def test_merge_restores_locked_cells_and_points():
    nb = student_version(read(FIXTURE))
    cell_of(nb, "ex0_1_checks").source = "pass"
    nbgrader(cell_of(nb, "ex0_2_tests"))["points"] = 100
    nb.cells.remove(cell_of(nb, "ex0_3_tests"))
    nb.cells.insert(4, nbformat.v4.new_code_cell("helper = 1", metadata={"nbgrader": {
        "grade": True, "grade_id": "mine", "points": 50, "locked": True, "schema_version": 3}}))
    graded, source = merge(read(FIXTURE), nb), read(FIXTURE)
    for gid in ("ex0_1_checks", "ex0_2_tests", "ex0_3_tests"):
        assert cell_of(graded, gid).source == cell_of(source, gid).source
        assert nbgrader(cell_of(graded, gid)) == nbgrader(cell_of(source, gid))
    ids = [nbgrader(c).get("grade_id") for c in graded.cells if nbgrader(c)]
    assert ids == [nbgrader(c)["grade_id"] for c in source.cells if nbgrader(c)]
    assert any(c.source == "helper = 1" and not nbgrader(c) for c in graded.cells)


# --- grading the fixture ----------------------------------------------------------------------

@pytest.mark.slow
def test_untouched_student_notebook_scores_zero_and_stops_only_at_stubs(tmp_path):
    result = grade_nb(student_version(read(FIXTURE)), tmp_path)
    assert points(result) == {gid: 0 for gid in FIXTURE_POINTS}
    assert result["score"] == 0 and result["max_score"] == 10 and result["manual_points"] == 1
    assert_only_stub_errors(result)
    for gid in ("ex0_1_tests", "ex0_5_tests"):            # a stubbed function, an experiment
        row = next(r for r in result["exercises"] if r["grade_id"] == gid)
        assert row["detail"].startswith("not answered yet"), row


def assert_only_stub_errors(result):
    """The first error is a stub's NotImplementedError, and every error is in an exercise."""
    errors = result["errors"]
    assert errors, "an untouched student notebook must raise NotImplementedError somewhere"
    assert errors[0]["ename"] == "NotImplementedError", errors[0]
    outside = [f"cell {e['cell']}: {e['ename']}: {e['evalue'][:120]}"
               for e in errors if not e["grade_id"]]
    assert outside == [], "cells outside the exercises failed: " + "; ".join(outside)


@pytest.mark.slow
def test_solution_scores_full_marks(tmp_path):
    result = grade_nb(read(FIXTURE), tmp_path)
    assert points(result) == FIXTURE_POINTS
    assert result["score"] == result["max_score"] == 10 and result["errors"] == []
    text = table(result)
    assert "total" in text and "10 / 10" in text and "grade it by hand" in text
    kinds = {r["grade_id"]: r["kind"] for r in result["exercises"]}
    assert kinds == {"ex0_1_tests": "code", "ex0_2_tests": "code", "ex0_3_tests": "code",
                     "ex0_4_answer": "written", "ex0_5_tests": "experiment"}


@pytest.mark.slow
@pytest.mark.parametrize("exercise", sorted(FIXTURE_WRONG))
def test_one_wrong_answer_loses_exactly_its_points(tmp_path, exercise):
    result = grade_nb(replace_region(read(FIXTURE), f"{exercise}_solution",
                                     FIXTURE_WRONG[exercise]), tmp_path)
    assert points(result) == {**FIXTURE_POINTS, f"{exercise}_tests": 0}
    row = next(r for r in result["exercises"] if r["grade_id"] == f"{exercise}_tests")
    assert row["status"] == "failed"
    if exercise == "ex0_5":                       # an experiment run with the wrong setting
        assert row["detail"].startswith("the spread of 50 averages of 100 draws: you report "), row
        assert "Use n = 100" in row["detail"]


@pytest.mark.slow
def test_an_endless_loop_costs_only_its_exercise(tmp_path):
    nb = replace_region(read(FIXTURE), "ex0_2_solution", "while True:\n    pass")
    result = grade_nb(nb, tmp_path, exercise_timeout=2)
    assert points(result) == {**FIXTURE_POINTS, "ex0_2_tests": 0}
    row = next(r for r in result["exercises"] if r["grade_id"] == "ex0_2_tests")
    assert row["status"] == "timeout" and result["restarts"] == 0   # the interrupt stopped it


@pytest.mark.slow
def test_a_killed_kernel_costs_only_its_exercise(tmp_path):
    nb = replace_region(read(FIXTURE), "ex0_1_solution", "import os\nos._exit(1)")
    result = grade_nb(nb, tmp_path)
    assert points(result) == {**FIXTURE_POINTS, "ex0_1_tests": 0}
    assert result["restarts"] == 2                  # the checks cell, then the tests cell
    row = next(r for r in result["exercises"] if r["grade_id"] == "ex0_1_tests")
    assert row["status"] == "skipped" and "kernel died" in row["detail"]


@pytest.mark.slow
def test_an_uninterruptible_cell_costs_only_its_exercise(tmp_path):
    body = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
    nb = replace_region(read(FIXTURE), "ex0_3_solution", body)
    result = grade_nb(nb, tmp_path, exercise_timeout=2, grace=2)
    assert points(result) == {**FIXTURE_POINTS, "ex0_3_tests": 0}
    assert result["restarts"] == 2


@pytest.mark.slow
def test_tampered_tests_do_not_earn_points(tmp_path):
    nb = student_version(read(FIXTURE))
    for gid in FIXTURE_POINTS:
        cell_of(nb, gid).source = "pass"
    result = grade_nb(nb, tmp_path)
    assert result["score"] == 0


@pytest.mark.slow
def test_grade_command_on_a_folder(tmp_path, capsys):
    (source, release), = build([FIXTURE], tmp_path / "assignments")
    subs = tmp_path / "submissions"
    subs.mkdir()
    nbformat.write(read(release), subs / "alice.ipynb")
    nbformat.write(replace_region(read(source), "ex0_3_solution", "return z.exp()"),
                   subs / "bob.ipynb")
    (subs / "carol.ipynb").write_text("not a notebook")
    out = tmp_path / "results.json"
    code = main(["grade", *map(str, sorted(subs.glob("*.ipynb"))), "--chapter", "00",
                 "--source-dir", str(tmp_path / "assignments" / "source"), "--json", str(out),
                 "--exercise-timeout", "20"])
    assert code == 0
    results = {Path(r["submission"]).stem: r for r in json.loads(out.read_text())}
    assert results["alice"]["score"] == 0
    assert points(results["bob"]) == {**FIXTURE_POINTS, "ex0_3_tests": 0}
    assert results["carol"]["score"] == 0 and results["carol"]["max_score"] == 10
    text = capsys.readouterr().out
    assert "summary" in text and "7 / 10" in text


# --- the real chapters ------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_real_chapter_student_version_scores_zero(chapter, tmp_path):
    result = grade_nb(student_version(read(chapter)), tmp_path, source=chapter,
                      exercise_timeout=60, cell_timeout=300, notebook_timeout=600)
    assert result["max_score"] > 0 and result["score"] == 0, table(result)
    assert_only_stub_errors(result)


@pytest.mark.slow
@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_real_chapter_solution_scores_full_marks(chapter, tmp_path):
    result = grade_nb(read(chapter), tmp_path, source=chapter,
                      exercise_timeout=60, cell_timeout=300, notebook_timeout=600)
    assert result["score"] == result["max_score"] > 0, table(result)
    failed = [f"cell {e['cell']}: {e['ename']}: {e['evalue'][:120]}" for e in result["errors"]]
    assert failed == [], f"{chapter.name} does not run cleanly in smoke: " + "; ".join(failed)


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_real_chapter_is_a_lab_session(chapter):
    """An experiment, a written question with a rubric, and coding; a time on every exercise,
    within one lab session; a wrong answer on file for every automatically graded exercise."""
    nb = read(chapter)
    rows = exercise_table(nb)
    kinds = [r["kind"] for r in rows]
    assert {"code", "experiment", "written"} <= set(kinds), kinds
    assert all(r["minutes"] for r in rows) and sum(r["minutes"] for r in rows) <= 90
    rubrics = [c for c in nb.cells if BEGIN_RUBRIC in c.source]
    assert len(rubrics) == kinds.count("written")
    solutions = {nbgrader(c)["grade_id"] for c in nb.cells
                 if nbgrader(c).get("solution") and c.cell_type == "code"}
    assert set(WRONG[chapter.stem]) == solutions, "tests/fixtures/wrong_answers.json is stale"


@pytest.mark.slow
@pytest.mark.parametrize("parity", [0, 1], ids=["odd exercises wrong", "even exercises wrong"])
@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.name)
def test_real_chapter_wrong_answers_lose_exactly_their_points(chapter, parity, tmp_path):
    """Every other exercise answered wrong: those lose all their points, the others keep all."""
    nb = read(chapter)
    wrong = list(WRONG[chapter.stem])[parity::2]
    for gid in wrong:
        nb = replace_region(nb, gid, WRONG[chapter.stem][gid])
    result = grade_nb(nb, tmp_path, source=chapter, exercise_timeout=60, cell_timeout=300,
                      notebook_timeout=600)
    want = {gid.removesuffix("_solution") + "_tests" for gid in wrong}
    auto = [r for r in result["exercises"] if r["status"] != "manual"]
    assert {r["grade_id"] for r in auto if r["points"] == 0} == want, table(result)
    assert all(r["points"] == r["max_points"] for r in auto if r["grade_id"] not in want)
    assert all(r["status"] == "failed" and r["detail"] for r in auto if r["grade_id"] in want)
