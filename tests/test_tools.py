"""The book's tooling lives apart: minit2i imports without it, and nothing imports it by chance."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONCEPTS = sorted(p.stem for p in (ROOT / "minit2i").glob("*.py") if p.stem != "__main__")
TOOL_DEPS = ("nbformat", "nbclient", "jupyter_client", "ipykernel", "nbgrader")

# Run in a fresh interpreter in which the notebook tooling's dependencies cannot be imported.
BLOCKED = f"""
import sys
for name in {TOOL_DEPS!r}:
    sys.modules[name] = None            # 'import nbformat' now raises ImportError
import importlib
for name in {CONCEPTS!r}:
    importlib.import_module("minit2i" if name == "__init__" else "minit2i." + name)
importlib.import_module("minit2i.tools.checks")
loaded = sorted(m for m in sys.modules if m.startswith("minit2i.tools."))
assert loaded == ["minit2i.tools.checks"], loaded
print("ok")
"""


def test_minit2i_imports_without_the_tooling_dependencies():
    result = subprocess.run([sys.executable, "-c", BLOCKED], capture_output=True, text=True,
                            cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


@pytest.mark.parametrize("module", [m for m in CONCEPTS if m != "__init__"])
def test_concept_modules_never_import_the_tooling(module):
    text = (ROOT / "minit2i" / f"{module}.py").read_text()
    assert not re.search(r"^\s*(from|import)\s+(\.tools|minit2i\.tools)", text, re.M), module


def test_the_tooling_has_no_import_circle():
    # autograde uses assignments' helpers; only cli imports both; assignments imports neither
    # (its __main__ block hands the command line to cli).
    tools = ROOT / "minit2i" / "tools"
    top = lambda name: (tools / f"{name}.py").read_text().split('if __name__ == "__main__":')[0]  # noqa: E731
    assert not re.search(r"from \.(autograde|cli) import", top("assignments"))
    assert "from .assignments import" in top("autograde")
    assert not re.search(r"from \.cli import", top("autograde"))
    assert "from .assignments import" in top("cli") and "from .autograde import" in top("cli")


def test_the_commands_run_as_modules(tmp_path):
    for module in ("minit2i.tools.assignments", "minit2i.tools.execute"):
        result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True,
                                text=True, cwd=ROOT, env={"PYTHONPATH": str(ROOT),
                                                          "PATH": "/usr/bin:/bin"})
        assert result.returncode == 0, result.stderr[-2000:]
        assert f"python -m {module}" in result.stdout


# --- the checks the exercises use -----------------------------------------------------------

def test_checks_say_what_was_expected_and_what_came_back():
    import torch

    from minit2i.tools.checks import CheckFailed, check, check_close, check_number

    check(True, "never shown")
    with pytest.raises(CheckFailed, match="^d_loss must be a scalar$"):
        check(False, "d_loss must be a scalar")
    assert issubclass(CheckFailed, AssertionError)
    check_close(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0 + 1e-7]), "x")
    with pytest.raises(CheckFailed, match=r"mask: expected shape \(3, 3\), got \(3,\)"):
        check_close(torch.ones(3), torch.ones(3, 3), "mask")
    with pytest.raises(CheckFailed, match=r"loss: expected 0.5, got 0.25$"):
        check_close(torch.tensor(0.25), 0.5, "loss")
    with pytest.raises(CheckFailed, match=r"largest difference is 3, at index \(1, 0\)"):
        check_close(torch.tensor([[1.0, 2], [5, 4]]), torch.tensor([[1.0, 2], [2, 4]]), "out")
    inf = float("inf")
    # the largest difference is never where both sides are the same infinity
    with pytest.raises(CheckFailed, match=r"difference is 1, at index \(1,\)"):
        check_close(torch.tensor([-inf, 2.0]), torch.tensor([-inf, 1.0]), "bias")
    with pytest.raises(CheckFailed, match=r"difference is inf, at index \(0,\)"):
        check_close(torch.tensor([0.0, 1.0]), torch.tensor([-inf, 1.0]), "bias")
    with pytest.raises(CheckFailed, match="got None; does your function return"):
        check_close(None, 1.0, "value")
    with pytest.raises(CheckFailed, match="got NaN"):
        check_close(torch.tensor([float("nan")]), torch.tensor([1.0]), "h")
    check_number(torch.tensor(6), 6, 0, "modes")
    check_number(0.51, 0.5, 0.02, "rate")
    with pytest.raises(CheckFailed, match=r"you report 4, but a run with the exercise's settings "
                                          r"gives 6\. Did you set kind='hinge'\?"):
        check_number(4, 6, 0, "modes", hint="Did you set kind='hinge'?")
    with pytest.raises(CheckFailed, match="± 0.02"):
        check_number(0.6, 0.5, 0.02, "rate")
    with pytest.raises(CheckFailed, match="expected a number"):
        check_number("6", 6, 0, "modes")
    with pytest.raises(CheckFailed, match="expected a number"):
        check_number(True, 1, 0, "modes")


def test_one_thread_restores_the_thread_count():
    import torch

    from minit2i.tools.checks import one_thread

    before = torch.get_num_threads()
    with one_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(ZeroDivisionError), one_thread():
        raise ZeroDivisionError("inside")
    assert torch.get_num_threads() == before
