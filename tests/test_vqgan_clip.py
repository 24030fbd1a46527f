"""Tests of chapter 7's VQGAN+CLIP: the spherical distance, cutouts, the optimisation."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import assert_matches_reference
from torch import nn

from minit2i.clip import CLIP, CLIPConfig
from minit2i.text import Tokenizer
from minit2i.vqgan_clip import (
    background_latent,
    cutouts,
    decode_latent,
    generate_images,
    optimise,
    random_latent,
    spherical_distance,
)


def angle_formula(x, y):
    cos = (F.normalize(x, dim=-1) * F.normalize(y, dim=-1)).sum(-1)
    return torch.arccos(cos).pow(2) / 2                     # theta^2 / 2


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_spherical_distance_matches_formula(dtype):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 7, generator=g, dtype=dtype).requires_grad_()
    y = (3 * torch.randn(5, 7, generator=g, dtype=dtype)).requires_grad_()   # not unit length
    assert_matches_reference(spherical_distance, angle_formula, x, y)
    v = torch.randn(3, 4, dtype=dtype)
    torch.testing.assert_close(spherical_distance(v, 2 * v), torch.zeros(3, dtype=dtype),
                               atol=1e-6, rtol=0)
    opposite = spherical_distance(v, -v)           # arcsin is steep at 1: float32 loses digits
    torch.testing.assert_close(opposite, torch.full((3,), torch.pi ** 2 / 2, dtype=dtype),
                               atol=1e-2 if dtype == torch.float32 else 1e-6, rtol=0)
    with pytest.raises(ValueError, match="last"):
        spherical_distance(torch.randn(2, 3), torch.randn(2, 4))


def test_cutouts_shapes_and_identity():
    images = torch.rand(3, 3, 64, 64) * 2 - 1
    views = cutouts(images, 5, generator=torch.Generator().manual_seed(0))
    assert views.shape == (15, 3, 64, 64)
    # with full-size crops and no noise every view is its image, in order
    same = cutouts(images, 2, min_scale=1.0, noise=0.0)
    torch.testing.assert_close(same, images.repeat_interleave(2, dim=0), atol=1e-5, rtol=0)
    # differentiable, and seeded
    x = images.clone().requires_grad_()
    cutouts(x, 4, generator=torch.Generator().manual_seed(1)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    a = cutouts(images, 4, generator=torch.Generator().manual_seed(2))
    b = cutouts(images, 4, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="B, 3, H, W"):
        cutouts(images[0], 2)


class TinyVQ(nn.Module):
    """A stand-in with the VQVAE interface: encoder, quantizer (codebook), decoder, grid."""

    def __init__(self, K=16, D=8):
        super().__init__()
        self.grid = 8
        self.encoder = nn.Conv2d(3, D, 8, stride=8)

        class Quantizer(nn.Module):
            def __init__(self):
                super().__init__()
                self.codebook = nn.Parameter(torch.randn(K, D))

            def forward(self, z):
                flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
                idx = torch.cdist(flat, self.codebook).argmin(1)
                z_q = self.codebook[idx].view(z.shape[0], z.shape[2], z.shape[3], -1)
                return z_q.permute(0, 3, 1, 2), idx, None, None

        self.quantizer = Quantizer()
        self.decoder = nn.Sequential(nn.ConvTranspose2d(D, 16, 8, stride=8), nn.Tanh(),
                                     nn.Conv2d(16, 3, 3, padding=1))
        self.config = SimpleNamespace(image_size=64)

    def encode(self, x):
        z = self.encoder(x)
        return self.quantizer(z)[1].view(len(x), z.shape[2], z.shape[3])


def tiny_search_models(prompts):
    """A TinyVQ, an untrained small CLIP and the prompts' text features, seeded."""
    torch.manual_seed(0)
    vq = TinyVQ()
    clip = CLIP(CLIPConfig(embed_dim=16, text_dim=16, text_depth=1, text_heads=2,
                           image_width=8)).eval()
    with torch.no_grad():
        text = clip.encode_text(Tokenizer().encode_batch(prompts))
    return vq, clip, text


