"""The book: its table of contents, its citations, its build, and its pages in a real browser.

The fast tests read the sources. The others build the book once per session into a temporary
folder (``jupyter-book build -W -n --keep-going``: any warning fails) and check the HTML, where no
line of an exercise's solution, hidden tests or rubric may appear; the instructors' edition is
built too, and must show every one of them (so that check can fail). The
``browser`` tests then open every page in headless Chromium, served from 127.0.0.1 (maths typeset,
images loaded, nothing wider than the text column, a figure on every chapter page), and save a
screenshot of each under ``artifacts/screenshots/``. Without Chromium (or Playwright) the browser
tests are skipped, except when ``CI`` is set: there a missing browser is a failure.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest
import yaml

from minit2i.tools.assignments import leaked_lines, nbgrader, public_version, secret_lines

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book" / "_ext"))

import minit2i_book  # noqa: E402  (the book's own Sphinx extension)

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
# Every key the chapters may cite (see the authors' brief); each must be in references.bib.
REQUIRED_KEYS = """goodfellow2014gan radford2016dcgan arjovsky2017wgan lim2017geometric
miyato2018spectral mescheder2018r1 metz2017unrolled vaswani2017attention dosovitskiy2021vit
vandenoord2017vqvae
razavi2019vqvae2 oord2018cpc radford2021clip esser2021vqgan ramesh2021dalle crowson2022vqganclip
rombach2022ldm ho2020ddpm ghosh2023geneval oord2016pixelrnn isola2017pix2pix lancucki2020robust
zhu2023regularized yu2022vitvqgan""".split()


# ------------------------------------------------------------------------------------------------
# Sources: table of contents and citations (fast, no build)
# ------------------------------------------------------------------------------------------------

def toc_files() -> list[str]:
    """Every document the table of contents lists (root first), without suffix."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            walk(entry.get("sections"))

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return files


def source(docname: str) -> Path:
    for suffix in (".ipynb", ".md"):
        if (ROOT / (docname + suffix)).exists():
            return ROOT / (docname + suffix)
    raise FileNotFoundError(docname)


def test_toc_lists_every_notebook_and_page():
    listed = toc_files()
    assert len(listed) == len(set(listed)), f"listed twice: {listed}"
    missing = [f for f in listed
               if not any((ROOT / (f + s)).exists() for s in (".ipynb", ".md"))]
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"
    existing = [f"notebooks/{p.stem}" for p in (ROOT / "notebooks").glob("*.ipynb")]
    existing += [f"book/{p.stem}" for p in (ROOT / "book").glob("*.md")]
    unlisted = sorted(set(existing) - set(listed))
    assert not unlisted, f"add these to _toc.yml: {unlisted}"
    chapters = [f for f in listed if f.startswith("notebooks/")]
    assert chapters == sorted(chapters), "chapters are listed in the order of their numbers"


def bib_keys() -> set[str]:
    return set(re.findall(r"^@\w+\{([^,\s]+),", (ROOT / "book/references.bib").read_text(), re.M))


def test_stored_outputs_hold_no_progress_bar_warning_or_stderr():
    """What a reader sees under a cell: no static progress bar (the executor stores a finished
    bar as a sentence), no stray warning, nothing on stderr."""
    found = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        nb = json.loads(path.read_text())
        for k, cell in enumerate(nb["cells"]):
            for out in cell.get("outputs", []):
                text = out.get("text") or out.get("data", {}).get("text/plain", "")
                text = "".join(text) if isinstance(text, list) else str(text)
                where = f"{path.name}, cell {k}"
                if out.get("name") == "stderr":
                    found.append(f"{where}: stderr {text[:60]!r}")
                if "\r" in text or "█" in text or re.search(r"it/s\]", text):
                    found.append(f"{where}: a progress bar {text[:60]!r}")
                if re.search(r"\w+Warning\b|No CUDA runtime", text):
                    found.append(f"{where}: a warning {text[:60]!r}")
    assert not found, "\n".join(found)


