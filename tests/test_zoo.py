"""Train or load: cache, checkpoint format, config mismatch."""

from pathlib import Path

import pytest
import torch
from torch import nn

from minit2i import presets, zoo
from minit2i.budget import SHIPPED
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
    zoo.introduce()
    yield
    zoo._SPECS.pop("toy", None)
    zoo.introduce()


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """An empty folder of shipped checkpoints, and a helper that ships a toy model into it."""
    folder = tmp_path / "shipped"
    monkeypatch.setattr(zoo, "SHIPPED_DIR", folder)
    monkeypatch.delenv("MINIT2I_NO_SHIPPED", raising=False)
    monkeypatch.delenv("MINIT2I_RETRAIN", raising=False)

    def ship(preset="smoke", value=2.0, **train_changes):
        model = Toy(presets.recipe("toy", preset).model)
        with torch.no_grad():
            model.layer.weight.fill_(value)
        record = zoo.recipe_record("toy", preset)
        record["train"].update(train_changes)
        path = folder / f"toy-{preset}.pt"
        zoo.save(model, model.config, path, {"loss": 0.5}, record)
        return path

    return ship


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


def test_checkpoints_record_the_recipe_and_a_hash(cache):
    zoo.load_or_train("toy", "smoke", device="cpu", verbose=False)
    ckpt = torch.load(zoo.checkpoint_path("toy", "smoke"), weights_only=True)
    assert ckpt["train"] == {"steps": 5, "seed": 0} and ckpt["needs"] == {}
    assert ckpt["sha256"] == zoo.state_hash(ckpt["state_dict"])


def test_an_empty_cache_loads_the_shipped_checkpoint(cache, shipped, capsys):
    shipped()
    model = zoo.load_or_train("toy", "smoke", device="cpu")
    assert calls == [] and model.layer.weight[0, 0].item() == 2.0
    assert model.metrics == {"loss": 0.5} and not zoo.checkpoint_path("toy", "smoke").exists()
    assert "from the checkpoint minit2i ships: toy-smoke.pt" in capsys.readouterr().out


def test_the_cache_comes_before_the_shipped_checkpoint(cache, shipped):
    zoo.load_or_train("toy", "smoke", device="cpu", verbose=False)       # trains: 0.5
    shipped(value=2.0)
    again = zoo.load_or_train("toy", "smoke", device="cpu", verbose=False)
    assert again.layer.weight[0, 0].item() == 0.5
    assert calls == [5]


def test_a_chapter_that_introduces_a_model_trains_it(cache, shipped, monkeypatch):
    shipped()
    zoo.introduce("toy")
    zoo.load_or_train("toy", "smoke", device="cpu", verbose=False)
    assert calls == [5]                                    # trained, although one is shipped
    zoo.load_or_train("toy", "smoke", device="cpu", verbose=False)
    assert calls == [5]                                    # and then taken from the cache
    hurry = zoo.load_or_train("toy", "smoke", device="cpu", retrain=False, shipped=True,
                              verbose=False)
    assert hurry.layer.weight[0, 0].item() == 0.5          # the cache still comes first
    zoo.checkpoint_path("toy", "smoke").unlink()
    hurry = zoo.load_or_train("toy", "smoke", device="cpu", shipped=True, verbose=False)
    assert hurry.layer.weight[0, 0].item() == 2.0 and calls == [5]


def test_retraining_is_one_argument_or_variable_away(cache, shipped, monkeypatch):
    shipped()
    zoo.load_or_train("toy", "smoke", device="cpu", shipped=False, verbose=False)
    assert calls == [5]
    monkeypatch.setenv("MINIT2I_RETRAIN", "1")
    zoo.load_or_train("toy", "smoke", device="cpu", verbose=False)
    assert calls == [5, 5]                                 # cache and shipped both skipped
    monkeypatch.delenv("MINIT2I_RETRAIN")
    zoo.checkpoint_path("toy", "smoke").unlink()
    monkeypatch.setenv("MINIT2I_NO_SHIPPED", "1")
    zoo.load_or_train("toy", "smoke", device="cpu", verbose=False)
    assert calls == [5, 5, 5]


def test_a_shipped_checkpoint_of_another_recipe_says_what_differs(cache, shipped):
    shipped(steps=7)
    with pytest.raises(ValueError, match=r"another recipe: train.steps: 7 in the file, 5 in the "
                                         r"recipe\. To use this recipe, pass retrain=True .*"
                                         r"MINIT2I_NO_SHIPPED=1"):
        zoo.load_or_train("toy", "smoke", device="cpu", verbose=False)
    zoo.load_or_train("toy", "smoke", device="cpu", shipped=False, verbose=False)
    assert calls == [5]


def test_a_damaged_shipped_checkpoint_is_refused(cache, shipped):
    path = shipped()
    ckpt = torch.load(path, weights_only=True)
    ckpt["state_dict"]["layer.weight"][0, 0] = 3.0
    torch.save(ckpt, path)
    with pytest.raises(ValueError, match="is damaged: its weights hash to"):
        zoo.load_or_train("toy", "smoke", device="cpu", verbose=False)


def test_a_preset_with_the_same_recipe_shares_the_shipped_model(cache, shipped, monkeypatch):
    shipped("cpu")
    assert zoo.shipped_path("toy", "full") is None                   # its recipe differs
    monkeypatch.setitem(presets.RECIPES["toy"], "full", presets.RECIPES["toy"]["cpu"])
    assert zoo.shipped_path("toy", "full") == zoo.SHIPPED_DIR / "toy-cpu.pt"
    model = zoo.load_or_train("toy", "full", device="cpu", verbose=False)
    assert calls == [] and model.layer.weight[0, 0].item() == 2.0


def test_a_cached_model_of_an_older_recipe_says_what_differs(cache, monkeypatch):
    zoo.load_or_train("toy", "smoke", device="cpu", verbose=False)
    r = presets.recipe("toy", "smoke")
    monkeypatch.setitem(presets.RECIPES["toy"], "smoke",
                        presets.Recipe(r.model, r.train.replace(steps=6)))
    with pytest.raises(ValueError, match="train.steps: 5 in the file, 6 in the recipe"):
        zoo.load_or_train("toy", "smoke", device="cpu", verbose=False)
    zoo.load_or_train("toy", "smoke", device="cpu", retrain=True, verbose=False)
    assert calls == [5, 6]


def test_the_package_ships_only_checkpoints_of_the_current_recipes():
    # whatever minit2i/checkpoints holds must load, match its recipe and its hash
    folder = Path(zoo.__file__).resolve().parent / "checkpoints"     # the real ones
    assert sorted(p.stem for p in folder.glob("*.pt")) == sorted(f"{n}-cpu" for n in SHIPPED)
    for path in sorted(folder.glob("*.pt")):
        name, preset = path.stem.rsplit("-", 1)
        zoo.load(path, zoo.spec(name).build, presets.recipe(name, preset).model,
                 zoo.recipe_record(name, preset), check_hash=True)
