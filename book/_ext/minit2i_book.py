"""Book pages generated at build time from files in the repository (no notebook is executed).

Four MyST directives, each rendering Markdown that is parsed in place:

- ``{minit2i-results}``: the benchmarks' JSON files (``benchmarks/results/*.json``), saying
  which came from a CPU and not a GPU: a benchmark the book knows gets its view from
  ``results_views.py`` (commentary, short tables, a plot), any other file generic tables;
- ``{minit2i-status}``: how each chapter notebook's stored outputs were made (the ``minit2i``
  record that ``python -m minit2i.tools.execute`` writes into the notebook's metadata);
- ``{minit2i-budget}``: each chapter's counted cost and expected minutes per preset and machine
  beside the measured ones, what it trains and loads, each recipe's peak memory
  (``minit2i.budget``), and which shipped checkpoints this checkout holds;
- ``{minit2i-exercises}``: each chapter's exercises (kind, points, minutes) and how long the
  chapter takes to run, for the instructors' page;
- ``{minit2i-api}``: one ``automodule`` section per module of the ``minit2i`` package (the
  concepts, then the tooling in ``minit2i.tools``).

The chapters' notebooks are the key: each holds its exercises' solutions, hidden tests and
rubrics. A ``source-read`` hook shows each chapter as its *edition* asks (the ``minit2i_edition``
setting, from ``MINIT2I_EDITION``): the ``public`` book (the default) shows every exercise as a
student gets it, with stubs instead of solutions and no hidden tests, rubrics or outputs; the
``instructors`` edition shows everything (``python3 dev.py book --instructors``). After a public
build, the notebook copies the download button offers (``_sources/``) are replaced by the public
version, and any page that still shows a line of a solution is a build warning, so ``-W`` fails.

An ``autodoc-process-docstring`` hook turns the ``$$ ... $$`` and ``$...$`` maths of the
package's docstrings into Sphinx maths, and an ``html-page-context`` hook drops Thebe's scripts
(a CDN loader the book does not use). ``static/minit2i.css`` adjusts the theme.
"""

from __future__ import annotations

import html
import json
import os
import re
from pathlib import Path

import nbformat
from docutils import nodes
from docutils.statemachine import StringList
from results_views import VIEWS  # noqa: E402  (this folder is on the path, as Sphinx loads us)
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)
EDITIONS = ("public", "instructors")

# A result file's fields that describe the run rather than measure something.
RUN_FIELDS = ("device", "preset", "torch", "version", "date", "created_at", "executed_at")


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)) and all(not isinstance(v, (dict, list)) for v in value):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, (dict, list)):
        return "`" + json.dumps(value)[:80] + "`"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(rows: list[dict]) -> list[str]:
    """A Markdown table with one column per key (in first-seen order) and one row per dict."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_cell(row.get(k, "")) for k in keys) + " |" for row in rows]
    return lines + [""]


def _flatten(data: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def is_gpu(device: str | None) -> bool:
    """True for a record made on a GPU (its name, or "cuda"), False for cpu (e.g. "cpu (1
    thread)"), mps or unknown."""
    name = str(device or "").strip().lower()
    return bool(name) and not name.startswith(("cpu", "mps", "unknown"))