def test_bibliography_has_every_key_the_book_cites():
    keys = bib_keys()
    assert not set(REQUIRED_KEYS) - keys
    unknown = {}
    for doc in toc_files():
        path = source(doc)
        text = path.read_text()
        if path.suffix == ".ipynb":
            nb = nbformat.reads(text, as_version=4)
            text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text):
            bad = {k.strip() for k in group.split(",")} - keys
            if bad:
                unknown[path.name] = sorted(bad | set(unknown.get(path.name, [])))
    assert not unknown, f"citation keys missing from book/references.bib: {unknown}"


def test_bib_entries_are_complete():
    from pybtex.database import parse_file

    for key, entry in parse_file(str(ROOT / "book/references.bib")).entries.items():
        assert entry.persons.get("author"), key
        for field in ("title", "year"):
            assert entry.fields.get(field), f"{key} has no {field}"
        assert any(entry.fields.get(f) for f in ("booktitle", "journal", "eprint")), key


# ------------------------------------------------------------------------------------------------
# The generated pages, rendered from small inputs
# ------------------------------------------------------------------------------------------------

def test_results_page_marks_cpu_runs(tmp_path):
    (tmp_path / "speed.json").write_text(json.dumps({
        "title": "Sampling speed", "device": "cpu", "preset": "cpu",
        "results": [{"method": "dalle", "images_per_s": 12.3456}, {"method": "vqgan_clip",
                                                                   "images_per_s": 0.5}]}))
    (tmp_path / "quality.json").write_text(json.dumps({
        "device": "NVIDIA H100 80GB HBM3", "preset": "full", "scores": {"color": 0.9}}))
    text = "\n".join(minit2i_book.results_markdown(tmp_path))
    quality, speed = text.split("## Sampling speed")           # files in name order
    assert quality.startswith("## quality") and "| dalle | 12.3 |" in speed
    assert ":::{note}" in speed and "on `cpu` in the `cpu` preset, not from a GPU run" in speed
    assert "warning" not in quality and "note" not in quality
    assert "| scores.color | 0.9 |" in quality
    assert "No benchmark" in "\n".join(minit2i_book.results_markdown(tmp_path / "none"))
    assert [minit2i_book.is_gpu(d) for d in ("cpu (1 thread)", "mps", "", None, "cuda",
                                             "Tesla T4")] == [False] * 4 + [True] * 2
    nested = minit2i_book.render_result(Path("judge.json"), {"device": "cpu", "results": {
        "64px": {"attributes": {"shape": 1.0}, "count": 1.0}, "32px": {"count": 0.5}}})
    assert "This file comes from a run on `cpu`, not from a GPU run" in " ".join(nested)
    assert "|  | attributes.shape | count |" in nested and "| 32px |  | 0.5 |" in nested
    # a benchmark's own short table replaces the flattened record
    short = minit2i_book.render_result(Path("levers.json"), {
        "device": "cpu", "commentary": "Two variants.", "variants": {"a": {"x": {"y": 1}}},
        "summary": [{"variant": "a", "single_object": 0.61234}]})
    assert "Two variants." in short and "| a | 0.612 |" in short
    assert not any("x.y" in line for line in short) and "levers.json" in short[-2]


def test_every_committed_result_has_a_view_that_fits_the_column():
    from results_views import VIEWS

    for path in sorted((ROOT / "benchmarks" / "results").glob("*.json")):
        assert path.stem in VIEWS, f"{path.name} has no view in book/_ext/results_views.py"
        lines = minit2i_book.render_result(path, json.loads(path.read_text()))
        rows = [line for line in lines if line.startswith("|")]
        assert rows, path.name
        assert max(line.count(" | ") + 1 for line in rows) <= 6, path.name   # columns
        assert not [c for line in rows for c in line.split(" | ") if len(c) > 60], path.name
        images = [line for line in lines if line.startswith("<img")]
        assert all('src="data:image/png;base64,' in line for line in images), path.name
        VIEWS[path.stem]({})                     # a file without the fields still renders
    assert any("<img" in line for line in minit2i_book.results_markdown(
        ROOT / "benchmarks" / "results")), "no plot on the results page"


