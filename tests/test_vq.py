"""Vector quantization against brute force, the straight-through gradient, the loss terms'
weights, EMA updates, the collapse cures, and the VQ-VAE."""

import pytest
import torch
from helpers import assert_matches_reference

from minit2i.vq import (
    VQVAE,
    EMAVectorQuantizer,
    VectorQuantizer,
    VQVAEConfig,
    kmeans_init,
    perplexity,
    psnr,
    quantize,
    reconstruction_loss,
    restart_dead_codes,
    vq_loss,
)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(7, 4), (2, 3, 5, 4), (1, 4)])
def test_quantize_matches_brute_force(dtype, shape):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(*shape, generator=g, dtype=dtype, requires_grad=True)
    codebook = torch.randn(11, 4, generator=g, dtype=dtype)

    class StraightThrough(torch.autograd.Function):    # value codebook[idx], gradient identity
        @staticmethod
        def forward(ctx, z, e):
            return e.clone()

        @staticmethod
        def backward(ctx, grad):
            return grad, None

    def reference(z):                                   # brute-force nearest code by cdist
        idx = torch.cdist(z.detach().reshape(-1, 4), codebook).argmin(1).reshape(z.shape[:-1])
        return StraightThrough.apply(z, codebook[idx]), idx

    assert_matches_reference(lambda z: quantize(z, codebook), reference, z)
    z_q, idx = quantize(z, codebook)
    torch.testing.assert_close(z_q, codebook[idx])


def test_straight_through_gradient_is_identity():
    z = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    codebook = torch.randn(4, 3, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda z: quantize(z, codebook)[0], z)
    torch.testing.assert_close(jac.reshape(15, 15), torch.eye(15, dtype=torch.float64))


def test_beta_weighs_the_commitment_term():
    z = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    e = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    beta, n = 0.25, z.numel()
    vq_loss(z, e, beta).backward()
    # encoder: beta * 2 (z - e) / N ; codebook: 2 (e - z) / N
    torch.testing.assert_close(z.grad, beta * 2 * (z - e).detach() / n)
    torch.testing.assert_close(e.grad, 2 * (e - z).detach() / n)


def test_vector_quantizer_outputs():
    vq = VectorQuantizer(16, 4)
    z = torch.randn(2, 4, 3, 5)
    z_q, idx, loss, ppl = vq(z)
    assert z_q.shape == z.shape and idx.shape == (2, 3, 5) and loss.ndim == 0
    assert 1 <= ppl <= 16
    with pytest.raises(ValueError, match=r"\(B, 4, H, W\)"):
        vq(torch.randn(2, 3, 3, 5))
    with pytest.raises(ValueError, match="share D"):
        quantize(torch.randn(3, 4), torch.randn(5, 3))


def test_perplexity_of_uniform_and_single_code_usage():
    assert perplexity(torch.arange(8), 8).item() == pytest.approx(8, rel=1e-4)
    assert perplexity(torch.zeros(10, dtype=torch.long), 8).item() == pytest.approx(1, rel=1e-4)


def test_ema_update_matches_hand_computation():
    vq = EMAVectorQuantizer(2, 1, decay=0.5)
    vq.codebook.data = torch.tensor([[0.0], [10.0]])
    vq.ema_sum.copy_(vq.codebook)
    vq.ema_count.fill_(1.0)
    z = torch.tensor([[1.0], [3.0], [9.0]])
    vq.ema_update(z, torch.tensor([0, 0, 1]))
    # counts: 0.5*1 + 0.5*2 = 1.5 and 0.5*1 + 0.5*1 = 1; sums: 0.5*0 + 0.5*4 = 2, 0.5*10 + 0.5*9
    count = torch.tensor([1.5, 1.0])
    smoothed = (count + 1e-5) / (count.sum() + 2e-5) * count.sum()
    torch.testing.assert_close(vq.codebook[:, 0], torch.tensor([2.0, 9.5]) / smoothed)
    assert not vq.codebook.requires_grad


