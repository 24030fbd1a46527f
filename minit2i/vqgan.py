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

from .config import autocast
from .gan import discriminator_loss, generator_loss
from .train import batches_from, cosine_lr, fit, to_float_image
from .vq import (
    VQVAE,
    VQVAEConfig,
    evaluate_vqvae,
    kmeans_init,
    reconstruction_loss,
    restart_dead_codes,
)
from .zoo import ModelSpec


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
                    delta: float = 1e-4, max_weight: float = 1e4) -> torch.Tensor:
    """lambda = ||grad_layer rec_loss|| / (||grad_layer gan_loss|| + delta), detached."""
    g_rec = torch.autograd.grad(rec_loss, layer, retain_graph=True)[0]
    g_gan = torch.autograd.grad(gan_loss, layer, retain_graph=True)[0]
    return (g_rec.norm() / (g_gan.norm() + delta)).clamp(0, max_weight).detach()


def sharpness(images: torch.Tensor) -> torch.Tensor:
    """Root-mean-square finite-difference gradient per image (B,): blur spreads an edge over
    more pixels with smaller steps, and the squares make that count (the mean absolute gradient
    would not change)."""
    x = images.float()
    dx = (x[..., :, 1:] - x[..., :, :-1]).pow(2).flatten(1).mean(1)
    dy = (x[..., 1:, :] - x[..., :-1, :]).pow(2).flatten(1).mean(1)
    return ((dx + dy) / 2).sqrt()


def make_vqgan_step(model: VQVAE, disc: PatchDiscriminator, r: dict, device: torch.device):
    """One training step of the VQGAN: generator update, then (after disc_start) discriminator.

    ``r``: lr, steps, warmup, disc_start, disc_warmup (steps the discriminator trains before
    the generator hears it), disc_weight, adaptive (bool), fg_weight, restart_every.
    Returns ``step(x, i) -> dict`` for ``minit2i.train.fit``.
    """
    opt_g = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=r["lr"],
                             betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(disc.parameters(), lr=r["lr"], betas=(0.5, 0.9))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt_g, lambda i: cosine_lr(i, r["steps"], r.get("warmup", 100)))
    usage = torch.zeros(model.num_codes, device=device)
    zero = torch.zeros((), device=device)

    def step(x, i):
        nonlocal usage
        d_on = i >= r["disc_start"]
        gan_on = i >= r["disc_start"] + r.get("disc_warmup", 0)
        with autocast(device):
            out = model(x)
            recon = out["recon"].float()
            rec = reconstruction_loss(recon, x, r.get("fg_weight", 0.0), kind="l1")
            g_loss = generator_loss(disc(recon).float().reshape(-1), "hinge") if gan_on else zero
        weight = zero
        if gan_on:
            weight = (adaptive_weight(rec, g_loss, last_layer(model)) if r.get("adaptive", True)
                      else torch.ones((), device=device))
        loss = rec + out["vq_loss"] + r["disc_weight"] * weight * g_loss
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        sched.step()
        d_loss = zero
        if d_on:
            with autocast(device):
                real, fake = disc(x).float().reshape(-1), disc(recon.detach()).float().reshape(-1)
                d_loss = discriminator_loss(real, fake, "hinge")
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
        usage += torch.bincount(out["indices"].flatten(), minlength=model.num_codes)
        if (i + 1) % r["restart_every"] == 0 and i + 1 < 0.8 * r["steps"]:
            with torch.no_grad():
                z = model.encoder(x).permute(0, 2, 3, 1).reshape(-1, model.config.code_dim)
            restart_dead_codes(model.quantizer, z.float(), usage, seed=i)
            usage = torch.zeros_like(usage)
        return {"l1": rec.detach(), "g": g_loss.detach(), "d": d_loss.detach(),
                "lambda": weight.detach()}

    return step


def train_vqgan(model: VQVAE, r: dict, device: torch.device, progress: bool = True,
                history_out: list | None = None) -> dict:
    """Train a VQGAN on rendered Shapes images; returns val PSNR, usage, perplexity, sharpness.

    With ``r["init_from"]`` (a zoo name, loaded for ``r["preset"]``), start from that trained
    model instead of from k-means: ``r["steps"]`` are then fine-tuning steps."""
    from .shapes import ShapesDataset

    torch.manual_seed(r.get("seed", 0))
    images, _, _ = ShapesDataset("train", r["n_train"], model.config.image_size).tensors()
    batches = batches_from(images, batch_size=r["batch_size"], device=device,
                           transform=to_float_image)
    disc = PatchDiscriminator(r["disc_channels"]).to(device)
    model.train()
    if r.get("init_from"):                      # phase one is a trained VQ-VAE from the zoo
        from .zoo import load_or_train
        start = load_or_train(r["init_from"], r.get("preset"), device=device)
        if start.config != model.config:
            raise ValueError(f"init_from={r['init_from']!r}: its config {start.config} differs "
                             f"from the VQGAN's {model.config}; the two recipes' model settings "
                             "must match")
        model.load_state_dict(start.state_dict())
    else:
        with torch.no_grad():
            z = model.encoder(next(batches)).permute(0, 2, 3, 1).reshape(-1, model.config.code_dim)
            kmeans_init(model.quantizer, z.float())
    history = fit(make_vqgan_step(model, disc, r, device), batches, r["steps"], desc="VQGAN",
                  progress=progress, log_every=r.get("log_every", 25))
    if history_out is not None:
        history_out.append(history)
    metrics = evaluate_vqvae(model, device)
    metrics["sharpness"] = val_sharpness(model, device)
    return metrics | {"seconds": history.seconds}


@torch.no_grad()
def val_sharpness(model: VQVAE, device: torch.device, n: int = 512) -> float:
    """Sharpness of reconstructions relative to the originals on val (1 = as sharp)."""
    from .shapes import ShapesDataset

    model.eval()
    x = to_float_image(ShapesDataset("val", n, model.config.image_size, seed=1).tensors()[0])
    x = x.to(device)
    recon = model(x)["recon"].clamp(-1, 1)
    return float(sharpness(recon).mean() / sharpness(x).mean())


SPECS = {"vqgan": ModelSpec(VQVAEConfig, VQVAE, train_vqgan)}