def test_status_page_shows_each_notebooks_record(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Chapter 9 — Tests")])
    nb.metadata["minit2i"] = {"preset": "cpu", "device": "cpu", "torch": "2.4.0",
                              "version": "0.1.0", "duration_s": 90.0,
                              "executed_at": "2025-01-02T03:04:05+00:00"}
    nbformat.write(nb, tmp_path / "09_tests.ipynb")
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "10_new.ipynb")
    rows = minit2i_book.status_markdown(tmp_path)
    assert "{doc}`Chapter 9 — Tests </notebooks/09_tests>`" in rows[2]
    assert "| cpu | cpu (no GPU) | 0.1.0 | 2.4.0 | 1.5 min | 2025-01-02 03:04 |" in rows[2]
    assert "not recorded" in rows[3]
    unlisted = minit2i_book.status_markdown(tmp_path, docs={"notebooks/10_new"})
    assert unlisted[2].startswith("| Chapter 9 — Tests |")       # no link to a page not built


def test_exercises_table_for_the_instructors_page(tmp_path):
    nb = nbformat.read(ROOT / "tests" / "fixtures" / "00_tiny.ipynb", as_version=4)
    nb.metadata["minit2i"] = {"preset": "cpu", "device": "cpu", "duration_s": 150.0}
    nbformat.write(nb, tmp_path / "01_tiny.ipynb")
    nb.metadata["minit2i"] = {"preset": "full", "device": "Tesla T4", "duration_s": 330.0}
    nbformat.write(nb, tmp_path / "02_tiny.ipynb")
    text = "\n".join(minit2i_book.exercises_markdown(tmp_path))
    assert "### Chapter 0 — A tiny chapter for testing the assignments" in text
    assert ("5 exercises, 11 points (10 graded automatically, 1 by hand), about 35 minutes of "
            "student work") in text
    assert ("Running the chapter: 2 min on a laptop (cpu preset, two cores), not measured on "
            "Colab's GPU (no GPU run yet).") in text
    assert ("Running the chapter: not measured on a laptop, 6 min on Colab's GPU (Tesla T4)."
            in text)
    assert "| 0.5 | How fast does an average settle? | experiment | 2 | 5 |" in text
    assert "| 0.4 | In words | written, by hand | 1 | 5 |" in text
    assert minit2i_book.exercises_markdown(tmp_path / "none") == ["No chapter has exercises yet.",
                                                                  ""]


def test_api_page_lists_the_concepts_then_the_tooling():
    modules = minit2i_book.package_modules(ROOT / "minit2i")
    tools = [m for m in modules if m.startswith("minit2i.tools.")]
    assert "minit2i.gan" in modules and "minit2i.tools.assignments" in tools
    assert modules[-len(tools):] == tools                      # the tooling comes last
    assert not any(m in modules for m in ("minit2i.execute", "minit2i.assignments"))


def test_docstring_maths_becomes_sphinx_maths():
    lines = ["The loss", "", "$$", r"\mathcal{L} = |x|", "$$", "", "with $x_i$ and $|z|$ here."]
    minit2i_book.docstring_maths(None, "module", "m", None, {}, lines)
    assert ".. math::" in lines and r"   \mathcal{L} = |x|" in lines
    assert "with :math:`x_i` and :math:`|z|` here." in lines
    lines = ["2 arcsin(|x^ - y^| / 2), ``a|b``; see::", "", "    |x| stays", "", "a |b| c"]
    minit2i_book.docstring_maths(None, "function", "f", None, {}, lines)
    assert lines == ["2 arcsin(\\|x^ - y^\\| / 2), ``a|b``; see::", "", "    |x| stays", "",
                     "a \\|b\\| c"]


