"""Every recipe builds in every preset, and every trainer takes real steps in every precision.

The precisions are forced with MINIT2I_AMP, so a CPU runs the same code paths as a GPU: fp32,
bfloat16 autocast, and float16 autocast with an enabled gradient scaler.
"""

import math

import pytest
import torch

from minit2i import train as train_module
from minit2i import zoo
from minit2i.config import PRESETS
from minit2i.presets import RECIPES, recipe

MODELS = sorted(zoo.WHERE)
# Tiny runs: a few steps on a few scenes (fp16 may skip its first steps while the scaler finds
# its scale, so it gets more of them).
TINY = {"shapes_gan": dict(batch_size=8, n_images=16), "vqvae": dict(batch_size=4, n_train=8),
        "vqgan": dict(batch_size=4, n_train=8, disc_warmup=1),
        "clip": dict(batch_size=8, n_train=32, n_eval=16),
        "clip_b": dict(batch_size=8, n_train=32, n_eval=16),
        "dalle": dict(batch_size=4, n_train=16, n_val=8, n_judge=0, eval_every=5, log_every=5)}


@pytest.mark.parametrize("name", sorted(RECIPES))
@pytest.mark.parametrize("preset", PRESETS)
def test_every_recipe_builds(name, preset):
    r = recipe(name, preset)
    assert r.train.replace() == r.train                       # settings round-trip
    if name in zoo.WHERE:
        model = zoo.spec(name).build(r.model)
        assert sum(p.numel() for p in model.parameters()) > 0


def test_every_zoo_model_has_tiny_settings_here():
    assert set(TINY) == set(zoo.WHERE)


@pytest.mark.parametrize("amp", ["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("name", MODELS)
def test_a_real_training_step_in_each_precision(name, amp, cache, monkeypatch):
    monkeypatch.setenv("MINIT2I_AMP", amp)
    made = []
    original = train_module.OptimizerStep.__init__

    def spy(self, *args, **kwargs):                         # every optimiser the trainer makes
        original(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(train_module.OptimizerStep, "__init__", spy)
    r = recipe(name, "smoke")
    steps = 10 if amp == "fp16" else 5
    settings = r.train.replace(steps=steps, **TINY[name])
    s = zoo.spec(name)
    torch.manual_seed(0)
    model = s.build(r.model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    metrics = s.train(model, settings, torch.device("cpu"), "smoke")
    assert made, f"{name}'s trainer did not use minit2i.train.OptimizerStep"
    for update in made:
        assert update.scaler.is_enabled() == (amp == "fp16"), (name, amp)
    after = model.state_dict()
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    changed = [k for k, v in after.items() if not torch.equal(v, before[k])]
    assert changed, f"{name} ({amp}): no weight changed in {steps} steps"
    assert all(math.isfinite(v) for v in metrics.values() if isinstance(v, float)), metrics
