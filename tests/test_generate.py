"""Tests for minit2i.generate and the command line (python -m minit2i).

The two systems are replaced by stand-ins here, so nothing is trained: these tests check the
checking, the dispatch, the grid and the command line's error paths.
"""

import subprocess
import sys
import types

import matplotlib.image as mpimg
import numpy as np
import pytest

from minit2i import generation as g
from minit2i.__main__ import main

PROMPT = "a large red circle in the top left"


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "minit2i", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def fake_systems(monkeypatch):
    """Stand-ins for minit2i.dalle and minit2i.vqgan_clip that record their calls."""
    calls = []

    def make(name):
        def generate_images(prompts, n_per_prompt=1, seed=0, **kw):
            calls.append((name, list(prompts), n_per_prompt, seed))
            n = len(prompts) * n_per_prompt
            rng = np.random.default_rng(seed)
            return rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
        module = types.ModuleType(f"minit2i.{name}")
        module.generate_images = generate_images
        monkeypatch.setitem(sys.modules, f"minit2i.{name}", module)

    make("dalle")
    make("vqgan_clip")
    return calls


@pytest.fixture
def no_models(monkeypatch):
    """Fail loudly if anything tries to train or load a model."""
    def refuse(*a, **k):
        raise AssertionError("a model was loaded before the prompt was checked")
    monkeypatch.setattr("minit2i.zoo.load_or_train", refuse)


def test_check_prompts_accepts_world_prompts():
    assert g.check_prompts(PROMPT) == [PROMPT]
    two = ["a red circle", "a small blue square to the left of a green cross"]
    assert g.check_prompts(two) == two


@pytest.mark.parametrize("prompt, words", [
    ("a purple dog", "'dog'"),
    ("a red circle and a blue square", "'and'"),
    ("a large circle", "no colour"),
    ("a red circle a blue square", "no relation"),
])
def test_check_prompts_names_the_problem(prompt, words):
    with pytest.raises(ValueError, match=words):
        g.check_prompts([PROMPT, prompt])


def test_bad_prompts_methods_and_counts_fail_before_any_model(no_models):
    # the real systems: a check that came after loading a model would trip no_models
    with pytest.raises(ValueError, match="unknown word 'dog'"):
        g.generate(["a purple dog"], method="dalle")
    with pytest.raises(ValueError, match="dalle, vqgan_clip"):
        g.generate([PROMPT], method="diffusion")
    with pytest.raises(ValueError, match="no prompts"):
        g.generate([], method="dalle")
    with pytest.raises(ValueError, match="n_per_prompt"):
        g.generate([PROMPT], n_per_prompt=0)
    with pytest.raises(AssertionError, match="a model was loaded"):   # the guard can fire
        g.generate([PROMPT], method="dalle")


def test_generate_dispatches_to_each_system(fake_systems):
    out = g.generate([PROMPT, "a blue square"], method="dalle", seed=3, n_per_prompt=2)
    assert out.shape == (4, 64, 64, 3) and out.dtype == np.uint8
    assert fake_systems[-1] == ("dalle", [PROMPT, "a blue square"], 2, 3)
    out = g.generate(PROMPT, method="vqgan_clip", seed=1, n_per_prompt=3)
    assert out.shape == (3, 64, 64, 3)
    assert fake_systems[-1] == ("vqgan_clip", [PROMPT] * 3, 1, 1)


def test_generate_rejects_a_malformed_result(monkeypatch):
    module = types.ModuleType("minit2i.dalle")
    module.generate_images = lambda prompts, **kw: np.zeros((len(prompts), 64, 64, 3))
    monkeypatch.setitem(sys.modules, "minit2i.dalle", module)
    with pytest.raises(RuntimeError, match="expected uint8"):
        g.generate([PROMPT])


def test_tile_lays_out_a_grid():
    imgs = np.stack([np.full((4, 5, 3), k, np.uint8) for k in range(1, 6)])
    grid = g.tile(imgs, gap=1)                          # 5 images -> 3 columns, 2 rows
    assert grid.shape == (2 * 4 + 1, 3 * 5 + 2, 3)
    assert grid[0, 0, 0] == 1 and grid[0, 6, 0] == 2 and grid[5, 0, 0] == 4
    assert grid[4, 0, 0] == 0 and grid[5, 12, 0] == 0  # the gap, and the empty sixth cell
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        g.tile(np.zeros((4, 5, 3)))


def test_cli_writes_a_png(tmp_path, fake_systems, capsys):
    out = tmp_path / "grid.png"
    assert main(["generate", PROMPT, "--out", str(out), "--n", "4", "--seed", "5"]) == 0
    assert mpimg.imread(out).shape[:2] == (2 * 64 + 2, 2 * 64 + 2)
    assert fake_systems[-1] == ("dalle", [PROMPT], 4, 5)
    assert "saved 4 images" in capsys.readouterr().out
    single = tmp_path / "one.png"
    assert main(["generate", PROMPT, "--method", "vqgan_clip", "--out", str(single)]) == 0
    assert mpimg.imread(single).shape[:2] == (64, 64)


def test_cli_help():
    result = run_cli("--help")
    assert result.returncode == 0 and "generate" in result.stdout
    result = run_cli("generate", "--help")
    assert result.returncode == 0 and "--method" in result.stdout and "vqgan_clip" in result.stdout


@pytest.mark.parametrize("args, message", [
    (("generate", "a purple dog"), "unknown word 'dog'"),
    (("generate", "a red circle and a blue square"), "'and'"),
    (("generate", PROMPT, "--method", "diffusion"), "invalid choice: 'diffusion'"),
    (("generate", PROMPT, "--n", "0"), "--n must be at least 1"),
    (("generate", PROMPT, "--out", "no/such/folder/x.png"), "does not exist"),
    ((), "COMMAND"),
])
def test_cli_errors_exit_2_with_a_message(args, message):
    result = run_cli(*args)
    assert result.returncode == 2, result
    assert message in result.stderr, result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dalle", "vqgan_clip"])
def test_end_to_end_smoke(method, cache, tmp_path):
    """The real systems, smoke preset: train on first use, then draw the right shapes of array."""
    images = g.generate([PROMPT, "a small blue square to the left of a green cross"],
                        method=method, seed=0, n_per_prompt=2)
    assert images.shape == (4, 64, 64, 3) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, g.generate(
        [PROMPT, "a small blue square to the left of a green cross"], method=method, seed=0,
        n_per_prompt=2))                                 # same seed, same images
    out = tmp_path / "x.png"
    assert main(["generate", PROMPT, "--method", method, "--out", str(out), "--n", "2"]) == 0
    assert mpimg.imread(out).shape[:2] == (64, 64 * 2 + 2)