def test_dead_codes_restart_on_encoder_outputs():
    vq = VectorQuantizer(4, 2)
    z = torch.randn(50, 2) + 100              # far from every code: all but one code are dead
    usage = torch.bincount(quantize(z, vq.codebook)[1], minlength=4)
    assert restart_dead_codes(vq, z, usage) == int((usage == 0).sum())
    assert torch.bincount(quantize(z, vq.codebook)[1], minlength=4).gt(0).sum() > 1


def test_kmeans_init_finds_clusters():
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    z = (centres[:, None] + 0.1 * torch.randn(3, 40, 2)).reshape(-1, 2)
    vq = VectorQuantizer(3, 2)
    kmeans_init(vq, z, iters=20)
    dist = torch.cdist(centres, vq.codebook.detach()).min(1).values
    assert dist.max() < 0.5


def test_vqvae_shapes_and_round_trip():
    model = VQVAE(VQVAEConfig(channels=8, num_codes=32, code_dim=4)).eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    out = model(x)
    assert out["recon"].shape == x.shape and out["indices"].shape == (2, 8, 8)
    assert model.grid == 8 and model.num_codes == 32
    idx = model.encode(x)
    assert torch.equal(idx, out["indices"])
    z_q = model.quantizer(model.encoder(x))[0]
    torch.testing.assert_close(model.decode_indices(idx), model.decoder(z_q))
    with pytest.raises(ValueError, match=r"\(B, 3, 64, 64\)"):
        model(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="token ids"):
        model.decode_indices(torch.full((1, 8, 8), 32))


def test_vqvae_widths_follow_channel_mults():
    model = VQVAE(VQVAEConfig(channels=8, channel_mults=(1, 1, 4, 8), num_codes=32, code_dim=4))
    convs = [m for m in model.encoder if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs[:4]] == [8, 8, 32, 64]     # 64, 32, 16, 8 pixels
    assert model.decoder[0].out_channels == 64 and model.decoder[-1].in_channels == 8
    assert VQVAEConfig(channels=16).widths == [16, 16, 32, 32]        # the default layout
    assert model(torch.rand(1, 3, 64, 64) * 2 - 1)["recon"].shape == (1, 3, 64, 64)
    with pytest.raises(ValueError, match="one multiple per resolution"):
        VQVAEConfig(channels=8, channel_mults=(1, 2, 4))
    with pytest.raises(ValueError, match="multiple of 8"):
        VQVAEConfig(channels=12, channel_mults=(1, 1, 2, 2))


