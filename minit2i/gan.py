r"""Generative adversarial networks: the losses, the ring of Gaussians, and a small conv GAN.

A generator G maps noise z to samples; a discriminator D(x) = \sigma(\ell(x)) says "real" with
probability D, where \ell is its logit. They play (Goodfellow et al., 2014, "Generative
Adversarial Nets")

$$\min_G \max_D \; \mathbb{E}_{x \sim p_{data}}[\log D(x)]
  + \mathbb{E}_{z \sim p_z}[\log(1 - D(G(z)))].$$

Everything here takes logits: \log \sigma(\ell) = -\mathrm{softplus}(-\ell) and
\log(1 - \sigma(\ell)) = -\mathrm{softplus}(\ell) are finite for any \ell, where
\log(\mathrm{sigmoid}(\ell)) underflows to -inf once \sigma(\ell) rounds to 0.
The conv GAN follows DCGAN (Radford et al., 2016). See chapter 1, "GANs".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import autocast, settings
from .data import ShapesDataset
from .shapes import to_float_image
from .train import OptimizerStep, batches_from, fit

KINDS = ("minimax", "nonsaturating", "hinge")


def _check(real_logits: torch.Tensor | None, fake_logits: torch.Tensor, kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown GAN loss kind {kind!r}; known kinds: {', '.join(KINDS)}")
    for name, t in (("real_logits", real_logits), ("fake_logits", fake_logits)):
        if t is not None and (t.ndim not in (1, 2) or (t.ndim == 2 and t.shape[1] != 1)
                              or t.numel() == 0):
            raise ValueError(f"expected {name} of shape (B,) or (B, 1), one logit per sample, "
                             f"got {tuple(t.shape)}")
    if real_logits is not None and real_logits.shape[1:] != fake_logits.shape[1:]:
        raise ValueError(f"real_logits {tuple(real_logits.shape)} and fake_logits "
                         f"{tuple(fake_logits.shape)} should both be (B,) or both (B, 1)")


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor,
                       kind: str = "nonsaturating") -> torch.Tensor:
    r"""The loss D minimises (a scalar); real and fake batches may differ in size.

    minimax and nonsaturating share it: -E[\log D(x)] - E[\log(1 - D(G(z)))].
    hinge: E[\max(0, 1 - \ell(x))] + E[\max(0, 1 + \ell(G(z)))] (Lim and Ye, 2017).
    """
    _check(real_logits, fake_logits, kind)
    if kind == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    # -log sigma(l) = softplus(-l);  -log(1 - sigma(l)) = softplus(l)
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def generator_loss(fake_logits: torch.Tensor, kind: str = "nonsaturating") -> torch.Tensor:
    r"""The loss G minimises (a scalar).

    minimax: E[\log(1 - D(G(z)))], whose gradient vanishes when D confidently says "fake".
    nonsaturating: -E[\log D(G(z))], same fixed point, strong gradient where G is bad.
    hinge: -E[\ell(G(z))].
    """
    _check(None, fake_logits, kind)
    if kind == "minimax":
        return -F.softplus(fake_logits).mean()      # log(1 - sigma(l)) = -softplus(l)
    if kind == "nonsaturating":
        return F.softplus(-fake_logits).mean()      # -log sigma(l) = softplus(-l)
    return -fake_logits.mean()


def r1_penalty(real_logits: torch.Tensor, real_inputs: torch.Tensor,
               gamma: float = 1.0) -> torch.Tensor:
    r"""R1 (Mescheder et al., 2018): (\gamma / 2) E_x ||\nabla_x \ell(x)||^2 on real data.

    The gradient is of the logit \ell, per sample (summed over its pixels), averaged over the
    batch, times gamma / 2; so gamma=2 gives the plain mean squared gradient norm. Call
    ``real_inputs.requires_grad_()`` before the discriminator sees them. D must treat samples
    independently (no BatchNorm), or the per-sample gradients mix. Differentiable (for D's update).
    """
    if not real_inputs.requires_grad:
        raise ValueError("r1_penalty needs the gradient with respect to real_inputs: call "
                         "real_inputs.requires_grad_() before computing real_logits")
    if real_logits.shape[0] != real_inputs.shape[0]:
        raise ValueError(f"real_logits has {real_logits.shape[0]} samples but real_inputs has "
                         f"{real_inputs.shape[0]}; pass the logits of these very inputs")
    wide = torch.promote_types(real_logits.dtype, torch.float32)   # sum half precision in fp32
    (grad,) = torch.autograd.grad(real_logits.to(wide).sum(), real_inputs, create_graph=True)
    return 0.5 * gamma * grad.to(wide).pow(2).flatten(1).sum(1).mean()


# ---------------------------------------------------------------------------------------------
# The ring of Gaussians: 8 modes in 2-D, where mode collapse can be counted
# ---------------------------------------------------------------------------------------------

def ring_centers(n_modes: int = 8, radius: float = 2.0) -> torch.Tensor:
    """(K, 2) centres evenly spaced on a circle (angle 2 pi k / K, k < K: no duplicate)."""
    angles = torch.arange(n_modes, dtype=torch.float32) * (2 * math.pi / n_modes)
    return radius * torch.stack([angles.cos(), angles.sin()], dim=1)


def sample_ring(n: int, n_modes: int = 8, radius: float = 2.0, sigma: float = 0.02,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """(n, 2) samples: a uniformly chosen mode plus isotropic Gaussian noise of std sigma."""
    k = torch.randint(n_modes, (n,), generator=generator)
    return ring_centers(n_modes, radius)[k] + sigma * torch.randn(n, 2, generator=generator)


def mode_metrics(samples: torch.Tensor, centers: torch.Tensor, sigma: float,
                 min_fraction: float = 0.02) -> dict:
    """How well samples cover the modes.

    A sample is "high quality" when within 3 sigma of its nearest centre; a mode is covered
    when at least ``min_fraction`` of all samples are high-quality samples of that mode.
    Returns modes_covered (int), high_quality (fraction) and counts (K,) per mode.
    """
    if samples.ndim != 2 or centers.ndim != 2 or samples.shape[1] != centers.shape[1]:
        raise ValueError(f"expected samples (N, D) and centers (K, D), got "
                         f"{tuple(samples.shape)} and {tuple(centers.shape)}")
    dist, nearest = torch.cdist(samples.float(), centers.float()).min(dim=1)   # (N,)
    good = dist <= 3 * sigma
    counts = torch.bincount(nearest[good], minlength=centers.shape[0])         # (K,)
    return {"modes_covered": int((counts >= min_fraction * len(samples)).sum()),
            "high_quality": float(good.float().mean()), "counts": counts}


def mlp(in_dim: int, hidden: int, out_dim: int, depth: int = 3) -> nn.Sequential:
    """``depth`` hidden ReLU layers of width ``hidden``: the ring experiment's G and D."""
    layers, d = [], in_dim
    for _ in range(depth):
        layers += [nn.Linear(d, hidden), nn.ReLU()]
        d = hidden
    return nn.Sequential(*layers, nn.Linear(d, out_dim))


# ---------------------------------------------------------------------------------------------
# A DCGAN-style conv GAN for 32x32 Shapes images
# ---------------------------------------------------------------------------------------------

@settings
class GANConfig:
    z_dim: int = 64
    width: int = 32          # channels at full resolution; doubled at each halving of the side
    image_size: int = 32

    def __post_init__(self):
        if self.image_size < 8 or self.image_size & (self.image_size - 1):
            raise ValueError(f"image_size must be a power of two >= 8, got {self.image_size}")

    @property
    def n_up(self) -> int:                                # 4x4 -> image_size
        return int(math.log2(self.image_size // 4))


class Generator(nn.Module):
    """z (B, z_dim) -> images (B, 3, S, S) in [-1, 1]: a 4x4 seed, upsampled by transposed convs."""

    def __init__(self, cfg: GANConfig):
        super().__init__()
        self.cfg, c = cfg, cfg.width * 2 ** cfg.n_up
        self.project = nn.Sequential(nn.Linear(cfg.z_dim, c * 16), nn.Unflatten(1, (c, 4, 4)),
                                     nn.BatchNorm2d(c), nn.ReLU())
        ups = []
        for _ in range(cfg.n_up):                         # each doubles the side, halves channels
            ups += [nn.ConvTranspose2d(c, c // 2, 4, stride=2, padding=1, bias=False),
                    nn.BatchNorm2d(c // 2), nn.ReLU()]
            c //= 2
        self.up = nn.Sequential(*ups)
        self.to_rgb = nn.Conv2d(c, 3, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.to_rgb(self.up(self.project(z))))   # (B, 3, S, S)


class Discriminator(nn.Module):
    """images (B, 3, S, S) -> logits (B,): strided convs, BatchNorm after all but the first.

    As in DCGAN. BatchNorm lets D compare the samples of a batch, which on Shapes keeps G from
    collapsing to one image; the price is that a logit depends on its batch (so no R1 here).
    """

    def __init__(self, cfg: GANConfig):
        super().__init__()
        layers, c_in, c = [], 3, cfg.width
        for k in range(cfg.n_up):                         # S -> 4, channels width -> width*2^n
            layers += [nn.Conv2d(c_in, c, 4, stride=2, padding=1, bias=k == 0)]
            layers += [nn.BatchNorm2d(c)] if k > 0 else []
            layers += [nn.LeakyReLU(0.2)]
            c_in, c = c, c * 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in * 16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1)).squeeze(1)  # (B,)


class ShapesGAN(nn.Module):
    """A generator and its discriminator, saved and loaded together."""

    def __init__(self, cfg: GANConfig):
        super().__init__()
        self.cfg = cfg
        self.generator, self.discriminator = Generator(cfg), Discriminator(cfg)

    @torch.no_grad()
    def sample(self, n: int, seed: int | None = None) -> torch.Tensor:
        """n images (n, 3, S, S) in [-1, 1] from the generator (in its current train/eval mode)."""
        device = next(self.parameters()).device
        g = torch.Generator().manual_seed(seed) if seed is not None else None
        z = torch.randn(n, self.cfg.z_dim, generator=g).to(device)
        return self.generator(z).float()


@settings
class GANTrain:
    """How the Shapes GAN trains (``minit2i.presets`` has one per preset)."""

    steps: int
    batch_size: int
    n_images: int                 # pre-rendered one-object training images
    lr: float = 2e-4
    kind: str = "nonsaturating"   # the loss: one of KINDS
    seed: int = 0
    log_every: int = 25


def make_train_step(model: ShapesGAN, lr: float = 2e-4, betas=(0.5, 0.999),
                    kind: str = "nonsaturating", device="cpu"):
    """A ``step(batch, i)`` for ``train.fit``: a D update, then a G update, mixed precision."""
    if kind not in KINDS:
        raise ValueError(f"unknown GAN loss {kind!r}; choose one of {', '.join(KINDS)}")
    G, D = model.generator, model.discriminator
    update_g = OptimizerStep(G.parameters(), lr, device=device, optimizer="adam", betas=betas,
                             clip=None)
    update_d = OptimizerStep(D.parameters(), lr, device=device, optimizer="adam", betas=betas,
                             clip=None)

    def step(batch, i):
        real = batch[0]                                   # (B, 3, S, S) in [-1, 1]
        z = torch.randn(real.shape[0], model.cfg.z_dim, device=real.device)
        with autocast(device):
            fake = G(z)
            real_logits, fake_logits = D(real), D(fake.detach())    # detach: D's turn only
        d_loss = discriminator_loss(real_logits.float(), fake_logits.float(), kind)
        update_d.update(d_loss)
        with autocast(device):
            g_logits = D(fake)
        g_loss = generator_loss(g_logits.float(), kind)
        update_g.update(g_loss)                           # D's grads from this are zeroed later
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(),
                "D(x)": torch.sigmoid(real_logits.detach().float()).mean(),
                "D(G(z))": torch.sigmoid(fake_logits.detach().float()).mean()}

    return step


def train_shapes_gan(model: ShapesGAN, train: GANTrain, device, preset: str | None = None
                     ) -> dict:
    """Train on one-object Shapes images (the zoo's trainer); returns metrics and loss curves."""
    images, _, _ = ShapesDataset("train", n=train.n_images, size=model.cfg.image_size,
                                 n_objects=1, seed=train.seed).tensors()
    batches = batches_from(images, batch_size=train.batch_size, device=device, seed=train.seed,
                           transform=lambda x: (to_float_image(x),))
    step = make_train_step(model.train(), lr=train.lr, kind=train.kind, device=device)
    hist = fit(step, batches, train.steps, log_every=train.log_every, desc="shapes_gan")
    metrics = {k: hist.last(k) for k in hist.values}
    metrics.update({"seconds": hist.seconds, "curve_steps": [float(s) for s in hist.steps]})
    metrics.update({f"curve_{k}": list(v) for k, v in hist.values.items()})
    return metrics
