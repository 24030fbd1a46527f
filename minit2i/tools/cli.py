"""The command line of the assignments: one place that imports both the builder and the grader::

    python -m minit2i.tools.assignments build [--out assignments] [notebooks/NN_name.ipynb ...]
    python -m minit2i.tools.assignments check [notebooks/NN_name.ipynb ...]
    python -m minit2i.tools.assignments grade SUBMISSION.ipynb [...] [--chapter NN | --source PATH]

``assignments`` (the exercise convention, the check and the student versions) and ``autograde``
(running and scoring submissions) import nothing from here; ``autograde`` uses the helpers of
``assignments``. See the book's page "For instructors".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

from .assignments import build, check_notebook, default_chapters
from .autograde import main as grade_main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minit2i.tools.assignments",
                                     description="Build, check and grade the chapters' exercises.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    b = commands.add_parser("build", help="write the student and grader versions of chapters")
    b.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/NN_*.ipynb")
    b.add_argument("--out", type=Path, default=Path("assignments"), help="default: assignments")
    c = commands.add_parser("check", help="validate the chapters' exercise structure")
    c.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/NN_*.ipynb")
    commands.add_parser("grade", add_help=False, help="run and score submissions "
                        "(see: grade --help)")
    args, rest = parser.parse_known_args(argv)
    if args.command == "grade":
        return grade_main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    paths = args.notebooks or default_chapters()
    if not paths:
        parser.error("no notebooks given and none found in notebooks/")
    if args.command == "check":
        bad = 0
        for path in paths:
            problems = check_notebook(nbformat.read(path, as_version=4))
            bad += bool(problems)
            print(f"{path}: " + ("ok" if not problems else "\n  " + "\n  ".join(problems)))
        return 1 if bad else 0
    failed = 0
    for path in paths:                          # a broken chapter does not stop the others
        try:
            (source, release), = build([path], args.out)
            print(f"{release}  (grader's key: {source})")
        except ValueError as error:
            print(f"error: {error}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