def render_result(path: Path, data) -> list[str]:
    """One benchmark file as Markdown: a heading, where it was measured, then its tables."""
    if not isinstance(data, dict):
        data = {"results": data}
    title = data.get("title") or data.get("benchmark") or data.get("name") or path.stem
    lines = [f"## {title}", "", f"From `benchmarks/results/{path.name}`."]
    run = {k: data[k] for k in RUN_FIELDS if k in data}
    if run:
        lines += ["", "Measured with " + ", ".join(f"{k} `{v}`" for k, v in run.items()) + "."]
    if not is_gpu(data.get("device")):
        device = f"`{data['device']}`" if data.get("device") else "an unknown device"
        preset = f" in the `{data['preset']}` preset" if data.get("preset") else ""
        if data.get("preset") == "cpu":     # the scale every chapter shows and is judged at
            lines += ["", ":::{note}",
                      f"This file comes from a run on {device}{preset}, not from a GPU run: the "
                      "scale every chapter shows and every target of the book is set for. No "
                      "GPU run of it exists yet.", ":::"]
        else:
            lines += ["", ":::{warning}",
                      f"This file comes from a run on {device}{preset}, not from a GPU run: its "
                      "numbers show how the code behaves, not the book's full-size results.",
                      ":::"]
    lines.append("")
    if path.stem in VIEWS:
        return lines + VIEWS[path.stem](data)
    if isinstance(data.get("summary"), list) and data["summary"]:
        # a benchmark that writes its own short table: show that, and leave the rest to the file
        if data.get("commentary"):
            lines += [str(data["commentary"]), ""]
        lines += markdown_table(data["summary"])
        return lines + [f"Every setting and figure of the run is in `{path.name}`.", ""]
    scalars = {}
    skip = {"title", "benchmark", "name", *RUN_FIELDS}
    for key, value in data.items():
        if key in skip:
            continue
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            lines += [f"**{key}**", "", *markdown_table([_flatten(v) for v in value])]
        elif isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
            rows = [{"": name, **_flatten(v)} for name, v in value.items()]   # one row per entry
            lines += [f"**{key}**", "", *markdown_table(rows)]
        elif isinstance(value, dict):
            scalars.update(_flatten(value, f"{key}."))
        else:
            scalars[key] = value
    if scalars:
        lines += markdown_table([{"quantity": k, "value": v} for k, v in scalars.items()])
    return lines


def results_markdown(folder: Path) -> list[str]:
    files = sorted(folder.glob("*.json"))
    if not files:
        return ["No benchmark has written results yet: run the scripts in `benchmarks/`, which "
                "write their JSON files into `benchmarks/results/`, then build the book again.", ""]
    lines = []
    for path in files:
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            lines += [f"## {path.stem}", "", f"`{path.name}` is not valid JSON ({error}).", ""]
            continue
        lines += render_result(path, data)
    return lines


def notebook_title(nb: dict, fallback: str) -> str:
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            source = "".join(cell.get("source", ""))
            match = re.search(r"^#\s+(.+)$", source, flags=re.M)
            if match:
                return match.group(1).strip()
    return fallback


def status_markdown(folder: Path, docs: set[str] | None = None) -> list[str]:
    """A table of each notebook's record; titles link to the chapters in ``docs`` (all if None)."""
    notebooks = sorted(folder.glob("*.ipynb"))
    if not notebooks:
        return ["No chapter notebook yet.", ""]
    rows = []
    for path in notebooks:
        nb = json.loads(path.read_text())
        record = nb.get("metadata", {}).get("minit2i")
        title = notebook_title(nb, path.stem).replace("|", "\\|")
        linked = docs is None or f"notebooks/{path.stem}" in docs
        row = {"chapter": f"{{doc}}`{title} </notebooks/{path.stem}>`" if linked else title}
        if record:
            gpu = is_gpu(record.get("device"))
            when = str(record.get("executed_at", "?"))[:16].replace("T", " ")
            row.update({"preset": record.get("preset", "?"),
                        "device": f"{record.get('device', '?')}" + ("" if gpu else " (no GPU)"),
                        "minit2i": record.get("version", "?"), "torch": record.get("torch", "?"),
                        "run time": run_time(record),
                        "executed (UTC)": when})
        else:
            row.update({"preset": "not recorded", "device": "", "minit2i": "", "torch": "",
                        "run time": "", "executed (UTC)": ""})
        rows.append(row)
    return markdown_table(rows)