# ------------------------------------------------------------------------------------------------
# The built book
# ------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def build_book(out: Path) -> tuple[Path, str | None]:
    """Build once per session (a failed build is not retried by every test that needs it)."""
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build",
           str(ROOT), "--path-output", str(out), "-W", "-n", "--keep-going"]
    start = time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "NO_COLOR": "1", "MINIT2I_EDITION": "public"})
    log = result.stdout + result.stderr
    warnings = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
    if result.returncode == 0 and not warnings:
        return out / "_build" / "html", None
    return out, (f"the book build failed ({time.perf_counter() - start:.0f} s):\n"
                 + "\n".join(warnings or log.splitlines()[-30:]))


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> Path:
    """The book built from the stored notebooks (nothing executed); any warning is a failure."""
    html, failure = build_book(tmp_path_factory.getbasetemp() / "book")
    if failure:
        pytest.fail(failure, pytrace=False)
    return html


def html_of(html_root: Path, docname: str) -> str:
    return (html_root / f"{docname}.html").read_text()


@pytest.mark.slow
def test_every_toc_page_is_built_and_maths_is_local(built_book):
    for doc in toc_files():
        html = html_of(built_book, doc)
        scripts = re.findall(r"<script[^>]*\bsrc=\"([^\"]+)\"", html)
        links = re.findall(r"<link[^>]*\bhref=\"([^\"]+)\"", html)
        remote = [u for u in scripts + links if re.match(r"(https?:)?//", u)]
        assert not remote, f"{doc} loads {remote} from the network"
        assert not re.search(r"cdn\.jsdelivr|cdnjs|unpkg|mathjax\.org", html), doc
    assert (built_book / "_static/mathjax/tex-chtml.js").is_file()
    assert 'src="../_static/mathjax/tex-chtml.js' in html_of(built_book, "book/history")


@pytest.mark.slow
def test_equations_are_numbered_and_cross_referenced(built_book):
    html = html_of(built_book, "book/history")
    assert re.search(r'id="equation-eq-history-autoregressive".*?<span class="eqno">\(\d+\)', html,
                     re.S)
    assert html.count('href="#equation-eq-history-autoregressive"') >= 2
    assert 'href="#fig-shapes-world"' in html_of(built_book, "book/intro")


@pytest.mark.slow
def test_notebook_pages_launch_colab_and_show_the_student_version(built_book):
    for doc in [d for d in toc_files() if d.startswith("notebooks/")]:
        html = html_of(built_book, doc)
        repo = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]
        url = (f"https://colab.research.google.com/github/{repo['url'].split('github.com/')[1]}"
               f"/blob/{repo['branch']}/{doc}.ipynb")
        assert url in html, f"{doc} has no Colab launch button"
        nb = nbformat.read(source(doc), as_version=4)
        stubs = sum(bool(nbgrader(c).get("solution")) for c in nb.cells if c.cell_type == "code")
        assert html.count("YOUR CODE HERE") == stubs, f"{doc}: {stubs} exercises to write"
        for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "BEGIN MARK SCHEME", "Rubric ("):
            assert marker not in html, f"{doc} shows {marker!r}"


# ------------------------------------------------------------------------------------------------
# The public book has no solutions; the instructors' edition has them all
# ------------------------------------------------------------------------------------------------

def chapters() -> list[str]:
    return [d for d in toc_files() if d.startswith("notebooks/")]


@pytest.mark.slow
def test_public_book_shows_no_line_of_any_solution(built_book):
    """Every line of every solution region, model answer, hidden test and rubric that the
    student version does not show anyway: none may appear in any file of the public build
    (pages, the notebooks offered for download, the search index). Lines are compared by their
    words, so Markdown and HTML cannot hide them."""
    keys = {doc: nbformat.read(source(doc), as_version=4) for doc in chapters()}
    secrets = {doc: secret_lines(nb) for doc, nb in keys.items()}
    assert all(secrets.values()), "every chapter has something to keep secret"
    for doc, nb in keys.items():
        text = minit2i_book.page_text(html_of(built_book, doc))
        assert leaked_lines(nb, text, secrets[doc]) == [], f"{doc} shows solution code"
    # Across chapters, a line one chapter keeps secret may be public in another (a generic
    # `g = torch.Generator().manual_seed(0)`): those are no leak.
    public = " ".join(c.source for nb in keys.values() for c in public_version(nb).cells)
    every = [line for doc, nb in keys.items()
             for line in secrets[doc] if not leaked_lines(nb, public, [line])]
    for path in built_book.rglob("*"):
        if path.suffix not in (".html", ".js", ".txt", ".ipynb", ".json") or not path.is_file():
            continue
        text = path.read_text(errors="ignore")
        if path.suffix == ".ipynb":
            text = " ".join(c.source for c in nbformat.reads(text, as_version=4).cells)
        found = leaked_lines(None, text, every)
        assert not found, f"{path.relative_to(built_book)} holds solution lines, e.g. {found[0]!r}"


