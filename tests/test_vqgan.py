"""VQGAN: the adaptive weight against its formula, the patch discriminator, training steps."""

import pytest
import torch

from minit2i.data import ShapesDataset
from minit2i.gan import generator_loss
from minit2i.presets import recipe
from minit2i.shapes import to_float_image
from minit2i.vq import VQVAE, VQVAEConfig
from minit2i.vqgan import (
    PatchDiscriminator,
    VQGANTrain,
    adaptive_weight,
    last_layer,
    make_vqgan_step,
    sharpness,
)


def small_model():
    torch.manual_seed(0)
    return VQVAE(VQVAEConfig(channels=8, num_codes=32, code_dim=4))


def test_patch_discriminator_gives_one_logit_per_patch():
    d = PatchDiscriminator(channels=8, n_layers=3)
    assert d(torch.randn(2, 3, 64, 64)).shape == (2, 1, 8, 8)
    assert d(torch.randn(1, 3, 32, 32)).shape == (1, 1, 4, 4)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        d(torch.randn(2, 1, 64, 64))


def test_adaptive_weight_matches_its_formula():
    model, disc = small_model(), PatchDiscriminator(8)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    recon = model(x)["recon"]
    rec = (recon - x).abs().mean()
    gan = generator_loss(disc(recon).reshape(-1), "hinge")
    layer = last_layer(model)
    lam = adaptive_weight(rec, gan, layer, delta=1e-4)
    lam_scaled = adaptive_weight(rec, gan, layer, delta=1e-4, loss_scale=2.0 ** 16)
    # By hand: backpropagate each loss alone and read the last layer's gradient.
    model.zero_grad()
    rec.backward(retain_graph=True)
    g_rec = layer.grad.clone()
    model.zero_grad()
    gan.backward()
    g_gan = layer.grad.clone()
    expected = g_rec.norm() / (g_gan.norm() + 1e-4)
    torch.testing.assert_close(lam, expected)
    assert not lam.requires_grad and lam > 0
    torch.testing.assert_close(lam_scaled, expected)   # the fp16 loss scale: same ratio


def test_adaptive_weight_is_clamped():
    w = torch.ones(3, requires_grad=True)
    lam = adaptive_weight((w * 5).sum(), (w * 0).sum() + 0 * w.sum(), w, max_weight=100.0)
    assert lam.item() == 100.0


def test_sharpness_drops_with_blur():
    x = torch.zeros(1, 3, 16, 16)
    x[..., 4:12, 4:12] = 1
    blurred = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1)
    assert sharpness(blurred) < sharpness(x)
    assert sharpness(torch.zeros(1, 3, 8, 8)).item() == 0


@pytest.mark.parametrize("adaptive", [True, False])
def test_training_steps_before_and_after_the_discriminator_starts(adaptive):
    model, disc = small_model(), PatchDiscriminator(8)
    r = VQGANTrain(steps=4, batch_size=4, n_train=4, lr=1e-3, warmup=1, disc_start=2,
                   disc_weight=0.5, restart_every=100, adaptive=adaptive)
    step = make_vqgan_step(model, disc, r, torch.device("cpu"))
    x = torch.rand(4, 3, 64, 64) * 2 - 1
    d_before = [p.clone() for p in disc.parameters()]
    first = step(x, 0)
    assert first["g"] == 0 and first["d"] == 0 and first["lambda"] == 0
    assert all(torch.equal(a, b) for a, b in zip(d_before, disc.parameters()))
    later = step(x, 2)
    assert later["d"] > 0 and later["lambda"] > 0
    assert any(not torch.equal(a, b) for a, b in zip(d_before, disc.parameters()))


def test_discriminator_warms_up_before_the_generator_hears_it():
    model, disc = small_model(), PatchDiscriminator(8)
    r = VQGANTrain(steps=6, batch_size=4, n_train=4, lr=1e-3, warmup=1, disc_start=1,
                   disc_warmup=2, disc_weight=0.5, restart_every=100, fg_weight=9.0)
    step = make_vqgan_step(model, disc, r, torch.device("cpu"))
    x = torch.rand(4, 3, 64, 64) * 2 - 1
    assert step(x, 0)["d"] == 0                                 # before disc_start: nothing
    for i in (1, 2):                                            # warm-up: D learns, G is deaf
        out = step(x, i)
        assert out["d"] > 0 and out["g"] == 0 and out["lambda"] == 0
    out = step(x, 3)                                            # then the adversarial term
    assert out["d"] > 0 and out["lambda"] > 0


def test_overfits_one_batch():
    model, disc = small_model(), PatchDiscriminator(8)
    r = VQGANTrain(steps=80, batch_size=8, n_train=8, lr=2e-3, warmup=1, disc_start=60,
                   disc_weight=0.1, restart_every=1000)
    step = make_vqgan_step(model, disc, r, torch.device("cpu"))
    x = to_float_image(ShapesDataset("train", 8).tensors()[0])
    losses = [step(x, i)["l1"].item() for i in range(80)]
    assert losses[-1] < 0.5 * losses[0]


def test_train_or_load_vqgan_in_smoke(cache):
    from minit2i.zoo import load_or_train
    model = load_or_train("vqgan", "smoke", device="cpu", verbose=False)
    assert {"psnr", "usage", "perplexity", "sharpness"} <= set(model.metrics)
    assert model.encode(torch.zeros(1, 3, 64, 64)).shape == (1, 8, 8)


def test_vqgan_starts_from_the_trained_vqvae(cache, monkeypatch):
    from minit2i import vqgan
    from minit2i.train import History
    from minit2i.zoo import checkpoint_path, load_or_train

    vqvae = load_or_train("vqvae", "smoke", device="cpu", verbose=False)
    start = {}

    def no_training(step, batches, steps, **kw):      # record the weights fine-tuning starts from
        start.update({k: v.clone() for k, v in step.upkeep.model.state_dict().items()})
        return History()

    monkeypatch.setattr(vqgan, "fit", no_training)
    model = VQVAE(recipe("vqgan", "smoke").model)
    vqgan.train_vqgan(model, recipe("vqgan", "smoke").train, torch.device("cpu"), "smoke",
                      progress=False)
    assert start and start.keys() == vqvae.state_dict().keys()
    for k, v in vqvae.state_dict().items():
        assert torch.equal(start[k], v), k
    assert checkpoint_path("vqvae", "smoke").exists()
    other = VQVAE(VQVAEConfig(channels=8, num_codes=64))
    with pytest.raises(ValueError, match="must match"):
        vqgan.train_vqgan(other, recipe("vqgan", "smoke").train, torch.device("cpu"), "smoke",
                          progress=False)
