"""The assignments with the real nbgrader (0.9), on chapter 2 in the smoke preset.

From the course folder that ``python -m minit2i.tools.assignments build`` writes,
``nbgrader generate_assignment`` makes the student version and ``nbgrader autograde`` grades
three submissions: the untouched student notebook (0 automatic points), the key (full automatic
points) and the key with one wrong answer (it loses exactly that exercise's points). The written
answer must reach the gradebook as a cell to grade by hand, with its rubric restored next to it
for the formgrader; a manual grade entered there (here through nbgrader's gradebook API, which the
formgrader uses) counts in the total that ``nbgrader export`` writes. Chapter 2 trains no model
from the zoo, so each submission runs in seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from minit2i.tools.assignments import exercise_table, nbgrader, student_version
from minit2i.tools.cli import main

try:
    import nbgrader.api as nbgrader_api
except ImportError:                     # a dev dependency: CI must have it, elsewhere skip
    if os.environ.get("CI"):
        raise
    pytest.skip("nbgrader is not installed (pip install -e '.[dev]')", allow_module_level=True)

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "notebooks" / "02_attention.ipynb"
NAME = CHAPTER.stem
WRONG = json.loads((ROOT / "tests" / "fixtures" / "wrong_answers.json").read_text())[NAME]
WRONG_EXERCISE = "ex2_3"          # the experiment, answered with a wrong setting


def nbgrader_cli(course: Path, *args: str) -> str:
    """Run nbgrader in the course folder (it reads nbgrader_config.py there)."""
    bin_dir = str(Path(sys.executable).parent)            # nbgrader calls alembic from here
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                            capture_output=True, text=True, timeout=600)
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{log[-3000:]}"
    return log


def wrong_answer(nb):
    from test_assignments import replace_region

    return replace_region(nb, f"{WRONG_EXERCISE}_solution", WRONG[f"{WRONG_EXERCISE}_solution"])


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """A course graded by nbgrader: {student: submission notebook in the gradebook}."""
    course = tmp_path_factory.mktemp("course")
    assert main(["build", "--out", str(course), str(CHAPTER)]) == 0
    nbgrader_cli(course, "generate_assignment", NAME, "--force")
    release = nbformat.read(course / "release" / NAME / f"{NAME}.ipynb", as_version=4)
    key = nbformat.read(course / "source" / NAME / f"{NAME}.ipynb", as_version=4)
    for student, nb in [("untouched", release), ("key", key), ("one_wrong", wrong_answer(key))]:
        path = course / "submitted" / student / NAME / f"{NAME}.ipynb"
        path.parent.mkdir(parents=True)
        nbformat.write(nb, path)
    log = nbgrader_cli(course, "autograde", NAME, "--create")
    with nbgrader_api.Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        results = {}
        for student in ("untouched", "key", "one_wrong"):
            sub = gb.find_submission_notebook(NAME, NAME, student)
            results[student] = {
                "code_score": sub.code_score, "max_code_score": sub.max_code_score,
                "needs_manual_grade": sub.needs_manual_grade,
                "grades": {g.name: (g.auto_score, g.max_score, g.needs_manual_grade,
                                    g.cell_type) for g in sub.grades}}
    return course, results, release, log


def test_nbgrader_writes_our_student_version(graded):
    course, _, release, _ = graded
    ours = student_version(nbformat.read(CHAPTER, as_version=4))
    assert [c.source for c in release.cells] == [c.source for c in ours.cells]
    text = "\n".join(c.source for c in release.cells)
    for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "BEGIN MARK SCHEME", "Rubric ("):
        assert marker not in text


def test_untouched_student_notebook_scores_zero(graded):
    _, results, _, _ = graded
    r = results["untouched"]
    assert r["max_code_score"] > 0 and r["code_score"] == 0, r
    assert not r["needs_manual_grade"]                    # an untouched answer scores 0 itself


def test_the_key_scores_full_automatic_marks_and_waits_for_a_grader(graded):
    _, results, _, _ = graded
    r = results["key"]
    assert r["code_score"] == r["max_code_score"] > 0, r
    written = {name: g for name, g in r["grades"].items() if g[3] == "markdown"}
    assert written and all(g[2] for g in written.values()), written   # needs_manual_grade
    assert r["needs_manual_grade"]


def test_one_wrong_answer_loses_exactly_its_exercise(graded):
    _, results, _, _ = graded
    key, wrong = results["key"]["grades"], results["one_wrong"]["grades"]
    lost = {name for name in key if key[name][0] is not None and wrong[name][0] != key[name][0]}
    assert lost == {f"{WRONG_EXERCISE}_tests"}, wrong
    assert wrong[f"{WRONG_EXERCISE}_tests"][0] == 0
    points = {r["grade_ids"][0]: r["points"] for r in exercise_table(
        nbformat.read(CHAPTER, as_version=4))}
    assert (results["one_wrong"]["code_score"]
            == results["key"]["code_score"] - points[f"{WRONG_EXERCISE}_tests"])


def test_the_formgrader_shows_the_rubric_and_the_reason(graded):
    course, _, _, _ = graded
    autograded = course / "autograded"
    blank = nbformat.read(autograded / "untouched" / NAME / f"{NAME}.ipynb", as_version=4)
    rubric = next(c for c in blank.cells if nbgrader(c).get("grade_id") == "ex2_4_rubric")
    assert "### BEGIN MARK SCHEME" in rubric.source and "Rubric (3 points)" in rubric.source
    wrong = nbformat.read(autograded / "one_wrong" / NAME / f"{NAME}.ipynb", as_version=4)
    tests = next(c for c in wrong.cells
                 if nbgrader(c).get("grade_id") == f"{WRONG_EXERCISE}_tests")
    errors = [o for o in tests.outputs if o.get("output_type") == "error"]
    assert errors and errors[0]["ename"] == "CheckFailed"
    assert "a run with the exercise's settings gives" in errors[0]["evalue"]


def test_a_hand_grade_counts_in_the_exported_total(graded):
    course, results, _, _ = graded
    with nbgrader_api.Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        grade = gb.find_grade("ex2_4_answer", NAME, NAME, "key")
        assert grade.needs_manual_grade and grade.max_score == 3
        grade.manual_score = 2                                # what a grader enters
        gb.db.commit()
        total = gb.find_submission_notebook(NAME, NAME, "key").score
    assert total == results["key"]["code_score"] + 2
    nbgrader_cli(course, "export")
    rows = (course / "grades.csv").read_text().splitlines()
    header = rows[0].split(",")
    key = dict(zip(header, next(r for r in rows[1:] if ",key," in f",{r},").split(",")))
    assert float(key["raw_score"]) == total, rows