def test_decode_latent_is_straight_through():
    torch.manual_seed(0)
    vq = TinyVQ()
    z = random_latent(vq, 2, torch.Generator().manual_seed(0))
    assert z.shape == (2, 8, 8, 8)
    z = (z + 0.01 * torch.randn_like(z)).requires_grad_()
    x = decode_latent(vq, z)
    assert x.shape == (2, 3, 64, 64) and x.min() >= -1 and x.max() <= 1
    # forward: the image of the nearest codes
    torch.testing.assert_close(x, vq.decoder(vq.quantizer(z)[0]).clamp(-1, 1))
    x.sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_smoke_optimisation_lowers_the_loss():
    vq, clip, text = tiny_search_models(["a red circle", "a blue square"])
    g = torch.Generator().manual_seed(0)
    z0 = random_latent(vq, 2, g)
    with torch.no_grad():
        before = spherical_distance(clip.encode_image(decode_latent(vq, z0)), text)
    out = optimise(vq, clip, text, z0, steps=40, lr=0.2, n_cutouts=4, generator=g,
                   record_every=10)
    assert out["images"].shape == (2, 3, 64, 64)
    assert (out["loss"] < before).all()
    assert [s for s, _ in out["frames"]] == [0, 10, 20, 30, 40]
    cb = vq.quantizer.codebook
    assert all(p.grad is None for p in vq.parameters())       # only z moved
    assert cb.requires_grad is False
    with pytest.raises(ValueError, match="one text embedding per latent"):
        optimise(vq, clip, text[:1], z0, steps=1)


@pytest.mark.slow
def test_generate_images_smoke(cache):
    prompts = ["a large red circle in the center", "a small blue square on the left"]
    images = generate_images(prompts, seed=0, steps=3, preset="smoke")
    assert isinstance(images, np.ndarray) and images.dtype == np.uint8
    assert images.shape == (2, 64, 64, 3)
    again = generate_images(prompts, seed=0, steps=3, preset="smoke")
    assert np.array_equal(images, again)
    with pytest.raises(ValueError, match="unknown word"):
        generate_images(["a red dog"], preset="smoke")
    with pytest.raises(ValueError, match="SearchSettings has no setting 'stepz'"):
        generate_images(prompts, preset="smoke", stepz=3)


def test_the_background_prior_pulls_the_latent_towards_an_empty_canvas():
    vq, clip, text = tiny_search_models(["a red circle", "a blue square"])
    empty = background_latent(vq)
    assert empty.shape == (vq.quantizer.codebook.shape[1],)

    with torch.no_grad():
        canvas = decode_latent(vq, empty.view(1, -1, 1, 1).expand(1, -1, 8, 8))

    def distance_to_empty(prior):
        g = torch.Generator().manual_seed(0)
        out = optimise(vq, clip, text, random_latent(vq, 2, g), steps=30, lr=0.2, n_cutouts=2,
                       generator=g, prior=prior)
        # the fraction of pixels drawn as the empty canvas draws them
        return ((out["images"] - canvas).abs().amax(1) < 1e-4).float().mean()

    none, strong = distance_to_empty(0.0), distance_to_empty(50.0)
    assert strong > none and strong > 0.9          # almost every position is background again
    with pytest.raises(ValueError, match="prior is a weight >= 0"):
        optimise(vq, clip, text, random_latent(vq, 2), steps=1, prior=-1.0)


