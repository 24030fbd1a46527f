"""The shipped checkpoints: one command rebuilds them from nothing; chapters then load them."""

import pytest
import torch

from minit2i import budget, zoo
from minit2i.tools import ship


@pytest.mark.slow
def test_ship_trains_from_nothing_and_chapters_then_load(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MINIT2I_CACHE", str(tmp_path / "elsewhere"))
    out = tmp_path / "checkpoints"
    assert ship.main(["--preset", "smoke", "--out", str(out),
                      "--cache", str(tmp_path / "fresh")]) == 0
    assert "5 checkpoints" in capsys.readouterr().out
    assert sorted(p.name for p in out.glob("*.pt")) == sorted(
        f"{name}-smoke.pt" for name in budget.SHIPPED)
    assert not any((tmp_path / "elsewhere").glob("*.pt"))        # the caller's cache untouched
    for path in out.glob("*.pt"):
        ckpt = torch.load(path, weights_only=True)
        name = path.stem.rsplit("-", 1)[0]
        assert ckpt["sha256"] == zoo.state_hash(ckpt["state_dict"])
        assert {"config": ckpt["config"], "train": ckpt["train"], "needs": ckpt["needs"]} \
            == zoo.recipe_record(name, "smoke")
    # an empty cache now loads every shipped model without training one
    monkeypatch.setattr(zoo, "SHIPPED_DIR", out)
    monkeypatch.setenv("MINIT2I_CACHE", str(tmp_path / "reader"))
    trained = []
    real = zoo.spec("dalle")
    monkeypatch.setitem(zoo._SPECS, "dalle", zoo.ModelSpec(
        real.build, lambda *a: trained.append("dalle") or real.train(*a)))
    model = zoo.load_or_train("dalle", "smoke", device="cpu", verbose=False)
    assert trained == [] and "val_loss" in model.metrics
    # the chapter that introduces it trains it all the same
    budget.start_chapter(6, "smoke")
    try:
        zoo.load_or_train("dalle", "smoke", device="cpu", verbose=False)
    finally:
        zoo.introduce()
    assert trained == ["dalle"]


def test_ship_refuses_a_cache_that_is_not_empty(tmp_path):
    (tmp_path / "old.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="is not empty"):
        ship.ship("smoke", tmp_path / "out", tmp_path)
