"""Tests for minit2i.gan: the GAN losses, R1, the optimal discriminator, the ring metrics and
the Shapes conv GAN."""

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_matches_reference

from minit2i.gan import (
    KINDS,
    GANConfig,
    ShapesGAN,
    discriminator_loss,
    generator_loss,
    make_train_step,
    mlp,
    mode_metrics,
    r1_penalty,
    ring_centers,
    sample_ring,
)

DTYPES = [torch.float32, torch.float64]


def ref_d_loss(real, fake, kind):
    if kind == "hinge":
        return torch.clamp(1 - real, min=0).mean() + torch.clamp(1 + fake, min=0).mean()
    return (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))


def ref_g_loss(fake, kind):
    if kind == "minimax":
        return torch.log(1 - torch.sigmoid(fake)).mean()      # direct formula, fine for |l| < 10
    if kind == "nonsaturating":
        return -torch.log(torch.sigmoid(fake)).mean()
    return -fake.mean()


def logits(shape, dtype, seed, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(shape, generator=g, dtype=dtype)).requires_grad_()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(3))
def test_losses_match_reference(kind, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    b_real, b_fake = torch.randint(1, 20, (2,), generator=g).tolist()
    trail = (1,) if seed % 2 else ()                       # (B,) and (B, 1) both accepted
    real = logits((b_real, *trail), dtype, seed)
    fake = logits((b_fake, *trail), dtype, seed + 100)
    assert_matches_reference(discriminator_loss, ref_d_loss, real, fake, kind)
    assert_matches_reference(generator_loss, ref_g_loss, fake, kind)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_logits_are_finite(kind, dtype):
    real = torch.tensor([100.0, -100.0, 0.0], dtype=dtype, requires_grad=True)
    fake = torch.tensor([-100.0, 100.0, 0.0], dtype=dtype, requires_grad=True)
    loss = discriminator_loss(real, fake, kind) + generator_loss(fake, kind)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(real.grad).all() and torch.isfinite(fake.grad).all()


def test_minimax_saturates_and_nonsaturating_does_not():
    # A confident D (D(G(z)) ~ e^-20): the minimax gradient vanishes, the fix's does not.
    for kind, expected in (("minimax", 0.0), ("nonsaturating", -1.0)):
        fake = torch.tensor([-20.0], dtype=torch.float64, requires_grad=True)
        generator_loss(fake, kind).backward()
        assert math.isclose(fake.grad.item(), expected, abs_tol=1e-6), (kind, fake.grad)


def test_d_loss_at_chance_is_log4():
    zeros = torch.zeros(5)
    loss = discriminator_loss(zeros, zeros, "minimax").item()
    assert math.isclose(loss, math.log(4), rel_tol=1e-6)


def test_bad_kind_and_shapes_raise():
    x = torch.zeros(4)
    with pytest.raises(ValueError, match="minimax, nonsaturating, hinge"):
        generator_loss(x, "wasserstein")
    with pytest.raises(ValueError, match="minimax, nonsaturating, hinge"):
        discriminator_loss(x, x, "lsgan")
    with pytest.raises(ValueError, match=r"both be \(B,\) or both \(B, 1\)"):
        discriminator_loss(torch.zeros(4, 1), torch.zeros(4))
    with pytest.raises(ValueError, match="one logit per sample"):
        generator_loss(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="one logit per sample"):
        discriminator_loss(torch.zeros(2, 1, 4, 4), torch.zeros(2, 1, 4, 4))


def ref_r1(net, gamma):
    def f(x):
        (grad,) = torch.autograd.grad(net(x).sum(), x, create_graph=True)
        return gamma / 2 * (grad**2).reshape(len(x), -1).sum(dim=1).mean()
    return f


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gamma", [1.0, 10.0])
def test_r1_matches_autograd_reference(dtype, gamma):
    torch.manual_seed(0)
    net = mlp(6, 16, 1, depth=2).to(dtype)
    net.requires_grad_(False)                              # compare gradients w.r.t. x only
    x = torch.randn(7, 6, dtype=dtype, requires_grad=True)
    assert_matches_reference(lambda x: r1_penalty(net(x).squeeze(1), x, gamma),
                             ref_r1(net, gamma), x)


def test_r1_linear_and_constant_discriminators():
    w = torch.tensor([3.0, -4.0])
    x = torch.randn(5, 2, requires_grad=True)
    assert math.isclose(r1_penalty(x @ w + 1, x, gamma=2.0).item(), 25.0, rel_tol=1e-6)
    constant = 0 * x.sum(dim=1) + 3.0
    assert r1_penalty(constant, x, gamma=10.0).item() == 0.0
    with pytest.raises(ValueError, match="requires_grad_"):
        r1_penalty(torch.zeros(5), torch.zeros(5, 2))
    with pytest.raises(ValueError, match="samples"):
        r1_penalty((x @ w)[:3], x)


def test_r1_penalises_the_discriminator_through_backward():
    torch.manual_seed(0)
    net = mlp(2, 8, 1, depth=1)
    x = torch.randn(16, 2, requires_grad=True)
    r1_penalty(net(x).squeeze(1), x).backward()
    # Every weight shapes the input gradient (biases after the last ReLU do not).
    for p in (net[0].weight, net[2].weight):
        assert p.grad is not None and p.grad.abs().sum() > 0


def normal_pdf(x, mu, sd):
    return torch.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))


