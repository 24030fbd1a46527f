"""Train or load: cache, checkpoint format, config mismatch."""

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from minit2i import zoo


@dataclass
class ToyConfig:
    width: int = 8


class Toy(nn.Module):
    def __init__(self, config: ToyConfig):
        super().__init__()
        self.config = config
        self.layer = nn.Linear(config.width, 1)


calls = []


def train_toy(model, r, device):
    calls.append(r["steps"])
    with torch.no_grad():
        model.layer.weight.fill_(0.5)
    return {"loss": 0.25}


@pytest.fixture(autouse=True)
def toy_spec():
    zoo.register("toy", zoo.ModelSpec(ToyConfig, Toy, train_toy))
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