def budget_markdown(root: Path, docs: set[str] | None = None) -> list[str]:
    """The budget tables of ``minit2i.budget`` for the cpu and full presets, chapter numbers
    linked to the chapters in ``docs`` (all if None), and the shipped checkpoints present."""
    from minit2i import budget, zoo

    def link(chapter: int) -> str:
        doc = f"notebooks/{budget.CHAPTERS[chapter]}"
        return f"{{doc}}`{chapter} </{doc}>`" if docs is None or doc in docs else str(chapter)

    lines = budget.markdown(("cpu", "full"), root, link)
    shipped = sorted(p.name for p in zoo.SHIPPED_DIR.glob("*.pt"))
    lines += ["Shipped checkpoints in this checkout: "
              + (", ".join(f"`{name}`" for name in shipped) if shipped else
                 "none yet (`python -m minit2i.tools.ship --preset cpu` builds them); until "
                 "they are there, a chapter trains what the table says it loads"), ""]
    if budget.gpu_measurement(root) is None:
        lines += ["GPU figures (T4, H100): **not measured**; they follow the rates assumed in "
                  "`minit2i.budget.MACHINES`. `python benchmarks/gpu_check.py` measures them on "
                  "a GPU in a few minutes.", ""]
    return lines


def run_time(record: dict) -> str:
    """The run's minutes, and where it ran on another machine than the budget's laptop, the
    same scaled to the laptop by the machine's speed reading (``minit2i.budget``)."""
    from minit2i.budget import record_laptop_seconds

    seconds, reading = float(record.get("duration_s", 0)), record.get("matmul_gflops")
    text = f"{seconds / 60:.1f} min"
    if reading and record.get("preset") == "cpu":
        text += (f" on a machine reading {float(reading):.0f} GFLOP/s; "
                 f"{record_laptop_seconds(record) / 60:.1f} at the laptop's speed")
    return text


def _minutes(seconds) -> str:
    return f"{float(seconds) / 60:.0f} min" if seconds else "not recorded"


