"""Train or load: cache, checkpoint format, config mismatch."""

import pytest
import torch
from torch import nn

from minit2i import presets, zoo
from minit2i.config import settings


@settings
class ToyConfig:
    width: int = 8


@settings
class ToyTrain:
    steps: int
    seed: int = 0


class Toy(nn.Module):
    def __init__(self, config: ToyConfig):
        super().__init__()
        self.config = config
        self.layer = nn.Linear(config.width, 1)


calls = []


def train_toy(model, train, device, preset):
    calls.append(train.steps)
    with torch.no_grad():
        model.layer.weight.fill_(0.5)
    return {"loss": 0.25}


@pytest.fixture(autouse=True)
def toy_spec(monkeypatch):
    monkeypatch.setitem(presets.RECIPES, "toy", {
        p: presets.Recipe(ToyConfig(width=w), ToyTrain(steps=s))
        for p, w, s in (("smoke", 8, 5), ("cpu", 16, 50), ("full", 32, 500))})
    zoo.register("toy", zoo.ModelSpec(Toy, train_toy))
    calls.clear()
    yield
    zoo._SPECS.pop("toy", None)


def test_trains_once_then_loads(cache):
    model = zoo.load_or_train("toy", "smoke", device="cpu", verbose=False)
    path = zoo.checkpoint_path("toy", "smoke")
    assert path.exists() and path.parent == cache and calls == [5]
    assert model.metrics == {"loss": 0.25} and not model.training
    again = zoo.load_or_train("toy", "smoke", device="cpu", verbose=False)
    assert calls == [5]                                   # loaded, not trained again
    assert torch.equal(again.layer.weight, model.layer.weight)
    assert again.metrics == {"loss": 0.25}


def test_checkpoint_loads_with_weights_only(cache):
    zoo.load_or_train("toy", "smoke", device="cpu", verbose=False)
    ckpt = torch.load(zoo.checkpoint_path("toy", "smoke"), weights_only=True)
    assert ckpt["config"] == {"width": 8} and "layer.weight" in ckpt["state_dict"]
    assert "version" in ckpt


def test_config_mismatch_is_a_clear_error(cache):
    zoo.save(Toy(ToyConfig(width=3)), ToyConfig(width=3), zoo.checkpoint_path("toy", "smoke"))
    with pytest.raises(ValueError, match=r"another config: \{'width': \(3, 8\)\}"):
        zoo.load_or_train("toy", "smoke", device="cpu", verbose=False)
    zoo.load_or_train("toy", "smoke", device="cpu", retrain=True, verbose=False)
    assert calls == [5]


def test_presets_get_their_own_checkpoints(cache):
    zoo.load_or_train("toy", "smoke", device="cpu", verbose=False)
    zoo.load_or_train("toy", "cpu", device="cpu", verbose=False)
    assert calls == [5, 50]


def test_unknown_model_lists_known_ones():
    with pytest.raises(ValueError, match="unknown model 'nope'; known models: .*toy"):
        zoo.load_or_train("nope", "smoke")


def test_cache_dir_follows_the_environment(cache):
    assert zoo.cache_dir() == cache


def test_the_same_recipe_gives_the_same_weights_whatever_ran_before(cache):
    zoo.register("toy", zoo.ModelSpec(Toy, lambda model, train, device, preset: {}))
    first = zoo.load_or_train("toy", "smoke", device="cpu", verbose=False)
    torch.manual_seed(123)
    torch.randn(1000)                                   # an unrelated draw from the global RNG
    state = torch.get_rng_state()
    second = zoo.load_or_train("toy", "smoke", device="cpu", retrain=True, verbose=False)
    assert torch.equal(first.layer.weight, second.layer.weight)
    assert torch.equal(torch.get_rng_state(), state)   # the caller's stream is left alone


def test_trainer_gets_the_preset_it_was_asked_for(cache, monkeypatch):
    seen = []
    zoo.register("toy", zoo.ModelSpec(Toy, lambda m, train, device, preset: seen.append(preset)))
    monkeypatch.setenv("MINIT2I_PRESET", "cpu")
    zoo.load_or_train("toy", "smoke", device="cpu", verbose=False)
    assert seen == ["smoke"]