@pytest.fixture(scope="session")
def instructors_book(tmp_path_factory) -> Path:
    """The instructors' edition, built the way ``dev.py book --instructors`` builds it."""
    out = tmp_path_factory.getbasetemp() / "instructors"
    cmd = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()", "build",
           str(ROOT), "--path-output", str(out), "-W", "-n", "--keep-going"]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, "NO_COLOR": "1", "MINIT2I_EDITION": "instructors"})
    log = result.stdout + result.stderr
    warnings = [line for line in log.splitlines() if "WARNING" in line or "ERROR" in line]
    if result.returncode or warnings:
        pytest.fail("the instructors' edition failed to build:\n"
                    + "\n".join(warnings or log.splitlines()[-30:]), pytrace=False)
    return out / "_build" / "html"


@pytest.mark.slow
def test_instructors_edition_shows_every_solution_so_the_check_can_fail(instructors_book):
    for doc in chapters():
        nb = nbformat.read(source(doc), as_version=4)
        html = html_of(instructors_book, doc)
        assert leaked_lines(nb, minit2i_book.page_text(html)) == secret_lines(nb), doc
        text = minit2i_book.page_text(html)
        assert "Instructors’ edition: the exercises below show" in text, doc
        assert "Rubric (graders only)" in text, doc
    title = re.search(r"<title>(.*?)</title>", html_of(instructors_book, "book/intro"))[1]
    assert title.endswith("(instructors&#39; edition)"), title


# ------------------------------------------------------------------------------------------------
# In a real browser
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def browser():
    """Headless Chromium through Playwright; skipped when missing, except in CI (then it fails)."""
    missing = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = "playwright is not installed (pip install -e '.[dev]')"
    if missing is None and not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        missing = f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM)"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: {missing}")
        pytest.skip(missing)
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def server(built_book):
    """The built book over HTTP on 127.0.0.1, on a free port."""
    handler = functools.partial(_QuietHandler, directory=str(built_book))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


# Prose text (not code, outputs or typeset maths) that still holds LaTeX: maths MyST did not parse,
# e.g. an inline $...$ broken by a line that starts with "+ " (a list item in Markdown).
RAW_LATEX = r"""() => {
  const root = document.querySelector("article") || document.body;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const found = [];
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node.parentElement.closest(
        "pre, code, script, style, mjx-container, .math, .cell_output, .output")) continue;
    const text = node.textContent;
    if (/\$[^$]*\\[a-zA-Z]+|\\(math[a-z]+|frac|operatorname|sigma|ell|mid|sum|left|right)\b/
        .test(text)) found.push(text.trim().slice(0, 80));
  }
  return found;
}"""


# Code, outputs, tables, figures and display maths that do not fit the text column: wider than it,
# or wider than their own box (a line hidden behind a sideways scroll counts as cut off).
TOO_WIDE = r"""() => {
  const article = document.querySelector("article.bd-article") || document.body;
  const column = article.getBoundingClientRect();
  const found = [];
  for (const el of article.querySelectorAll(
      "pre, table, img, svg, mjx-container[display], div.cell_output > *")) {
    const box = el.getBoundingClientRect();
    if (box.width === 0 || box.height === 0) continue;
    if (el.tagName !== "MJX-CONTAINER" && el.closest("mjx-container")) continue;
    const over = Math.max(el.scrollWidth - el.clientWidth, box.right - column.right,
                          column.left - box.left);
    if (over > 1) {
      const text = (el.textContent || el.getAttribute("src") || "").trim().split("\n")
        .sort((a, b) => b.length - a.length)[0].slice(0, 60);
      found.push(`${el.tagName.toLowerCase()} ${Math.round(over)} px too wide: ${text}`);
    }
  }
  return found;
}"""


