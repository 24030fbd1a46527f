"""minit2i.tools.execute runs notebooks in place, records how, and names the cell that fails."""

import json

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from minit2i import __version__
from minit2i.tools.execute import NotebookFailed, execute_notebook, main, progress_sentence

pytestmark = pytest.mark.slow  # starts a Jupyter kernel (a few seconds)


def write_notebook(path, *sources):
    nb = new_notebook(cells=[new_markdown_cell("# A throwaway notebook")]
                      + [new_code_cell(s) for s in sources])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)
    return path


def test_runs_in_place_with_preset_cwd_and_record(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIT2I_PRESET", "full")       # the argument must win over the env
    monkeypatch.setenv("MPLBACKEND", "Agg")            # as under pytest: figures must still be kept
    (tmp_path / "data.txt").write_text("here")
    path = write_notebook(tmp_path / "nb.ipynb",
                          "import os\nprint(os.environ['MINIT2I_PRESET'])",
                          "print(open('data.txt').read())",       # cwd = the notebook's folder
                          "import matplotlib.pyplot as plt\nplt.plot([0, 1])\nplt.show()")
    record = execute_notebook(path, preset="smoke", timeout=120)

    nb = nbformat.read(path, as_version=4)
    assert nb.cells[1].outputs[0]["text"].strip() == "smoke"
    assert nb.cells[2].outputs[0]["text"].strip() == "here"
    assert any("image/png" in out.get("data", {}) for out in nb.cells[3].outputs)
    meta = nb.metadata["minit2i"]
    assert meta == record
    assert set(meta) == {"preset", "device", "torch", "version", "duration_s", "matmul_gflops",
                         "executed_at"}
    assert meta["matmul_gflops"] is None            # the speed is read only for real runs
    assert meta["preset"] == "smoke" and meta["version"] == __version__
    assert meta["device"] == "cpu" and meta["duration_s"] >= 0
    assert meta["executed_at"].endswith("+00:00")
    json.dumps(meta)                                      # plain JSON, no numpy or torch types


def test_failure_names_the_cell_and_leaves_the_file(tmp_path, capsys):
    good = write_notebook(tmp_path / "good.ipynb", "x = 1")
    bad = write_notebook(tmp_path / "bad.ipynb", "x = 1", "# the broken one\n1 / 0", "y = 2")
    before = bad.read_text()
    with pytest.raises(NotebookFailed, match=r"cell 3 of 4, starting '# the broken one'"):
        execute_notebook(bad, preset="smoke", timeout=120)
    assert bad.read_text() == before

    assert main([str(bad), str(good), "--preset", "smoke", "--timeout", "120"]) == 1
    err = capsys.readouterr().err
    assert "bad.ipynb" in err and "ZeroDivisionError" in err and "1 of 2 notebook(s) failed" in err
    assert "minit2i" in nbformat.read(good, as_version=4).metadata   # the others still ran


def test_progress_bars_are_stored_as_text(tmp_path):
    """tqdm.auto draws widgets in a kernel; the stored notebook keeps their final line as text."""
    path = write_notebook(tmp_path / "bar.ipynb",
                          "import torch\nfrom minit2i.train import fit\n"
                          "fit(lambda batch, i: {'loss': torch.tensor(1.0)}, iter(range(10)), 8,"
                          " desc='demo', log_every=4)\nprint('trained')")
    execute_notebook(path, preset="smoke", timeout=120)
    nb = nbformat.read(path, as_version=4)
    outputs = nb.cells[1].outputs
    assert "widgets" not in nb.metadata
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                   for o in outputs)
    lines = [o["data"]["text/plain"] for o in outputs if "text/plain" in o.get("data", {})]
    assert any(line.startswith("demo: 8/8 steps in ") and "at the end: loss=1" in line
               for line in lines), outputs


def test_a_finished_bar_reads_as_a_sentence():
    assert (progress_sentence("VQ-VAE: 100%", "2400/2400 [08:25<00:00,  4.80it/s, recon=0.009]")
            == "VQ-VAE: 2400/2400 steps in 08:25 (4.80it/s); at the end: recon=0.009")
    assert progress_sentence("demo: 40%", "4/10 [00:01<00:02,  3.9it/s]") == (
        "demo: 4/10 steps in 00:01 (3.9it/s)")
    assert progress_sentence("", "odd text") == "odd text"
