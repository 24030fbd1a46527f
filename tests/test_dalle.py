"""Mini DALL-E: the joint sequence, vocabulary masks, KV-cache sampling, training, drawing."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from minit2i import dalle, presets, zoo
from minit2i.config import settings
from minit2i.dalle import (
    DALLEConfig,
    DALLETrain,
    MiniDALLE,
    Sampling,
    guided_logits,
    sample_codes,
    sample_next,
)
from minit2i.text import Tokenizer

CAPTIONS = ["a red circle", "a small blue square to the left of a large green cross",
            "a big yellow triangle at the top", "a tiny pink diamond in the bottom left"]


def tiny(dtype=torch.float64, **kw):
    torch.manual_seed(0)
    cfg = DALLEConfig(**{**dict(num_codes=16, grid=4, dim=32, depth=2, n_heads=4), **kw})
    return MiniDALLE(cfg).to(dtype)


def text_and_codes(n=4, num_codes=16, grid=4):
    g = torch.Generator().manual_seed(1)
    return (Tokenizer().encode_batch(CAPTIONS[:n]),
            torch.randint(0, num_codes, (n, grid, grid), generator=g))


def test_joint_sequence_layout_and_shapes():
    model = tiny()
    text, codes = text_and_codes()
    seq = model.joint(text, codes)
    V = model.config.text_vocab
    assert seq.shape == (4, 24 + 16) and model.seq_len == 40
    assert torch.equal(seq[:, :24], text) and seq[0, 0] == Tokenizer().bos_id
    assert torch.equal(seq[:, 24:] - V, codes.flatten(1))               # row by row, offset by V
    assert model.embed(seq).shape == (4, 40, 32)
    assert model(seq[:, :-1]).shape == (4, 39, V + 16)
    # embedding a chunk at its position equals the same rows of the whole sequence's embedding
    torch.testing.assert_close(model.embed(seq[:, 20:30], start=20), model.embed(seq)[:, 20:30])


def test_bad_inputs_give_clear_errors():
    model = tiny()
    text, codes = text_and_codes()
    with pytest.raises(ValueError, match=r"text tokens of shape \(B, 24\)"):
        model.joint(text[:, :10], codes)
    with pytest.raises(ValueError, match=r"image codes of shape \(B, 4, 4\)"):
        model.joint(text, codes[:, :2])
    with pytest.raises(ValueError, match="run past the sequence"):
        model.embed(model.joint(text, codes)[:, :5], start=38)
    with pytest.raises(ValueError, match="outside"):
        model.embed(text[:, :8], start=24)                              # words at image positions
    with pytest.raises(ValueError, match="temperature"):
        sample_next(torch.zeros(2, 5), temperature=-1)


def test_each_position_may_only_predict_its_own_vocabulary():
    model = tiny()
    text, codes = text_and_codes()
    logits = model(model.joint(text, codes)[:, :-1])                     # (B, 39, V + K)
    V = model.config.text_vocab
    text_out, image_out = logits[:, :23], logits[:, 23:]                 # output 23 predicts code 0
    assert torch.isinf(text_out[..., V:]).all() and torch.isfinite(text_out[..., :V]).all()
    assert torch.isinf(image_out[..., :V]).all() and torch.isfinite(image_out[..., V:]).all()


def test_never_samples_a_word_at_an_image_position():
    model = tiny()
    with torch.no_grad():
        model.head.bias[:model.config.text_vocab] = 50.0                  # words look far likelier
    text, _ = text_and_codes()
    for temperature, top_k in [(1.0, None), (5.0, None), (1.0, 3), (0.0, None)]:
        codes = sample_codes(model, text, temperature, top_k, torch.Generator().manual_seed(0))
        assert codes.shape == (4, 4, 4)
        assert codes.min() >= 0 and codes.max() < model.config.num_codes


def test_joint_mask_is_causal():
    model = tiny().eval()
    text, codes = text_and_codes()
    seq = model.joint(text, codes)
    changed = seq.clone()
    changed[:, 30:] = model.config.text_vocab + (seq[:, 30:] - model.config.text_vocab + 1) % 16
    a, b = (model(s).masked_fill(~model.allowed[:39], 0.0) for s in (seq[:, :-1], changed[:, :-1]))
    torch.testing.assert_close(a[:, :30], b[:, :30])      # the caption and earlier codes: unchanged
    assert (a[:, 30:] - b[:, 30:]).abs().max() > 1e-6
    # and the image sees the caption: a different caption changes the image logits
    other = model.joint(Tokenizer().encode_batch(CAPTIONS[::-1]), codes)[:, :-1]
    assert (model(other).masked_fill(~model.allowed[:39], 0.0) - a)[:, 23:].abs().max() > 1e-6


def test_loss_is_weighted_one_to_seven_and_ignores_padding():
    model = tiny()
    text, codes = text_and_codes()
    out = model.loss(text, codes)
    torch.testing.assert_close(out["loss"], out["text_loss"] / 8 + 7 * out["image_loss"] / 8)
    seq = model.joint(text, codes)
    logits = model(seq[:, :-1])
    V = model.config.text_vocab
    words = seq[:, 1:24]
    real = words != 0
    expected = F.cross_entropy(logits[:, :23][real], words[real])
    torch.testing.assert_close(out["text_loss"], expected)
    image = F.cross_entropy(logits[:, 23:, V:].flatten(0, 1), codes.flatten())
    torch.testing.assert_close(out["image_loss"], image)


@pytest.mark.parametrize("temperature,top_k", [(1.0, None), (0.7, 5), (0.0, None)])
def test_kv_cache_sampler_equals_full_recomputation(temperature, top_k):
    model = tiny().eval()
    text, _ = text_and_codes()
    fast = sample_codes(model, text, temperature, top_k, torch.Generator().manual_seed(3))
    slow = sample_codes(model, text, temperature, top_k, torch.Generator().manual_seed(3),
                        use_cache=False)
    assert torch.equal(fast, slow)
    # and the cached logits equal the recomputed ones along a whole sequence
    seq = model.joint(text, fast)
    cache = model.transformer.new_cache()
    steps = [model(seq[:, :24], kv_cache=cache)]
    steps += [model(seq[:, t:t + 1], start=t, kv_cache=cache) for t in range(24, 39)]
    torch.testing.assert_close(torch.cat(steps, 1), model(seq[:, :-1]))


def test_sample_next_temperature_and_top_k():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0, float("-inf")]]).repeat(2000, 1)
    g = torch.Generator().manual_seed(0)
    assert (sample_next(logits, 0.0) == 1).all()                          # greedy
    assert (sample_next(logits, 1.0, top_k=1, generator=g) == 1).all()
    top2 = sample_next(logits, 1.0, top_k=2, generator=g)
    assert set(top2.tolist()) == {1, 3}
    hot = torch.bincount(sample_next(logits, 10.0, generator=g), minlength=5)
    cold = torch.bincount(sample_next(logits, 0.3, generator=g), minlength=5)
    assert hot[4] == 0 and cold[4] == 0                                   # -inf is never drawn
    assert hot[0] > 200 and cold[0] < 20                                  # heat flattens


def test_overfits_one_batch_and_redraws_it():
    torch.manual_seed(0)
    model = tiny(torch.float32, dim=48)
    text, codes = text_and_codes()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(250):
        out = model.loss(text, codes)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    # the captions all start "a ..." and differ only after it: no model can know the word after
    # "a", which leaves log(4) nats in each caption, averaged over all 34 predicted words
    floor = 4 * np.log(4) / (Tokenizer().encode_batch(CAPTIONS)[:, 1:] > 0).sum().item()
    assert out["image_loss"] < 0.05 and out["text_loss"] < floor + 0.02, (out, floor)
    model.eval()
    assert torch.equal(sample_codes(model, text, temperature=0.0), codes)


# ---------------------------------------------------------------------------------------------
# Training and drawing through the zoo, with a stand-in image tokenizer (so these tests do not
# depend on chapter 3's VQ-VAE): each 16x16 block becomes one of 8 codes, its colour's 3 bits.
# ---------------------------------------------------------------------------------------------

@settings
class BlockConfig:
    block: int = 16


@settings
class NoTraining:
    seed: int = 0


class BlockTokenizer(nn.Module):
    def __init__(self, config: BlockConfig):
        super().__init__()
        self.config = config
        self.num_codes, self.grid = 8, 64 // config.block
        self.register_buffer("bits", torch.tensor([4, 2, 1]))

    def encode(self, x):                                     # (B, 3, 64, 64) -> (B, 4, 4)
        on = F.avg_pool2d(x, self.config.block) > -0.8
        return (on.long() * self.bits[:, None, None]).sum(1)

    def decode_indices(self, idx):                           # (B, 4, 4) -> (B, 3, 64, 64)
        on = (idx[:, None] & self.bits[:, None, None]) > 0
        return F.interpolate(on.float() * 2 - 1, scale_factor=self.config.block)


@pytest.fixture
def block_tokenizer(monkeypatch):
    spec = zoo.ModelSpec(BlockTokenizer, lambda model, train, device, preset: {})
    monkeypatch.setitem(zoo._SPECS, "blocks", spec)
    blocks = presets.Recipe(BlockConfig(), NoTraining())
    monkeypatch.setitem(presets.RECIPES, "blocks", {p: blocks for p in ("smoke", "cpu", "full")})
    set_dalle_recipe(monkeypatch, DALLETrain(steps=60, batch_size=16, n_train=128, n_val=32,
                                             lr=3e-3, eval_every=20, log_every=20,
                                             caption_dropout=0.2, tokenizer="blocks"))


def set_dalle_recipe(monkeypatch, train, dim=32):
    small = presets.Recipe(DALLEConfig(num_codes=8, grid=4, dim=dim, depth=1, n_heads=2), train,
                           Sampling())
    monkeypatch.setitem(presets.RECIPES, "dalle", {p: small for p in ("smoke", "cpu", "full")})


def test_train_keeps_the_best_heldout_checkpoint(cache, block_tokenizer):
    model = zoo.load_or_train("dalle", device="cpu", verbose=False)
    m = model.metrics
    assert m["image_tokenizer"] == "blocks" and m["curve_step"] == [20, 40, 60]
    best = int(np.argmin(m["curve_heldout"]))
    assert m["best_step"] == m["curve_step"][best]
    assert m["heldout_loss"] == pytest.approx(m["curve_heldout"][best], rel=1e-4)
    assert m["curve_train"][-1] < m["curve_train"][0]
    assert zoo.checkpoint_path("dalle").exists()


def test_generate_images_shapes_seeds_and_reranking(cache, block_tokenizer, monkeypatch):
    prompts = ["a red circle", "a blue square above a green cross"]
    images = dalle.generate_images(prompts, n_per_prompt=3, seed=0)
    assert images.shape == (6, 64, 64, 3) and images.dtype == np.uint8
    assert np.array_equal(images, dalle.generate_images(prompts, n_per_prompt=3, seed=0))
    assert not np.array_equal(images, dalle.generate_images(prompts, n_per_prompt=3, seed=1))
    with pytest.raises(ValueError, match="unknown word 'dog'"):
        dalle.generate_images(["a red dog"])

    class RedCLIP(nn.Module):                 # prefers red images, whatever the caption
        def encode_image(self, x):
            return torch.stack([x[:, 0].mean((1, 2)), torch.ones(len(x))], 1)

        def encode_text(self, tokens):
            return torch.tensor([[1.0, 0.0]]).expand(len(tokens), 2)

    model = zoo.load_or_train("dalle", device="cpu", verbose=False)
    vq = BlockTokenizer(BlockConfig())
    one = dalle.draw(model, vq, prompts, n_per_prompt=2, seed=5)
    best = dalle.draw(model, vq, prompts, n_per_prompt=2, seed=5, sampling=Sampling(candidates=6),
                      clip=RedCLIP())
    assert best.shape == one.shape == (4, 3, 64, 64)
    # the same 6 candidates per image, drawn again: the kept one is the reddest of its group
    pool = dalle.draw(model, vq, prompts, n_per_prompt=12, seed=5)[:, 0].mean((1, 2))
    assert torch.allclose(best[:, 0].mean((1, 2)), pool.view(4, 6).max(1).values)
    with pytest.raises(ValueError, match="needs a CLIP"):
        dalle.draw(model, vq, prompts, sampling=Sampling(candidates=2))


def test_training_stops_when_heldout_loss_stops_improving(cache, block_tokenizer, monkeypatch):
    set_dalle_recipe(monkeypatch, DALLETrain(steps=60, batch_size=16, n_train=64, n_val=16,
                                             lr=0.0, eval_every=10, patience=2, log_every=10,
                                             tokenizer="blocks"), dim=16)
    m = zoo.load_or_train("dalle", device="cpu", verbose=False).metrics
    assert m["curve_step"] == [10, 20, 30]         # lr 0: no improvement after the first check
    assert m["best_step"] == 10
    assert m["stopped_early"] and m["steps_done"] == 30      # really stopped: no faked steps


def test_recipes_match_the_image_tokenizer():
    for preset in ("smoke", "cpu", "full"):
        r = presets.recipe("dalle", preset)
        vq = zoo.spec(r.train.tokenizer).build(presets.recipe(r.train.tokenizer, preset).model)
        assert (r.model.num_codes, r.model.grid) == (vq.num_codes, vq.grid), preset


def test_the_tokenizer_follows_the_asked_preset(cache, monkeypatch):
    # MINIT2I_PRESET says cpu; a smoke DALL-E must still use (and train) the smoke tokenizer
    monkeypatch.setenv("MINIT2I_PRESET", "cpu")
    smoke = presets.recipe("dalle", "smoke")
    short = presets.Recipe(smoke.model, smoke.train.replace(steps=5, eval_every=5, n_judge=0))
    monkeypatch.setitem(presets.RECIPES, "dalle", {**presets.RECIPES["dalle"], "smoke": short})
    zoo.load_or_train("dalle", "smoke", device="cpu", verbose=False)
    tokenizer = presets.recipe("dalle", "smoke").train.tokenizer
    assert zoo.checkpoint_path(tokenizer, "smoke").exists()
    assert not zoo.checkpoint_path(tokenizer, "cpu").exists()


@pytest.mark.slow
def test_generate_images_with_the_real_zoo_in_smoke(cache):
    images = dalle.generate_images(["a red circle", "a blue square above a green cross"],
                                   n_per_prompt=2, seed=0, preset="smoke")
    assert images.shape == (4, 64, 64, 3) and images.dtype == np.uint8
    again = dalle.generate_images(["a red circle", "a blue square above a green cross"],
                                  n_per_prompt=2, seed=0, preset="smoke")
    assert np.array_equal(images, again)


# ---------------------------------------------------------------------------------------------
# Classifier-free guidance
# ---------------------------------------------------------------------------------------------

def test_the_empty_caption_has_no_text_loss():
    model = tiny(torch.float32)
    empty = model.empty_text(3)
    assert empty[:, 0].eq(Tokenizer().bos_id).all() and empty[:, 1:].eq(0).all()
    assert Tokenizer().decode(empty[0]) == ""
    codes = torch.randint(0, 16, (3, 4, 4))
    out = model.loss(torch.cat([Tokenizer().encode_batch(CAPTIONS[:1]), empty[:2]]), codes)
    only = model.loss(Tokenizer().encode_batch(CAPTIONS[:1]), codes[:1])
    torch.testing.assert_close(out["text_loss"], only["text_loss"])   # the empty ones add none


def test_guided_logits_formula():
    c, u = torch.tensor([[2.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    torch.testing.assert_close(guided_logits(c, u, 1.0), c)
    torch.testing.assert_close(guided_logits(c, u, 0.0), u)
    torch.testing.assert_close(guided_logits(c, u, 3.0), torch.tensor([[4.0, -2.0]]))


def test_plausibility_keeps_only_codes_the_caption_finds_likely():
    # code 2 is 100x likelier with the caption than without, but still unlikely: guidance at
    # s = 3 would make it the favourite; the constraint removes it and changes nothing else
    cond = torch.log(torch.tensor([[0.6, 0.398, 0.002]]))
    uncond = torch.log(torch.tensor([[0.5, 0.49998, 0.00002]]))
    plain = guided_logits(cond, uncond, 3.0)
    assert plain.argmax() == 2
    kept = guided_logits(cond, uncond, 3.0, plausible=0.1)
    assert torch.isinf(kept[0, 2]) and kept.argmax() == 0
    torch.testing.assert_close(kept[0, :2], plain[0, :2])
    torch.testing.assert_close(guided_logits(cond, uncond, 3.0, plausible=0.001), plain)


def test_guidance_one_is_plain_sampling_and_zero_the_caption_free_model():
    model = tiny(torch.float64).eval()
    text, _ = text_and_codes()
    for temperature in (0.0, 1.0):
        g1, g2 = (torch.Generator().manual_seed(3) for _ in range(2))
        plain = sample_codes(model, text, temperature, generator=g1)
        assert torch.equal(sample_codes(model, text, temperature, generator=g2, guidance=1.0),
                           plain)
    free = sample_codes(model, model.empty_text(len(text)), 0.0)
    assert torch.equal(sample_codes(model, text, 0.0, guidance=0.0), free)


def test_guided_sampling_with_and_without_the_cache_agree_and_reproduce():
    model = tiny(torch.float64).eval()
    text, _ = text_and_codes()
    runs = [sample_codes(model, text, 1.0, top_k=5, generator=torch.Generator().manual_seed(7),
                         guidance=2.5, use_cache=cache) for cache in (True, False, True)]
    assert torch.equal(runs[0], runs[1]) and torch.equal(runs[0], runs[2])


@pytest.mark.parametrize("bad, message", [
    (dict(temperature=-0.5), "temperature must be >= 0"),
    (dict(top_k=0), "top_k must be a positive integer or None"),
    (dict(guidance=-1.0), "guidance must be >= 0"),
    (dict(candidates=0), "candidates must be a positive integer"),
    (dict(plausible=1.0), "plausible must be in \\[0, 1\\)"),
    (dict(temprature=1.0), "Sampling has no setting 'temprature' \\(did you mean 'temperature'"),
])
def test_sampling_settings_reject_bad_values(bad, message):
    with pytest.raises(ValueError, match=message):
        Sampling(**bad)


@pytest.mark.parametrize("bad, message", [
    (dict(caption_dropout=1.0), "caption_dropout must be in \\[0, 1\\)"),
    (dict(eval_every=30, log_every=25), "must be a multiple of log_every"),
])
def test_training_settings_reject_bad_values(bad, message):
    with pytest.raises(ValueError, match=message):
        DALLETrain(steps=10, batch_size=4, n_train=8, **bad)
