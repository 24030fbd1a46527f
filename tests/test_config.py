"""Devices, precision, seeds and presets."""

import numpy as np
import pytest
import torch

from minit2i.config import (
    PRESETS,
    amp_dtype,
    autocast,
    describe,
    device_name,
    get_device,
    grad_scaler,
    preset_name,
    seed_everything,
)
from minit2i.presets import RECIPES, recipe


def test_preset_from_argument_env_and_default(monkeypatch):
    monkeypatch.setenv("MINIT2I_PRESET", "cpu")
    assert preset_name() == "cpu"
    assert preset_name("smoke") == "smoke"
    monkeypatch.delenv("MINIT2I_PRESET")
    assert preset_name() == ("full" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("MINIT2I_PRESET", " Smoke ")
    assert preset_name() == "smoke"


def test_unknown_preset_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown preset 'fast'; choose one of smoke, cpu, full"):
        preset_name("fast")


def test_precision_on_the_cpu():
    assert amp_dtype("cpu") is None
    assert not grad_scaler("cpu").is_enabled()
    x = torch.randn(3, 3)
    with autocast("cpu"):
        assert (x @ x).dtype == torch.float32
    assert get_device().type in ("cpu", "cuda", "mps")
    assert "preset:" in describe("smoke")


def test_seed_everything_repeats_random_streams():
    seed_everything(3)
    a = (torch.randn(4), np.random.rand(2))
    seed_everything(3)
    b = (torch.randn(4), np.random.rand(2))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])


def test_every_recipe_has_every_preset():
    for name, presets in RECIPES.items():
        assert set(presets) == set(PRESETS), name
        for preset, r in presets.items():
            assert {"model", "train"} <= set(r), (name, preset)
        steps = {p: presets[p]["train"].get("steps") for p in PRESETS}
        if all(isinstance(v, int) for v in steps.values()):
            assert steps["smoke"] <= steps["cpu"], name


def test_recipe_returns_a_copy_and_checks_names():
    r = recipe("toy", "smoke")
    r["train"]["steps"] = -1
    assert recipe("toy", "smoke")["train"]["steps"] != -1
    with pytest.raises(ValueError, match="no recipe for model 'nope'; known models: toy"):
        recipe("nope", "smoke")


def test_device_name_says_cpu_mps_or_the_gpu(monkeypatch):
    import minit2i.config as config

    monkeypatch.setattr(config, "get_device", lambda: torch.device("cpu"))
    assert device_name() == "cpu"
    monkeypatch.setattr(config, "get_device", lambda: torch.device("mps"))
    assert device_name() == "mps"
    monkeypatch.setattr(config, "get_device", lambda: torch.device("cuda"))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla T4")
    assert device_name() == "Tesla T4"