def test_optimal_discriminator_and_jsd():
    x = torch.linspace(-12, 12, 200_001, dtype=torch.float64)
    dx = x[1] - x[0]
    p, q = normal_pdf(x, 0.0, 1.0), normal_pdf(x, 1.5, 0.7)

    def value(d):                                          # V(D) = int p log D + q log(1 - D)
        return float(((p * torch.log(d) + q * torch.log1p(-d)) * dx).sum())

    d_star = p / (p + q)
    d_star = d_star.clamp(1e-300, 1 - 1e-16)
    m = (p + q) / 2
    kl = lambda a, b: float((a * torch.log(a / b) * dx)[a > 1e-300].sum())  # noqa: E731
    jsd = 0.5 * kl(p, m) + 0.5 * kl(q, m)
    assert 0 < jsd < math.log(2)
    assert math.isclose(value(d_star), -math.log(4) + 2 * jsd, rel_tol=1e-6)
    for bump in (torch.sin(x), torch.exp(-x**2), torch.ones_like(x)):   # any other D is worse
        for eps in (0.05, -0.05):
            other = (d_star + eps * bump * d_star * (1 - d_star)).clamp(1e-300, 1 - 1e-16)
            assert value(other) < value(d_star)

    # A discriminator trained with our loss on samples approaches D* (the value from below).
    torch.manual_seed(0)
    net = mlp(1, 32, 1, depth=2)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(400):
        real, fake = torch.randn(512, 1), 1.5 + 0.7 * torch.randn(512, 1)
        loss = discriminator_loss(net(real).squeeze(1), net(fake).squeeze(1), "minimax")
        opt.zero_grad()
        loss.backward()
        opt.step()
    grid = torch.linspace(-2, 3, 101, dtype=torch.float64)
    with torch.no_grad():
        d_net = torch.sigmoid(net(grid[:, None].float()).squeeze(1)).double()
    d_true = normal_pdf(grid, 0, 1) / (normal_pdf(grid, 0, 1) + normal_pdf(grid, 1.5, 0.7))
    assert (d_net - d_true).abs().max() < 0.1
    with torch.no_grad():
        d_full = torch.sigmoid(net(x[:, None].float()).squeeze(1)).double().clamp(1e-12, 1 - 1e-12)
    assert value(d_full) <= value(d_star) + 1e-6
    assert value(d_full) > value(d_star) - 0.02


def test_ring_centers_and_samples():
    c = ring_centers(8, radius=2.0)
    assert c.shape == (8, 2)
    torch.testing.assert_close(c.norm(dim=1), torch.full((8,), 2.0))
    assert torch.cdist(c, c).add(torch.eye(8) * 9).min() > 1.5     # 8 distinct modes
    torch.testing.assert_close(c[0], torch.tensor([2.0, 0.0]))
    x = sample_ring(4000, sigma=0.05, generator=torch.Generator().manual_seed(0))
    m = mode_metrics(x, c, sigma=0.05)
    assert m["modes_covered"] == 8 and m["high_quality"] > 0.98
    torch.testing.assert_close(x, sample_ring(4000, sigma=0.05,
                                              generator=torch.Generator().manual_seed(0)))


