"""Devices, precision, seeds, presets and checked settings."""

import dataclasses

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
    seeded,
    settings,
)
from minit2i.presets import RECIPES, Recipe, recipe


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


def test_precision_on_the_cpu(monkeypatch):
    monkeypatch.delenv("MINIT2I_AMP", raising=False)
    assert amp_dtype("cpu") is None
    assert not grad_scaler("cpu").is_enabled()
    x = torch.randn(3, 3)
    with autocast("cpu"):
        assert (x @ x).dtype == torch.float32
    assert "precision: float32" in describe("smoke") or torch.cuda.is_available()
    assert "preset: smoke" in describe("smoke")


def test_get_device_is_the_best_device_here():
    expected = ("cuda" if torch.cuda.is_available() else
                "mps" if torch.backends.mps.is_available() else "cpu")
    assert get_device().type == expected


@pytest.mark.parametrize("capability, dtype", [((7, 5), torch.float16), ((7, 0), torch.float16),
                                               ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)])
def test_amp_dtype_follows_the_compute_capability(monkeypatch, capability, dtype):
    monkeypatch.delenv("MINIT2I_AMP", raising=False)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)   # as on a T4
    assert amp_dtype("cuda") == dtype
    assert amp_dtype("cpu") is None and amp_dtype("mps") is None


def test_amp_can_be_forced_and_a_bad_value_is_named(monkeypatch):
    for value, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16), ("fp32", None)):
        monkeypatch.setenv("MINIT2I_AMP", value)
        assert amp_dtype("cpu") == dtype
    monkeypatch.setenv("MINIT2I_AMP", "fp16")
    assert grad_scaler("cpu").is_enabled()
    with autocast("cpu"):
        assert (torch.randn(2, 2) @ torch.randn(2, 2)).dtype == torch.float16
    monkeypatch.setenv("MINIT2I_AMP", "fp8")
    with pytest.raises(ValueError, match="unknown MINIT2I_AMP 'fp8'; choose one of auto, fp32"):
        amp_dtype("cpu")


def test_seeded_repeats_and_leaves_the_callers_streams_alone():
    torch.manual_seed(5)
    np.random.seed(5)
    with seeded(3):
        a = torch.randn(4), np.random.rand(2)
    after = torch.randn(2), np.random.rand(1)
    torch.manual_seed(5)
    np.random.seed(5)
    torch.randn(100)                                   # whatever ran before
    with seeded(3):
        b = torch.randn(4), np.random.rand(2)
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    torch.manual_seed(5)
    np.random.seed(5)
    assert torch.equal(torch.randn(2), after[0]) and np.array_equal(np.random.rand(1), after[1])


def test_settings_refuse_a_misspelt_name():
    @settings
    class Demo:
        steps: int
        lr: float = 0.1

    d = Demo(steps=3)
    assert d.replace(lr=0.5) == Demo(3, 0.5) and d.lr == 0.1
    with pytest.raises(ValueError, match=r"Demo has no setting 'stpes' \(did you mean 'steps'\?\); "
                                         r"its settings are: steps, lr"):
        Demo(stpes=3)
    with pytest.raises(ValueError, match="no setting 'momentum'; its settings are: steps, lr"):
        d.replace(momentum=0.9)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.lr = 1.0


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
            assert isinstance(r, Recipe), (name, preset)
            assert dataclasses.is_dataclass(r.train), (name, preset)
        steps = {p: getattr(presets[p].train, "steps", None) for p in PRESETS}
        if all(isinstance(v, int) for v in steps.values()):
            assert steps["smoke"] <= steps["cpu"], name


def test_recipes_are_immutable_and_names_are_checked():
    r = recipe("vqvae", "smoke")
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.train.steps = -1
    assert r.train.replace(steps=1).steps == 1 and recipe("vqvae", "smoke").train.steps != 1
    with pytest.raises(ValueError, match="VQVAETrain has no setting 'fg_wieght' \\(did you mean "
                                         "'fg_weight'"):
        r.train.replace(fg_wieght=1.0)
    with pytest.raises(ValueError, match="no recipe for model 'nope'; known models: shapes_gan"):
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
