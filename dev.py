#!/usr/bin/env python3
"""The two commands of the README, with all their set-up.

    python3 dev.py book     build the book into _build/html (from the notebooks' stored outputs)
    python3 dev.py book --instructors
                            the instructors' edition, with the exercises' solutions, hidden tests
                            and rubrics, into _build/instructors/_build/html (do not publish it)
    python3 dev.py test     run the tests: lint, the package, the notebooks (smoke preset), the book

Each command first makes a virtual environment in .venv (unless one is active) and installs
minit2i with its dev tools there; it reinstalls only when pyproject.toml or requirements.txt change.
Only the Python standard library is used here, so a fresh machine with Python >= 3.10 suffices.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"


def run(*cmd, env=None) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env)
    if result.returncode != 0:
        sys.exit(result.returncode)


def python() -> Path:
    """The environment's interpreter, after making sure everything is installed in it."""
    if sys.version_info < (3, 10):  # noqa: UP036  (this file may run under an old python3)
        sys.exit(f"minit2i needs Python >= 3.10; this is {sys.version.split()[0]}")
    if sys.prefix != sys.base_prefix or os.environ.get("MINIT2I_NO_VENV"):
        py = Path(sys.executable)              # an active venv (or conda env): use it
    else:
        py = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        if not py.exists():
            run(sys.executable, "-m", "venv", VENV)
    stamp = py.parent.parent / ".minit2i-install-stamp"
    wanted = hashlib.sha256(b"".join(
        (ROOT / f).read_bytes() for f in ("pyproject.toml", "requirements.txt"))).hexdigest()
    if not stamp.exists() or stamp.read_text() != wanted:
        run(py, "-m", "pip", "install", "--upgrade", "pip")
        run(py, "-m", "pip", "install", "-r", ROOT / "requirements.txt", "-e", f"{ROOT}[dev]")
        stamp.write_text(wanted)
    return py


def book(instructors: bool = False) -> None:
    py = python()
    env = {**os.environ, "MINIT2I_EDITION": "instructors" if instructors else "public"}
    out = ROOT / "_build" / "instructors" if instructors else ROOT
    # jupyter_book has no __main__ module: call its command-line entry point.
    run(py, "-c", "from jupyter_book.cli.main import main; main()", "build", ROOT,
        "--path-output", out, "-W", "-n", "--keep-going", env=env)
    html = out / "_build" / "html" / "index.html"
    print(f"\nThe instructors' edition is in {html}: it shows the solutions, do not publish it"
          if instructors else f"\nThe book is in {html}")


def test(extra: list[str]) -> None:
    py = python()
    env = dict(os.environ)
    env["MINIT2I_PRESET"] = "smoke"                 # notebooks and models at CI scale
    env.setdefault("MINIT2I_CACHE", tempfile.mkdtemp(prefix="minit2i-cache-"))
    env.setdefault("MPLBACKEND", "Agg")
    run(py, "-m", "ruff", "check", "minit2i", "tests", "benchmarks", "dev.py", env=env)
    run(py, "-m", "pytest", "tests", "notebooks", "--nbval-lax", "-p", "no:cacheprovider",
        "--durations=15", *extra, env=env)


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in ("book", "test"):
        sys.exit(__doc__)
    if sys.argv[1] == "book":
        if set(sys.argv[2:]) - {"--instructors"}:
            sys.exit(__doc__)
        book(instructors="--instructors" in sys.argv[2:])
    else:
        test(sys.argv[2:])


if __name__ == "__main__":
    main()