def exercises_markdown(folder: Path) -> list[str]:
    """Per chapter: a table of its exercises (kind, points, minutes), its totals, and how long
    the chapter itself runs on a laptop (the cpu preset's record) and on a GPU (Colab)."""
    from minit2i.tools.assignments import exercise_table

    lines = []
    for path in sorted(folder.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        rows = exercise_table(nb)
        if not rows:
            continue
        record = nb.metadata.get("minit2i", {})
        minutes = _minutes(record.get("duration_s"))
        if record.get("preset") == "cpu" and record.get("duration_s"):
            from minit2i.budget import record_laptop_seconds  # at the laptop's speed
            minutes = _minutes(record_laptop_seconds(record))
        laptop = (f"{minutes} on a laptop (cpu preset, two cores)" if record.get("preset") == "cpu"
                  else "not measured on a laptop")
        colab = (f"{minutes} on Colab's GPU ({record.get('device')})"
                 if is_gpu(record.get("device"))
                 else "not measured on Colab's GPU (no GPU run yet)")
        kinds = {"code": "coding", "experiment": "experiment", "written": "written, by hand"}
        bare = [re.sub(r"^(Experiment|Written): ", "", r["title"]) for r in rows]
        table = [{"exercise": r["label"], "title": title[:1].upper() + title[1:],
                  "kind": kinds[r["kind"]], "points": f"{r['points']:g}",
                  "minutes": r["minutes"] or "?"} for r, title in zip(rows, bare)]
        auto = sum(r["points"] for r in rows if r["kind"] != "written")
        manual = sum(r["points"] for r in rows if r["kind"] == "written")
        lines += [f"### {notebook_title(nb, path.stem)}", "",
                  f"{len(rows)} exercises, {auto + manual:g} points ({auto:g} graded "
                  f"automatically, {manual:g} by hand), about "
                  f"{sum(r['minutes'] or 0 for r in rows)} minutes of student work. Running "
                  f"the chapter: {laptop}, {colab}.", "",
                  *markdown_table(table)]
    return lines or ["No chapter has exercises yet.", ""]


def package_modules(package: Path) -> list[str]:
    """The concept modules (``minit2i.X``), then the book's tooling (``minit2i.tools.X``)."""
    names = sorted(p.stem for p in package.glob("*.py") if not p.stem.startswith("_"))
    tools = sorted(p.stem for p in (package / "tools").glob("*.py") if not p.stem.startswith("_"))
    return [f"minit2i.{name}" for name in names] + [f"minit2i.tools.{name}" for name in tools]


def api_markdown(package: Path) -> list[str]:
    lines = []
    for module in package_modules(package):
        # autodoc writes reStructuredText, so it runs inside an eval-rst block.
        lines += [f"## `{module}`", "", "```{eval-rst}", f".. automodule:: {module}",
                  "   :members:", "```", ""]
    return lines


class _Generated(SphinxDirective):
    """Parse generated Markdown in place; rebuild the page when its inputs change."""

    has_content = False

    def inputs(self) -> tuple[Path, str]:
        raise NotImplementedError

    def markdown(self, folder: Path) -> list[str]:
        raise NotImplementedError

    def run(self) -> list[nodes.Node]:
        root = Path(self.env.srcdir)
        folder, pattern = self.inputs()
        folder = root / folder
        # The folder's own mtime changes when files appear or go; each file's when it changes.
        self.env.note_dependency(str(folder))
        for path in folder.glob(pattern):
            self.env.note_dependency(str(path))
        container = nodes.section()
        container.document = self.state.document
        self.state.nested_parse(StringList(self.markdown(folder)), self.content_offset,
                                container, match_titles=True)
        return container.children


class ResultsDirective(_Generated):
    def inputs(self):
        return Path("benchmarks/results"), "*.json"

    def markdown(self, folder):
        return results_markdown(folder)


class StatusDirective(_Generated):
    def inputs(self):
        return Path("notebooks"), "*.ipynb"

    def markdown(self, folder):
        return status_markdown(folder, set(self.env.found_docs))


class BudgetDirective(_Generated):
    def inputs(self):
        return Path("minit2i"), "*.py"

    def markdown(self, folder):
        return budget_markdown(folder.parent, set(self.env.found_docs))


class ExercisesDirective(_Generated):
    def inputs(self):
        return Path("notebooks"), "*.ipynb"

    def markdown(self, folder):
        return exercises_markdown(folder)


class ApiDirective(_Generated):
    def inputs(self):
        return Path("minit2i"), "**/*.py"

    def markdown(self, folder):
        return api_markdown(folder)


def _escape_bars(lines: list[str]) -> list[str]:
    """Escape ``|`` outside literals, maths and literal blocks: the docstrings write norms as
    ``|x - y|``, which reStructuredText would read as a substitution reference."""
    out, block_indent = [], None
    for line in lines:
        indent = len(line) - len(line.lstrip())
        if block_indent is not None and line.strip() and indent <= block_indent:
            block_indent = None                                  # the literal block has ended
        if block_indent is None:
            parts = re.split(r"(``.*?``|`[^`]*`)", line)
            line = "".join(part if k % 2 else part.replace("|", "\\|")
                           for k, part in enumerate(parts))
            if line.rstrip().endswith("::"):
                block_indent = indent
        out.append(line)
    return out


def docstring_maths(app, what, name, obj, options, lines: list[str]) -> None:
    """Turn ``$$ ... $$`` blocks and ``$...$`` spans of a docstring into Sphinx maths (and
    escape the other ``|``)."""
    out: list[str] = []
    block: list[str] | None = None
    for line in lines:
        stripped = line.strip()
        if block is not None:
            if stripped.endswith("$$"):
                block.append(stripped[:-2])
                out += ["", ".. math::", ""] + ["   " + b for b in block if b.strip()] + [""]
                block = None
            else:
                block.append(stripped)
        elif stripped.startswith("$$") and not (stripped.endswith("$$") and len(stripped) > 4):
            block = [stripped[2:]]
        elif stripped.startswith("$$"):
            out += ["", ".. math::", "", "   " + stripped[2:-2].strip(), ""]
        else:
            out.append(re.sub(r"(?<![\\$`])\$([^$\n]+?)\$(?!\$)", r":math:`\1`", line))
    lines[:] = _escape_bars(out + (block or []))


def drop_thebe(app, pagename, templatename, context, doctree) -> None:
    """Remove Thebe's scripts, which Jupyter Book always adds (twice, a page error) and which
    point to a CDN: the book has no live-code button, and its pages load nothing from the web."""
    def thebe(asset) -> bool:
        body = getattr(asset, "attributes", {}).get("body", "")
        return "thebe" in str(getattr(asset, "filename", asset)) or "THEBE_JS_URL" in body

    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = [asset for asset in context[key] if not thebe(asset)]


def edition(app) -> str:
    name = app.config.minit2i_edition
    if name not in EDITIONS:
        raise ValueError(f"unknown edition {name!r} (MINIT2I_EDITION); choose one of "
                         f"{', '.join(EDITIONS)}")
    return name


def exercise_pages(app, docname, source) -> None:
    """Show a chapter's exercises as the edition asks: the student version in the public book,
    everything in the instructors' edition. The notebook on disk is not changed."""
    if Path(app.env.doc2path(docname)).suffix != ".ipynb":
        return
    from minit2i.tools.assignments import instructors_version, nbgrader, public_version

    nb = nbformat.reads(source[0], as_version=4)
    if not any(nbgrader(cell) for cell in nb.cells):
        return
    version = public_version if edition(app) == "public" else instructors_version
    source[0] = nbformat.writes(version(nb))


def page_text(page: str) -> str:
    """The text of an HTML page (code included), as a reader of the page source would see it."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S | re.I)
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def public_sources(app, exception) -> None:
    """After a public build: the notebooks under _sources/ (the download button's) become the
    public version too, and a page that shows a line of a solution is a warning."""
    if exception is not None or edition(app) != "public" or app.builder.format != "html":
        return
    from minit2i.tools.assignments import leaked_lines, nbgrader, public_version

    out = Path(app.outdir)
    for docname in sorted(app.env.found_docs):
        path = Path(app.env.doc2path(docname))
        if path.suffix != ".ipynb":
            continue
        nb = nbformat.read(path, as_version=4)
        if not any(nbgrader(cell) for cell in nb.cells):
            continue
        for copy in (out / "_sources").glob(f"{docname}.ipynb*"):
            nbformat.write(public_version(nb), copy)
        page = out / f"{docname}.html"
        leaks = leaked_lines(nb, page_text(page.read_text())) if page.exists() else []
        if leaks:
            logger.warning(f"{docname}: the public page shows {len(leaks)} line(s) of the "
                           f"exercises' solutions, hidden tests or rubrics, e.g. {leaks[0]!r}")


def instructors_title(app, config) -> None:
    if config.minit2i_edition == "instructors":
        config.html_title = f"{config.html_title or config.project} (instructors' edition)"


def add_static(app) -> None:
    app.config.html_static_path.append(str(Path(__file__).parent / "static"))


def setup(app):
    app.add_config_value("minit2i_edition", os.environ.get("MINIT2I_EDITION", "public"), "env")
    app.connect("builder-inited", add_static)
    app.connect("config-inited", instructors_title)
    app.connect("source-read", exercise_pages)
    app.connect("build-finished", public_sources)
    app.add_css_file("minit2i.css")
    app.add_directive("minit2i-results", ResultsDirective)
    app.add_directive("minit2i-status", StatusDirective)
    app.add_directive("minit2i-budget", BudgetDirective)
    app.add_directive("minit2i-exercises", ExercisesDirective)
    app.add_directive("minit2i-api", ApiDirective)
    app.connect("autodoc-process-docstring", docstring_maths)
    app.connect("html-page-context", drop_thebe)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
