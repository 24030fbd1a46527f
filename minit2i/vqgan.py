r"""VQGAN: a VQ-VAE sharpened by a patch discriminator (Esser et al., 2021). See chapter 5.

The generator is chapter 3's VQ-VAE. A PatchGAN discriminator (Isola et al., 2017) judges
overlapping patches of the reconstruction with chapter 1's hinge loss, and the generator's
adversarial term is weighted adaptively, so that neither loss drowns the other:

$$ \lambda = \frac{\lVert \nabla_{G_L} \mathcal{L}_{rec} \rVert}
                  {\lVert \nabla_{G_L} \mathcal{L}_{GAN} \rVert + \delta}, \qquad
   \mathcal{L} = \mathcal{L}_{rec} + \mathcal{L}_{VQ} + w\, \lambda\, \mathcal{L}_{GAN}, $$

with $G_L$ the decoder's last layer. The discriminator is switched on only after ``disc_start``
steps, once reconstructions are already good: a discriminator that sees noise at first wins at
once and its gradients wreck the autoencoder. It then trains alone for ``disc_warmup`` steps
before its verdict reaches the generator. With ``init_from="vqvae"`` the whole first phase is
chapter 3's trained VQ-VAE, loaded (or trained) from the zoo: the VQGAN is that model fine-tuned
with a discriminator. No downloaded perceptual network: the reconstruction loss is L1, weighted
towards the objects like chapter 3's (``fg_weight``).
"""

from __future__ import annotations

import torch
from torch import nn

from .config import autocast, settings
from .data import ShapesDataset
from .gan import discriminator_loss, generator_loss
from .shapes import to_float_image
from .train import OptimizerStep, fit
from .vq import (
    VQVAE,
    CodebookUpkeep,
    evaluate_vqvae,
    reconstruction_loss,
    shapes_image_batches,
)