def open_page(browser, url: str):
    """A page loaded with MathJax done; returns it with the problems it reported."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}")
            if r.status >= 400 else None)

    def offline(route):           # the book must work without a network: nothing leaves the host
        if urlparse(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            problems.append(f"network request: {route.request.url}")
            route.abort()

    page.route("**/*", offline)
    page.goto(url, wait_until="load")
    page.wait_for_function("() => !window.MathJax || (MathJax.startup && MathJax.startup.promise)")
    page.evaluate("() => window.MathJax ? MathJax.startup.promise : null")
    page.wait_for_load_state("networkidle")
    return page, problems


def screenshot(page, name: str) -> None:
    """The whole page as one image: the window made as tall as the page (a full-page capture
    would repeat the theme's sticky header)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = page.evaluate("() => document.documentElement.scrollHeight")
    page.set_viewport_size({"width": 1280, "height": min(max(height, 600), 20_000)})
    page.wait_for_timeout(200)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
    page.set_viewport_size({"width": 1280, "height": 900})


@pytest.mark.slow
@pytest.mark.browser
def test_every_page_in_a_browser(browser, server, built_book):
    failures = []
    for doc in toc_files():
        page, problems = open_page(browser, f"{server}/{doc}.html")
        html = html_of(built_book, doc)
        n_maths = len(re.findall(r'class="math notranslate nohighlight"', html))
        if n_maths:
            typeset = page.locator("mjx-container").count()
            if typeset < n_maths:
                problems.append(f"{n_maths} maths elements but {typeset} typeset by MathJax")
        if doc != "book/api":            # docstrings may quote LaTeX as plain text
            raw = page.evaluate(RAW_LATEX)
            problems += [f"maths not typeset: {text!r}" for text in raw]
        broken = page.evaluate("""() => [...document.images]
            .filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.src)""")
        problems += [f"image not loaded: {src}" for src in broken]
        problems += page.evaluate(TOO_WIDE)
        screenshot(page, doc.replace("/", "__"))
        if doc.startswith("notebooks/"):
            if page.locator("div.cell_output img").count() == 0:
                problems.append("a chapter without a single figure in its outputs")
            colab = page.locator('a[href^="https://colab.research.google.com/github/"]')
            if colab.count() == 0:
                problems.append("no Colab launch button")
            toggles = page.locator("details.hide.above-input")
            if toggles.count():                  # a solution starts hidden, opens on a click
                first = toggles.first
                if first.evaluate("d => d.open"):
                    problems.append("a solution is shown before its toggle is clicked")
                first.locator("summary").click()
                if not first.evaluate("d => d.open"):
                    problems.append("a solution toggle does not open")
        page.close()
        if problems:
            failures.append(f"{doc}: " + "; ".join(problems))
    assert not failures, "\n".join(failures)


@pytest.mark.slow
@pytest.mark.browser
def test_search_finds_a_word_of_chapter_2(browser, server):
    # Chapter 2 explains softmax attention; until it exists, the notation page defines softmax.
    attention = sorted((ROOT / "notebooks").glob("02_*.ipynb"))
    expected = f"notebooks/{attention[0].stem}.html" if attention else "book/notation.html"
    page, problems = open_page(browser, f"{server}/search.html?q=softmax")
    page.wait_for_selector("#search-results ul.search li", timeout=20_000)
    hits = page.eval_on_selector_all("#search-results ul.search li a",
                                     "links => links.map(a => a.getAttribute('href'))")
    screenshot(page, "search_softmax")
    page.close()
    assert any(h and h.split("?")[0].split("#")[0].endswith(expected) for h in hits), hits
    assert not problems, problems