def test_a_search_in_chunks_equals_one_in_a_single_batch():
    # chunks of one, two (2 + 1) and all three images give the same images and losses: the
    # random views are drawn for the whole batch each step, each latent sees only its own loss
    vq, clip, text = tiny_search_models(["a red circle", "a blue square", "a green cross"])

    def run(max_views, augment=True):
        g = torch.Generator().manual_seed(0)
        z0 = random_latent(vq, 3, g)
        return optimise(vq, clip, text, z0, steps=5, lr=0.2, n_cutouts=4, augment=augment,
                        generator=g, record_every=2, max_views=max_views)

    whole = run(12)
    for max_views in (4, 8, 1):                       # 1 < 4 cutouts: still one image a chunk
        part = run(max_views)
        torch.testing.assert_close(part["images"], whole["images"], atol=1e-6, rtol=0)
        torch.testing.assert_close(part["loss"], whole["loss"], atol=1e-6, rtol=0)
        assert part["losses"] == pytest.approx(whole["losses"], abs=1e-6)
        assert [s for s, _ in part["frames"]] == [s for s, _ in whole["frames"]]
    torch.testing.assert_close(run(1, augment=False)["images"], run(3, augment=False)["images"],
                               atol=1e-6, rtol=0)


def test_chunk_size_keeps_whole_images_under_the_bound():
    from minit2i.vqgan_clip import MAX_VIEWS, chunk_size
    assert chunk_size(16) * 16 <= MAX_VIEWS and chunk_size(16) == MAX_VIEWS // 16
    assert chunk_size(MAX_VIEWS * 2) == 1 and chunk_size(4, max_views=10) == 2


def test_the_dalle_prior_pulls_the_latent_towards_the_codes_the_dalle_expects():
    from minit2i.dalle import DALLEConfig, MiniDALLE
    from minit2i.vqgan_clip import SearchSettings, expected_codes

    vq, clip, text = tiny_search_models(["a red circle", "a blue square"])
    torch.manual_seed(1)
    dalle = MiniDALLE(DALLEConfig(num_codes=16, grid=8, dim=16, depth=1, n_heads=2)).eval()
    with torch.no_grad():                  # a prior that puts nearly all its mass on code 3
        dalle.head.bias[dalle.config.text_vocab + 3] = 30.0
    cb = vq.quantizer.codebook.detach()
    codes = torch.randint(16, (2, 8, 8), generator=torch.Generator().manual_seed(0))
    mean = expected_codes(dalle, codes, cb)
    assert mean.shape == (2, 8, 8, 8)
    torch.testing.assert_close(mean, cb[3].view(1, -1, 1, 1).expand(2, -1, 8, 8), atol=1e-4,
                               rtol=0)

    g = torch.Generator().manual_seed(0)
    z0 = random_latent(vq, 2, g)
    plain = optimise(vq, clip, text, z0, steps=5, n_cutouts=2,
                     generator=torch.Generator().manual_seed(0))
    zero = optimise(vq, clip, text, z0, steps=5, n_cutouts=2, dalle_prior=0.0, code_model=dalle,
                    generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(zero["images"], plain["images"])      # weight 0: no prior at all
    strong = optimise(vq, clip, text, z0, steps=30, lr=0.2, n_cutouts=2, dalle_prior=50.0,
                      code_model=dalle, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        canvas = decode_latent(vq, cb[3].view(1, -1, 1, 1).expand(1, -1, 8, 8))
    drawn_as_3 = ((strong["images"] - canvas).abs().amax(1) < 1e-4).float().mean()
    assert drawn_as_3 > 0.9                # almost every position holds the expected code
    with pytest.raises(ValueError, match="dalle_prior is a weight >= 0"):
        optimise(vq, clip, text, z0, steps=1, dalle_prior=-1.0, code_model=dalle)
    with pytest.raises(ValueError, match="needs code_model"):
        optimise(vq, clip, text, z0, steps=1, dalle_prior=1.0)
    other = MiniDALLE(DALLEConfig(num_codes=32, grid=8, dim=16, depth=1, n_heads=2))
    with pytest.raises(ValueError, match="draws 32 codes but the VQGAN has 16"):
        optimise(vq, clip, text, z0, steps=1, dalle_prior=1.0, code_model=other)
    with pytest.raises(ValueError, match="dalle_prior is a weight >= 0"):
        SearchSettings(steps=1, dalle_prior=-0.5)
