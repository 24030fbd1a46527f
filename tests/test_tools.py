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
loaded = sorted(m for m in sys.modules if m.startswith("minit2i.tools."))
assert loaded == [], loaded
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