class PatchDiscriminator(nn.Module):
    """(B, 3, H, W) images -> (B, 1, h, w) logits, one per overlapping patch."""

    def __init__(self, channels: int = 64, n_layers: int = 3):
        super().__init__()
        layers, c = [nn.Conv2d(3, channels, 4, stride=2, padding=1), nn.LeakyReLU(0.2)], channels
        for _ in range(n_layers - 1):
            layers += [nn.Conv2d(c, 2 * c, 4, stride=2, padding=1), nn.GroupNorm(8, 2 * c),
                       nn.LeakyReLU(0.2)]
            c *= 2
        layers += [nn.Conv2d(c, 1, 3, padding=1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(x.shape)}")
        return self.net(x)


def last_layer(model: VQVAE) -> torch.Tensor:
    """The weight of the decoder's final convolution: where the adaptive weight is measured."""
    return model.decoder[-1].weight


def adaptive_weight(rec_loss: torch.Tensor, gan_loss: torch.Tensor, layer: torch.Tensor,
                    delta: float = 1e-4, max_weight: float = 1e4, loss_scale: float = 1.0
                    ) -> torch.Tensor:
    """lambda = ||grad_layer rec_loss|| / (||grad_layer gan_loss|| + delta), detached.

    Under fp16 both losses are multiplied by the gradient scaler's ``loss_scale`` before their
    gradients are taken (so small gradients do not underflow) and the norms divided by it
    after: the ratio is the same, only safer to compute."""
    g_rec = torch.autograd.grad(rec_loss * loss_scale, layer, retain_graph=True)[0]
    g_gan = torch.autograd.grad(gan_loss * loss_scale, layer, retain_graph=True)[0]
    rec_norm, gan_norm = g_rec.float().norm() / loss_scale, g_gan.float().norm() / loss_scale
    return (rec_norm / (gan_norm + delta)).clamp(0, max_weight).detach()


def sharpness(images: torch.Tensor) -> torch.Tensor:
    """Root-mean-square finite-difference gradient per image (B,): blur spreads an edge over
    more pixels with smaller steps, and the squares make that count (the mean absolute gradient
    would not change)."""
    x = images.float()
    dx = (x[..., :, 1:] - x[..., :, :-1]).pow(2).flatten(1).mean(1)
    dy = (x[..., 1:, :] - x[..., :-1, :]).pow(2).flatten(1).mean(1)
    return ((dx + dy) / 2).sqrt()


@settings
class VQGANTrain:
    """How the VQGAN trains (``minit2i.presets`` has one per preset)."""

    steps: int
    batch_size: int
    n_train: int
    lr: float = 2e-4
    warmup: int = 100
    disc_start: int = 0            # the step at which the discriminator starts training
    disc_warmup: int = 0           # steps it trains alone before the generator hears it
    disc_weight: float = 0.5       # w in the loss above
    disc_channels: int = 64
    adaptive: bool = True          # lambda as above; False: lambda = 1
    fg_weight: float = 0.0         # see minit2i.vq.reconstruction_loss
    restart_every: int = 100
    init_from: str | None = None   # a zoo model to start from ("vqvae"); None: k-means start
    seed: int = 0
    log_every: int = 25


def make_vqgan_step(model: VQVAE, disc: PatchDiscriminator, train: VQGANTrain,
                    device: torch.device):
    """One training step of the VQGAN: generator update, then (after disc_start) discriminator.

    Returns ``step(x, i) -> dict`` for ``minit2i.train.fit``; ``step.upkeep`` is the codebook's
    ``CodebookUpkeep`` (call its ``start`` for a k-means start).
    """
    update_g = OptimizerStep([p for p in model.parameters() if p.requires_grad], train.lr,
                             device=device, optimizer="adam", betas=(0.5, 0.9), steps=train.steps,
                             warmup=train.warmup, clip=None)
    update_d = OptimizerStep(disc.parameters(), train.lr, device=device, optimizer="adam",
                             betas=(0.5, 0.9), clip=None)
    upkeep = CodebookUpkeep(model, train.restart_every, train.steps)
    zero = torch.zeros((), device=device)

    def step(x, i):
        d_on = i >= train.disc_start
        gan_on = i >= train.disc_start + train.disc_warmup
        with autocast(device):
            out = model(x)
            recon = out["recon"].float()
            g_loss = generator_loss(disc(recon).float().reshape(-1), "hinge") if gan_on else zero
        rec = reconstruction_loss(recon, x, train.fg_weight, kind="l1")
        weight = zero
        if gan_on:
            weight = torch.ones((), device=device)
            if train.adaptive:
                weight = adaptive_weight(rec, g_loss, last_layer(model),
                                         loss_scale=update_g.loss_scale())
        update_g.update(rec + out["vq_loss"] + train.disc_weight * weight * g_loss)
        d_loss = zero
        if d_on:
            with autocast(device):
                real, fake = disc(x).float().reshape(-1), disc(recon.detach()).float().reshape(-1)
            d_loss = discriminator_loss(real, fake, "hinge")
            update_d.update(d_loss)
        upkeep.after_step(i, x, out["indices"])
        return {"l1": rec.detach(), "g": g_loss.detach(), "d": d_loss.detach(),
                "lambda": weight.detach()}

    step.upkeep = upkeep
    return step


def train_vqgan(model: VQVAE, train: VQGANTrain, device: torch.device, preset: str | None = None,
                progress: bool = True) -> dict:
    """Train a VQGAN on rendered Shapes images; returns val PSNR, usage, perplexity, sharpness.

    With ``train.init_from`` (a zoo name, loaded for the same ``preset``), start from that
    trained model instead of from k-means: ``train.steps`` are then fine-tuning steps."""
    batches = shapes_image_batches(train, model.config.image_size, device)
    disc = PatchDiscriminator(train.disc_channels).to(device)
    step = make_vqgan_step(model, disc, train, device)
    model.train()
    if train.init_from:                          # phase one is a trained VQ-VAE from the zoo
        from .zoo import load_or_train
        start = load_or_train(train.init_from, preset, device=device)
        if start.config != model.config:
            raise ValueError(f"init_from={train.init_from!r}: its config {start.config} "
                             f"differs from the VQGAN's {model.config}; the two recipes' model "
                             "settings must match")
        model.load_state_dict(start.state_dict())
        model.train()
    else:
        step.upkeep.start(next(batches))
    history = fit(step, batches, train.steps, desc="VQGAN", progress=progress,
                  log_every=train.log_every)
    metrics = evaluate_vqvae(model, device)
    metrics["sharpness"] = val_sharpness(model, device)
    return metrics | {"seconds": history.seconds}


@torch.no_grad()
def val_sharpness(model: VQVAE, device: torch.device, n: int = 512) -> float:
    """Sharpness of reconstructions relative to the originals on val (1 = as sharp)."""
    model.eval()
    x = to_float_image(ShapesDataset("val", n, model.config.image_size, seed=1).tensors()[0])
    x = x.to(device)
    recon = model(x)["recon"].clamp(-1, 1)
    return float(sharpness(recon).mean() / sharpness(x).mean())
