"""Tests of chapter 4's CLIP: the loss against its formula, the encoders, training, errors."""

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_matches_reference

from minit2i.clip import (
    ATTRIBUTES,
    CLIP,
    MAX_LOG_SCALE,
    CLIPConfig,
    attribute_prompts,
    clip_loss,
    distinct_scenes,
    make_train_step,
    positive_targets,
    random_crops,
    recall_at_k,
    scene_ids,
    scene_key,
)
from minit2i.data import ShapesDataset
from minit2i.text import Tokenizer
from minit2i.train import param_groups

TINY = CLIPConfig(embed_dim=16, text_dim=16, text_depth=1, text_heads=2, image_width=8)


def features(B, D, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [F.normalize(torch.randn(B, D, generator=g, dtype=dtype), dim=-1).requires_grad_()
            for _ in range(2)]


def reference_loss(img, txt, scale):
    logits = scale * img @ txt.T
    labels = torch.arange(len(img))
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_clip_loss_matches_cross_entropy(dtype):
    img, txt = features(6, 8, dtype)
    scale = torch.tensor(14.0, dtype=dtype, requires_grad=True)
    assert_matches_reference(clip_loss, reference_loss, img, txt, scale)
    # all-distinct scene ids give exactly the standard loss
    groups = torch.tensor([5, 0, 3, 9, 1, 2])
    assert_matches_reference(lambda i, t, s: clip_loss(i, t, s, groups), reference_loss,
                             img, txt, scale)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_duplicates_share_the_target(dtype):
    img, txt = features(5, 8, dtype, seed=1)
    scale = torch.tensor(10.0, dtype=dtype, requires_grad=True)
    groups = torch.tensor([0, 1, 0, 2, 1])
    y = positive_targets(groups)
    assert torch.equal(y[0], torch.tensor([0.5, 0, 0.5, 0, 0]))
    assert torch.equal(y[3], torch.tensor([0.0, 0, 0, 1, 0]))
    assert torch.allclose(y.sum(1), torch.ones(5))

    def reference(i, t, s):             # cross_entropy with probability targets
        logits = s * i @ t.T
        return (F.cross_entropy(logits, y.to(dtype)) + F.cross_entropy(logits.T, y.to(dtype))) / 2

    assert_matches_reference(lambda i, t, s: clip_loss(i, t, s, groups), reference,
                             img, txt, scale)


def test_duplicates_are_not_pushed_apart():
    # Items 0 and 1 show the same scene. Hard targets (arange) prefer embeddings that tell them
    # apart; multi-positive targets prefer the two to share one embedding, as they should.
    a, c, b = torch.eye(8)[:3]
    together, apart = torch.stack([a, a, b]), torch.stack([a, c, b])
    groups = torch.tensor([0, 0, 1])
    assert clip_loss(apart, apart, 50.0) < clip_loss(together, together, 50.0)
    assert clip_loss(together, together, 50.0, groups) < clip_loss(apart, apart, 50.0, groups)
    # at the optimum the loss is the entropy of the targets: rows (1/2, 1/2) twice, (1) once
    assert clip_loss(together, together, 50.0, groups).item() == pytest.approx(
        2 / 3 * math.log(2), abs=1e-4)


def test_clip_loss_errors():
    img, txt = features(4, 8, torch.float32)
    with pytest.raises(ValueError, match="same shape"):
        clip_loss(img, txt[:3], 1.0)
    with pytest.raises(ValueError, match=r"\(B, D\)"):
        clip_loss(img[0], txt[0], 1.0)
    with pytest.raises(ValueError, match="groups"):
        clip_loss(img, txt, 1.0, torch.tensor([0, 1]))


def test_features_normalised_and_shapes():
    torch.manual_seed(0)
    model = CLIP(TINY)
    tokens = Tokenizer().encode_batch(["a red circle", "a small blue square on the left"])
    img, txt = model(torch.rand(2, 3, 64, 64) * 2 - 1, tokens)
    assert img.shape == txt.shape == (2, 16)
    torch.testing.assert_close(img.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(txt.norm(dim=-1), torch.ones(2))
    with pytest.raises(ValueError, match="images of shape"):
        model.encode_image(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="eos"):
        model.encode_text(torch.ones(2, 24, dtype=torch.long))


def test_temperature_init_clamp_and_no_decay():
    model = CLIP(TINY)
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    with torch.no_grad():
        model.logit_scale.fill_(10.0)
    assert model.scale().item() == pytest.approx(100.0)
    groups = param_groups(model, 0.1)
    no_decay = {id(p) for p in groups[1]["params"]}
    assert id(model.logit_scale) in no_decay and groups[1]["weight_decay"] == 0.0
    assert id(model.text.proj.weight) not in no_decay
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    # a training step that pushes t up keeps the parameter itself at ln 100
    step = make_train_step(model, lr=1.0, steps=1, weight_decay=0.0)
    step((torch.zeros(2, 3, 64, 64, dtype=torch.uint8),
          Tokenizer().encode_batch(["a red circle", "a blue square"]), torch.arange(2)), 0)
    assert model.logit_scale.item() <= MAX_LOG_SCALE + 1e-6


def test_random_crops():
    images = torch.rand(4, 3, 64, 64) * 2 - 1
    torch.testing.assert_close(random_crops(images, min_scale=1.0, noise=0.0), images,
                               atol=1e-5, rtol=0)
    views = random_crops(images, generator=torch.Generator().manual_seed(0))
    assert views.shape == images.shape and not torch.allclose(views, images)
    with pytest.raises(ValueError, match="min_scale"):
        random_crops(images, min_scale=0.0)


def test_text_pools_at_eos_and_ignores_padding():
    torch.manual_seed(0)
    model = CLIP(TINY).eval()
    tok = Tokenizer()
    tokens = tok.encode_batch(["a red circle", "a large blue cross at the top"])
    junk = tokens.clone()
    for row in junk:                       # overwrite everything after eos with other words
        eos = int((row == tok.eos_id).nonzero()[0])
        row[eos + 1:] = torch.randint(3, tok.vocab_size, (len(row) - eos - 1,))
    torch.testing.assert_close(model.encode_text(junk), model.encode_text(tokens))
    # but a word before eos does change it
    changed = tokens.clone()
    changed[0, 2] = tok.stoi["blue"]
    assert not torch.allclose(model.encode_text(changed)[0], model.encode_text(tokens)[0])


def test_scene_ids_and_distinct_scenes():
    data = ShapesDataset("train", n=300, n_objects=1)
    ids = scene_ids(data)
    keys = [scene_key(data.scene_and_caption(i)[0]) for i in range(300)]
    for i in range(300):
        for j in range(i + 1, 300, 37):
            assert (ids[i] == ids[j]) == (keys[i] == keys[j])
    assert len(set(keys)) < 300                    # duplicates do happen in Shapes
    images, captions, scenes = distinct_scenes("heldout", 20)
    assert images.shape == (20, 3, 64, 64) and images.dtype == torch.uint8
    assert len({scene_key(s) for s in scenes}) == 20 and len(captions) == 20


def test_recall_and_prompts():
    f = F.normalize(torch.randn(10, 8), dim=-1)
    assert recall_at_k(f, f)["t2i_R@1"] == 1.0
    r = recall_at_k(f, f.roll(1, dims=0))
    assert r["t2i_R@1"] < 1.0 and r["i2t_R@1"] < 1.0
    for attribute, classes in ATTRIBUTES.items():
        assert len(attribute_prompts(attribute)) == len(classes)
    assert all("red" in p for p in attribute_prompts("color")[0])
    with pytest.raises(ValueError, match="unknown attribute"):
        attribute_prompts("texture")


@pytest.mark.slow
def test_overfit_one_batch():
    torch.manual_seed(0)
    images, captions, _ = distinct_scenes("train", 16, n_objects=1)   # one right answer each
    tokens = Tokenizer().encode_batch(captions)
    model = CLIP(TINY)
    step = make_train_step(model, lr=3e-3, steps=300, weight_decay=0.0)
    groups = torch.arange(16)
    first = float(step((images, tokens, groups), 0)["loss"])
    for i in range(1, 300):
        last = float(step((images, tokens, groups), i)["loss"])
    assert last < 0.2 * first
    model.eval()
    img, txt = model(images.float() / 127.5 - 1, tokens)
    r = recall_at_k(img, txt)
    assert r["t2i_R@1"] == 1.0 and r["i2t_R@1"] == 1.0


@pytest.mark.parametrize("with_groups", [False, True])
def test_hard_negatives_join_the_image_to_text_softmax(with_groups):
    g = torch.Generator().manual_seed(0)
    img = F.normalize(torch.randn(5, 8, generator=g, dtype=torch.float64), dim=-1)
    txt = F.normalize(torch.randn(5, 8, generator=g, dtype=torch.float64), dim=-1)
    neg = F.normalize(torch.randn(3, 8, generator=g, dtype=torch.float64), dim=-1)
    groups = torch.tensor([0, 1, 1, 2, 3]) if with_groups else None
    img.requires_grad_(True)

    def reference(img):
        s = 10.0
        y = (torch.eye(5, dtype=torch.float64) if groups is None else
             (groups[:, None] == groups[None]).double() / (groups[:, None] == groups[None]).sum(1,
                                                                                  keepdim=True))
        i2t = torch.cat([s * img @ txt.T, s * img @ neg.T], 1)                  # (5, 8)
        loss_i = -(torch.cat([y, torch.zeros(5, 3, dtype=torch.float64)], 1)
                   * torch.log_softmax(i2t, 1)).sum(1).mean()
        loss_t = -(y * torch.log_softmax(s * txt @ img.T, 1)).sum(1).mean()
        return (loss_i + loss_t) / 2

    assert_matches_reference(lambda img: clip_loss(img, txt, 10.0, groups, neg), reference, img)
    assert clip_loss(img, txt, 10.0, groups, neg) > clip_loss(img, txt, 10.0, groups)
    with pytest.raises(ValueError, match=r"negatives of shape \(M, 8\)"):
        clip_loss(img, txt, 10.0, groups, neg[:, :4])


def test_random_crops_from_given_draws_equal_the_generators():
    from minit2i.clip import crop_draws
    images = torch.rand(3, 3, 16, 16) * 2 - 1
    a = random_crops(images, generator=torch.Generator().manual_seed(4))
    draws = crop_draws(images.shape, torch.Generator().manual_seed(4))
    assert torch.equal(random_crops(images, draws=draws), a)
    with pytest.raises(ValueError, match="draws for 2 views"):
        random_crops(images[:2], draws=draws)


def test_through_tokenizer_is_the_tokenizers_reconstruction(cache):
    # CLIPTrain(images_through=...) trains on what a tokenizer makes of the scenes: each image
    # encoded to codes and decoded again, kept as uint8 like the renders it replaces
    from minit2i.clip import through_tokenizer
    from minit2i.shapes import to_float_image, to_uint8_image
    from minit2i.zoo import load_or_train

    images, _, _ = ShapesDataset("train", n=6, seed=3).tensors()
    out = through_tokenizer(images, "vqvae", "smoke", "cpu", batch_size=4)
    vq = load_or_train("vqvae", "smoke", device="cpu", verbose=False).eval()
    with torch.no_grad():
        expected = to_uint8_image(vq.decode_indices(vq.encode(to_float_image(images)))
                                  .clamp(-1, 1))
    assert out.dtype == torch.uint8 and out.shape == images.shape
    assert torch.equal(out, expected)
