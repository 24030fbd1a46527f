"""One release, named in one way everywhere: the notebooks' install lines, the launch buttons,
the book's configuration and the package's version.

The scheme: the package's version X (pyproject.toml, ``minit2i.__version__``) is released as the
git tag ``vX`` of the repository named in ``_config.yml``. Each chapter's first cell installs
that tag when minit2i is missing (Colab), and the book's launch buttons open the notebooks of
that same tag (``repository.branch``), so the notebook a reader runs and the package it installs
belong together. To release: bump the version, let this test name every line to change, tag.
"""

import json
import re
from pathlib import Path

import yaml

import minit2i
from minit2i.budget import CHAPTERS

ROOT = Path(__file__).resolve().parents[1]

FIRST_CELL = """\
# Setup: install minit2i (the release this book was made with) when it is missing (Colab),
# then say what will run here, and how long this chapter takes from an empty cache.
try:
    import minit2i
except ImportError:
    %pip install -q git+{url}@{ref}
    import minit2i
from minit2i.budget import start_chapter
print(start_chapter({chapter}))"""


def release_ref() -> str:
    return f"v{minit2i.__version__}"


def book_config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def first_code_cell(path: Path) -> str:
    nb = json.loads(path.read_text())
    return "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])


def test_the_version_is_one_number():
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert re.findall(r'^version = "([^"]+)"', pyproject, re.M) == [minit2i.__version__]


def test_the_launch_buttons_open_the_release_the_notebooks_install():
    config = book_config()
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", config["repository"]["url"])
    assert config["repository"]["branch"] == release_ref()
    assert config["launch_buttons"]["colab_url"] == "https://colab.research.google.com"


def test_every_chapter_installs_the_release_from_the_books_repository():
    url = book_config()["repository"]["url"]
    for chapter, stem in CHAPTERS.items():
        expected = FIRST_CELL.format(url=url, ref=release_ref(), chapter=chapter)
        assert first_code_cell(ROOT / "notebooks" / f"{stem}.ipynb") == expected, stem
    installs = {m for p in (ROOT / "notebooks").glob("*.ipynb")
                for m in re.findall(r"pip install[^\"\\\\]*", p.read_text())}
    assert installs == {f"pip install -q git+{url}@{release_ref()}"}


def test_the_pages_that_name_the_release_name_this_one():
    for page in ("README.md", "book/how_to_run.md"):
        tags = set(re.findall(r"`(v\d+\.\d+\.\d+)`", (ROOT / page).read_text()))
        assert tags == {release_ref()}, (page, tags)