def test_mode_metrics_on_hand_made_samples():
    c = ring_centers(8, radius=2.0)
    sigma = 0.1
    # 60 samples on mode 0, 30 on mode 3 (0.2 sigma off), 1 on mode 5, 9 far from every mode.
    samples = torch.cat([c[0].repeat(60, 1), (c[3] + torch.tensor([0.02, 0.0])).repeat(30, 1),
                         c[5][None], torch.zeros(9, 2)])
    m = mode_metrics(samples, c, sigma, min_fraction=0.02)
    assert m["modes_covered"] == 2                             # mode 5 has 1% < 2% of samples
    assert math.isclose(m["high_quality"], 0.91, rel_tol=1e-6)
    assert m["counts"].tolist() == [60, 0, 0, 30, 0, 1, 0, 0]
    assert mode_metrics(samples, c, sigma, min_fraction=0.01)["modes_covered"] == 3
    # 3 sigma is the boundary: a sample 2.9 sigma away counts, one 3.1 sigma away does not.
    near = c[1] + torch.tensor([[2.9 * sigma, 0.0], [0.0, 3.1 * sigma]])
    assert mode_metrics(near, c, sigma)["high_quality"] == 0.5
    with pytest.raises(ValueError, match="samples"):
        mode_metrics(torch.zeros(4, 3), c, sigma)


def test_shapes_gan_shapes_and_config_errors():
    for size in (32, 64):
        gan = ShapesGAN(GANConfig(z_dim=8, width=4, image_size=size)).eval()
        x = gan.sample(3, seed=0)
        assert x.shape == (3, 3, size, size)
        assert x.min() >= -1 and x.max() <= 1
        assert gan.discriminator(x).shape == (3,)
        torch.testing.assert_close(x, gan.sample(3, seed=0))
    with pytest.raises(ValueError, match="power of two"):
        GANConfig(image_size=48)


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_gan_train_step_changes_both_networks(kind):
    torch.manual_seed(0)
    gan = ShapesGAN(GANConfig(z_dim=8, width=8))
    before = {k: v.clone() for k, v in gan.state_dict().items()}
    step = make_train_step(gan.train(), lr=1e-3, kind=kind)
    out = step((torch.rand(4, 3, 32, 32) * 2 - 1,), 0)
    assert all(torch.isfinite(v) for v in out.values())
    after = gan.state_dict()
    for net in ("generator", "discriminator"):
        changed = [k for k in before if k.startswith(net) and before[k].is_floating_point()
                   and not torch.equal(before[k], after[k])]
        assert changed, f"the {net} did not change"


def test_discriminator_overfits_one_batch():
    torch.manual_seed(0)
    gan = ShapesGAN(GANConfig(z_dim=8, width=8))
    real, fake = torch.rand(8, 3, 32, 32) * 2 - 1, gan.sample(8, seed=1)
    opt = torch.optim.Adam(gan.discriminator.parameters(), lr=1e-3)
    for _ in range(60):
        loss = discriminator_loss(gan.discriminator(real), gan.discriminator(fake))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


def test_zoo_trains_and_reloads_shapes_gan(cache):
    from minit2i.zoo import checkpoint_path, load_or_train

    gan = load_or_train("shapes_gan", "smoke", device="cpu", verbose=False)
    assert checkpoint_path("shapes_gan", "smoke").exists()
    assert math.isfinite(gan.metrics["d_loss"]) and len(gan.metrics["curve_d_loss"]) >= 1
    again = load_or_train("shapes_gan", "smoke", device="cpu", verbose=False)
    torch.testing.assert_close(gan.sample(2, seed=0), again.sample(2, seed=0))
    assert gan.sample(2, seed=0).shape == (2, 3, 32, 32)
