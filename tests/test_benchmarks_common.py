"""benchmarks/common.py: the one place the benchmark scripts write their JSON."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from common import write_record  # noqa: E402  (benchmarks/ is a folder of scripts)


def test_write_record_makes_the_folder_and_round_trips(tmp_path, capsys):
    path = write_record({"benchmark": "x", "value": 1.5}, tmp_path / "new" / "x.json")
    assert json.loads(path.read_text()) == {"benchmark": "x", "value": 1.5}
    assert path.read_text().endswith("\n") and str(path) in capsys.readouterr().out


def test_every_benchmark_script_writes_through_common():
    scripts = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py"))
    for script in scripts:
        if script.name == "common.py":
            continue
        text = script.read_text()
        assert "minit2i.tools" not in text and "minit2i.execute" not in text, script.name
        if "write_record(" in text:
            assert "from common import write_record" in text, script.name


def test_variants_are_checked_and_records_kept_only_for_the_same_settings(tmp_path):
    from common import chosen_variants, previous_record

    assert chosen_variants(" a, b ,", {"a": 1, "b": 2}) == ["a", "b"]
    with pytest.raises(SystemExit, match="unknown variant 'c'; known: a, b"):
        chosen_variants("a,c", {"a": 1, "b": 2})
    path = tmp_path / "r.json"
    assert previous_record(path, preset="cpu") == {}
    path.write_text(json.dumps({"preset": "cpu", "n_prompts": 16, "variants": {"x": 1}}))
    assert previous_record(path, preset="cpu", n_prompts=16)["variants"] == {"x": 1}
    assert previous_record(path, preset="cpu", n_prompts=32) == {}
    assert previous_record(path, preset="full") == {}


def test_every_levers_variant_can_be_named_on_the_command_line():
    # --variants is comma-separated: a name with a comma in it could never be chosen
    import dalle_levers
    import dalle_rerank
    import vqgan_clip_levers
    from common import chosen_variants

    for table in (dalle_levers.VARIANTS, vqgan_clip_levers.VARIANTS, dalle_rerank.RERANKERS):
        for name in table:
            assert "," not in name, name
            assert chosen_variants(name, table) == [name]


def test_rerank_likelihood_is_the_models_image_loss_summed():
    # dalle_rerank scores a sample by log p(codes | caption): minus the image cross-entropy of
    # MiniDALLE.loss, summed over the codes instead of averaged over the batch
    import torch
    from dalle_rerank import code_log_likelihood

    from minit2i.dalle import DALLEConfig, MiniDALLE

    torch.manual_seed(0)
    model = MiniDALLE(DALLEConfig(num_codes=16, grid=3, dim=16, depth=1, n_heads=2)).eval()
    text = torch.randint(1, model.config.text_vocab, (4, model.config.text_len))
    codes = torch.randint(0, 16, (4, 3, 3))
    with torch.no_grad():
        image_loss = model.loss(text, codes)["image_loss"]
    per_sample = code_log_likelihood(model, text, codes)
    assert per_sample.shape == (4,)
    torch.testing.assert_close(-per_sample.mean() / 9, image_loss, rtol=1e-5, atol=1e-6)