def test_vqvae_overfits_one_batch():
    torch.manual_seed(0)
    from minit2i.data import ShapesDataset
    images, _, _ = ShapesDataset("train", 8, 64).tensors()
    x = images.float() / 127.5 - 1
    model = VQVAE(VQVAEConfig(channels=16, num_codes=64, code_dim=8))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    first = None
    for _ in range(60):
        out = model(x)
        loss = torch.nn.functional.mse_loss(out["recon"], x) + out["vq_loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.3 * first


def test_psnr():
    x = torch.zeros(2, 3, 4, 4)
    expected = 10 * torch.log10(torch.tensor(4 / 0.04)).item()
    assert psnr(x, x + 0.2)[0].item() == pytest.approx(expected)


def test_reconstruction_loss_weights_pixels_near_objects():
    x = -torch.ones(2, 3, 16, 16, dtype=torch.float64)
    x[:, 0, 6:9, 6:9] = 0.8                                     # a small red object
    recon = x + 0.1 * torch.randn_like(x)
    # no weight: exactly the mean squared error, values and gradients
    r1 = recon.clone().requires_grad_(True)
    r2 = recon.clone().requires_grad_(True)
    reconstruction_loss(r1, x).backward()
    torch.nn.functional.mse_loss(r2, x).backward()
    torch.testing.assert_close(r1.grad, r2.grad)
    # with a weight: the hand-written formula, and the same error counts more near the object
    w = torch.ones(2, 1, 16, 16, dtype=torch.float64)
    w[:, :, 4:11, 4:11] += 9                                   # the object dilated by 2 pixels
    expected = (w * (recon - x) ** 2).mean() / w.mean()
    torch.testing.assert_close(reconstruction_loss(recon, x, 9.0), expected)
    near, far = x.clone(), x.clone()
    near[:, :, 7, 7] += 0.5
    far[:, :, 0, 0] += 0.5
    assert reconstruction_loss(near, x, 9.0) > 5 * reconstruction_loss(far, x, 9.0)
    # kind="l1": F.l1_loss without a weight, the same weighting with one
    r3 = recon.clone().requires_grad_(True)
    r4 = recon.clone().requires_grad_(True)
    reconstruction_loss(r3, x, kind="l1").backward()
    torch.nn.functional.l1_loss(r4, x).backward()
    torch.testing.assert_close(r3.grad, r4.grad)
    torch.testing.assert_close(reconstruction_loss(recon, x, 9.0, kind="l1"),
                               (w * (recon - x).abs()).mean() / w.mean())
    with pytest.raises(ValueError, match="one shape"):
        reconstruction_loss(recon[:, :, :8], x)
    with pytest.raises(ValueError, match="'mse' or 'l1'"):
        reconstruction_loss(recon, x, kind="l2")


def test_train_or_load_vqvae_in_smoke(cache):
    from minit2i.zoo import load_or_train
    model = load_or_train("vqvae", "smoke", device="cpu", verbose=False)
    assert {"psnr", "usage", "perplexity"} <= set(model.metrics)
    again = load_or_train("vqvae", "smoke", device="cpu", verbose=False)
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("amp", [torch.bfloat16, torch.float16])
def test_quantize_picks_the_fp32_codes_under_autocast(amp):
    # 16,384 vectors between 512 codes: half-precision distances pick another code for 1.2 %
    # (bf16) and 0.1 % (fp16) of them, which is what this test catches
    g = torch.Generator().manual_seed(0)
    codebook = torch.randn(512, 16, generator=g)
    z = 2 * torch.randn(16384, 16, generator=g)
    zmap = z.reshape(1, 128, 128, 16).permute(0, 3, 1, 2).contiguous()     # (1, D, H, W)
    expected = quantize(z, codebook)[1]
    vq = VectorQuantizer(512, 16)
    vq.codebook.data.copy_(codebook)
    with torch.autocast("cpu", dtype=amp):
        assert (z @ codebook.T).dtype == amp                # autocast is really on
        _, idx = quantize(z, codebook)
        _, idx_map, loss, _ = vq(zmap)
    assert torch.equal(idx, expected)
    assert torch.equal(idx_map.reshape(-1), expected)
    assert loss.dtype == torch.float32


def test_ema_stays_finite_under_fp16_autocast():
    # 16,384 vectors on one code: the EMA sum of the background code overflowed fp16 before
    vq = EMAVectorQuantizer(8, 4, decay=0.9)
    z = torch.full((1, 4, 128, 128), 300.0)
    with torch.autocast("cpu", dtype=torch.float16):
        vq(z)
    assert torch.isfinite(vq.codebook).all() and torch.isfinite(vq.ema_sum).all()
    assert vq.codebook.dtype == torch.float32


def test_a_float64_quantizer_works():
    vq = EMAVectorQuantizer(8, 4).double()
    z = torch.randn(2, 4, 3, 3, dtype=torch.float64)
    z_q, idx, loss, _ = vq(z)
    assert z_q.dtype == torch.float64 and loss.dtype == torch.float64
    model = VQVAE(VQVAEConfig(channels=8, num_codes=16)).double()
    assert model.encode(torch.zeros(1, 3, 64, 64, dtype=torch.float64)).shape == (1, 8, 8)
