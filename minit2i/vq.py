r"""Vector quantization and the VQ-VAE (van den Oord et al., 2017). See chapter 3.

Each latent vector $z$ is replaced by its nearest codebook entry,

$$ k = \arg\min_j \lVert z - e_j \rVert^2, \qquad z_q = e_k, $$

and the gradient is copied straight through the non-differentiable lookup ($\partial z_q /
\partial z = I$). The codebook learns from the codebook term and the encoder is kept close to
its codes by the commitment term, weighted by $\beta$:

$$ \mathcal{L}_{VQ} = \lVert \mathrm{sg}[z] - e \rVert^2
   + \beta\, \lVert z - \mathrm{sg}[e] \rVert^2 . $$

(A widely copied implementation puts $\beta$ on the codebook term instead.) Alternatives and
cures for codebook collapse: exponential-moving-average codebook updates instead of the codebook
term, k-means initialisation, and restarting dead codes on encoder outputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import autocast, full_precision, settings
from .data import ShapesDataset
from .shapes import to_float_image
from .train import OptimizerStep, batches_from, fit


def exact_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float32, or wider if an input is wider (float64): the precision of nearest-code search.

    Under autocast a distance matmul would run in bf16 or fp16, where near ties between codes
    round the other way and sums over thousands of vectors overflow; so the quantiser computes
    outside autocast, in this dtype."""
    dtype = torch.float32
    for t in tensors:
        dtype = torch.promote_types(dtype, t.dtype)
    return dtype


def quantize(z: torch.Tensor, codebook: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest codes: z (..., D), codebook (K, D) -> z_q (..., D), indices (...).

    z_q has the value codebook[indices] and the straight-through gradient of the identity."""
    if z.shape[-1] != codebook.shape[-1] or codebook.ndim != 2:
        raise ValueError(f"z (..., D) and codebook (K, D) must share D; got z {tuple(z.shape)} "
                         f"and codebook {tuple(codebook.shape)}")
    dtype = exact_dtype(z, codebook)
    with full_precision(z.device):
        flat = z.reshape(-1, z.shape[-1]).to(dtype)                            # (N, D)
        cb = codebook.to(dtype)
        # ||z - e||^2 = ||z||^2 - 2 z.e + ||e||^2, without building an (N, K, D) tensor
        d = (flat.pow(2).sum(1, keepdim=True) - 2 * flat @ cb.t()
             + cb.pow(2).sum(1)[None])                                          # (N, K)
        indices = d.argmin(dim=1).reshape(z.shape[:-1])
    e = codebook[indices]                                                      # (..., D)
    return z + (e - z).detach(), indices          # value e, gradient of the identity


def vq_loss(z: torch.Tensor, e: torch.Tensor, beta: float = 0.25) -> torch.Tensor:
    """Codebook term + beta x commitment term; ``e`` = codebook[indices] (not straight-through)."""
    return F.mse_loss(e, z.detach()) + beta * F.mse_loss(z, e.detach())


def perplexity(indices: torch.Tensor, num_codes: int) -> torch.Tensor:
    """exp(entropy) of code usage: 1 when one code is used, num_codes when all are used evenly."""
    p = torch.bincount(indices.flatten(), minlength=num_codes).float() / indices.numel()
    return torch.exp(-(p * torch.log(p + 1e-10)).sum())


class VectorQuantizer(nn.Module):
    """Quantise (B, D, H, W) maps with a learned codebook trained by the codebook loss."""

    def __init__(self, num_codes: int, dim: int, beta: float = 0.25):
        super().__init__()
        self.num_codes, self.dim, self.beta = num_codes, dim, beta
        self.codebook = nn.Parameter(torch.randn(num_codes, dim) / dim**0.5)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                  torch.Tensor]:
        if z.ndim != 4 or z.shape[1] != self.dim:
            raise ValueError(f"expected z of shape (B, {self.dim}, H, W), got {tuple(z.shape)}")
        with full_precision(z.device):           # distances, loss and EMA in fp32 (or wider)
            zf = z.permute(0, 2, 3, 1).to(exact_dtype(z, self.codebook))        # (B, H, W, D)
            z_q, indices = quantize(zf, self.codebook)
            loss = self.loss(zf, indices)
        return (z_q.permute(0, 3, 1, 2).to(z.dtype), indices, loss,
                perplexity(indices, self.num_codes))

    def loss(self, z: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        return vq_loss(z, self.codebook[indices], self.beta)


class EMAVectorQuantizer(VectorQuantizer):
    """The codebook follows a moving average of the vectors assigned to each code.

    No codebook loss: e_k <- (decay * sum_k + (1 - decay) * sum of z assigned to k) / counts,
    with Laplace smoothing of the counts. Only the commitment term reaches the encoder.
    """

    def __init__(self, num_codes: int, dim: int, beta: float = 0.25, decay: float = 0.99):
        super().__init__(num_codes, dim, beta)
        self.codebook.requires_grad_(False)
        self.decay = decay
        self.register_buffer("ema_count", torch.ones(num_codes))
        self.register_buffer("ema_sum", self.codebook.detach().clone())

    def loss(self, z: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.ema_update(z.detach().reshape(-1, self.dim), indices.flatten())
        return self.beta * F.mse_loss(z, self.codebook[indices].detach())

    @torch.no_grad()
    def ema_update(self, z: torch.Tensor, indices: torch.Tensor) -> None:
        with full_precision(z.device):
            z = z.to(self.ema_sum.dtype)
            counts = torch.bincount(indices, minlength=self.num_codes).to(z.dtype)   # (K,)
            sums = torch.zeros_like(self.ema_sum).index_add_(0, indices, z)          # (K, D)
            self.ema_count.mul_(self.decay).add_(counts, alpha=1 - self.decay)
            self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
            n = self.ema_count.sum()
            count = (self.ema_count + 1e-5) / (n + self.num_codes * 1e-5) * n   # Laplace smoothing
            self.codebook.copy_(self.ema_sum / count[:, None])


@torch.no_grad()
def kmeans_init(vq: VectorQuantizer, z: torch.Tensor, iters: int = 10, seed: int = 0) -> None:
    """Set the codebook to k-means centroids of encoder outputs z (N, D), seeded k-means++ style
    (each new centroid drawn with probability proportional to its squared distance)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    centroids = z[torch.randint(len(z), (1,), generator=g).to(z.device)]
    d2 = (z - centroids[0]).pow(2).sum(1)
    while len(centroids) < vq.num_codes:
        pick = torch.multinomial((d2 + 1e-12).cpu(), 1, generator=g).to(z.device)
        centroids = torch.cat([centroids, z[pick]])
        d2 = torch.minimum(d2, (z - z[pick]).pow(2).sum(1))
    for _ in range(iters):
        _, idx = quantize(z, centroids)
        sums = torch.zeros_like(centroids).index_add_(0, idx, z)
        counts = torch.bincount(idx, minlength=vq.num_codes).to(z.dtype)
        centroids = torch.where(counts[:, None] > 0, sums / counts.clamp(min=1)[:, None], centroids)
    vq.codebook.copy_(centroids)
    if isinstance(vq, EMAVectorQuantizer):
        vq.ema_sum.copy_(centroids)
        vq.ema_count.fill_(1.0)


@torch.no_grad()
def restart_dead_codes(vq: VectorQuantizer, z: torch.Tensor, usage: torch.Tensor,
                       seed: int = 0) -> int:
    """Move every code with zero ``usage`` onto a random encoder output from z (N, D)."""
    dead = torch.nonzero(usage == 0).flatten()
    if len(dead):
        g = torch.Generator(device="cpu").manual_seed(seed)
        pick = torch.randint(len(z), (len(dead),), generator=g).to(z.device)
        vq.codebook[dead] = z[pick]
        if isinstance(vq, EMAVectorQuantizer):
            vq.ema_sum[dead] = z[pick]
            vq.ema_count[dead] = 1.0
    return len(dead)


# ---------------------------------------------------------------------------------------------
# The VQ-VAE
# ---------------------------------------------------------------------------------------------

@settings
class VQVAEConfig:
    image_size: int = 64
    channels: int = 64          # width of the first conv layer (full resolution)
    downsamples: int = 3        # 64 -> 8: an 8 x 8 grid of tokens
    # the width at each resolution, in multiples of ``channels``: 64, 32, 16, 8 pixels for
    # downsamples = 3. Width at the low resolutions is cheap (a 3 x 3 conv costs H W C^2) and is
    # where the decoder keeps what each code means; see benchmarks/tokenizer_ceiling.py.
    channel_mults: tuple[int, ...] = (1, 1, 2, 2)
    num_codes: int = 256
    code_dim: int = 16          # low-dimensional codes are used more evenly
    beta: float = 0.25
    ema: bool = True

    def __post_init__(self):
        if len(self.channel_mults) != self.downsamples + 1:
            raise ValueError(f"channel_mults needs one multiple per resolution "
                             f"(downsamples + 1 = {self.downsamples + 1}), got "
                             f"{self.channel_mults}")
        if any(w < 8 or w % 8 for w in self.widths):
            raise ValueError(f"every width (channels x channel_mults = {self.widths}) must be a "
                             "positive multiple of 8, for GroupNorm's 8 groups")

    @property
    def widths(self) -> list[int]:
        return [self.channels * m for m in self.channel_mults]


class ResBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.net = nn.Sequential(nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1),
                                 nn.GroupNorm(8, c), nn.SiLU(), nn.Conv2d(c, c, 3, padding=1))

    def forward(self, x):
        return x + self.net(x)


class VQVAE(nn.Module):
    """Conv encoder -> vector quantizer -> conv decoder, on (B, 3, H, W) images in [-1, 1]."""

    def __init__(self, config: VQVAEConfig):
        super().__init__()
        self.config = c = config
        w = c.widths                                   # per resolution, full first
        enc = [nn.Conv2d(3, w[0], 3, padding=1)]
        for i in range(c.downsamples):
            enc += [ResBlock(w[i]), nn.Conv2d(w[i], w[i + 1], 4, stride=2, padding=1)]
        enc += [ResBlock(w[-1]), nn.GroupNorm(8, w[-1]), nn.SiLU(), nn.Conv2d(w[-1], c.code_dim, 1)]
        self.encoder = nn.Sequential(*enc)
        quantizer = EMAVectorQuantizer if c.ema else VectorQuantizer
        self.quantizer = quantizer(c.num_codes, c.code_dim, c.beta)
        dec = [nn.Conv2d(c.code_dim, w[-1], 3, padding=1), ResBlock(w[-1])]
        for i in reversed(range(c.downsamples)):
            dec += [nn.Upsample(scale_factor=2, mode="nearest"),
                    nn.Conv2d(w[i + 1], w[i], 3, padding=1), ResBlock(w[i])]
        dec += [nn.GroupNorm(8, w[0]), nn.SiLU(), nn.Conv2d(w[0], 3, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    @property
    def num_codes(self) -> int:
        return self.config.num_codes

    @property
    def grid(self) -> int:
        return self.config.image_size // 2 ** self.config.downsamples

    def _check(self, x: torch.Tensor) -> None:
        s = self.config.image_size
        if x.ndim != 4 or x.shape[1:] != (3, s, s):
            raise ValueError(f"expected images of shape (B, 3, {s}, {s}), got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> dict:
        self._check(x)
        z = self.encoder(x)                                                    # (B, D, h, w)
        z_q, indices, vq_loss, ppl = self.quantizer(z)
        return {"recon": self.decoder(z_q), "indices": indices, "vq_loss": vq_loss,
                "perplexity": ppl}

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) -> token indices (B, h, w)."""
        self._check(x)
        return quantize(self.encoder(x).permute(0, 2, 3, 1), self.quantizer.codebook)[1]

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Token indices (B, h, w) -> images (B, 3, H, W)."""
        if indices.ndim != 3 or indices.shape[1:] != (self.grid, self.grid):
            raise ValueError(f"expected indices of shape (B, {self.grid}, {self.grid}), "
                             f"got {tuple(indices.shape)}")
        if indices.min() < 0 or indices.max() >= self.num_codes:
            raise ValueError(f"token ids must lie in 0..{self.num_codes - 1}")
        z_q = self.quantizer.codebook[indices].permute(0, 3, 1, 2)             # (B, D, h, w)
        return self.decoder(z_q)


def reconstruction_loss(recon: torch.Tensor, x: torch.Tensor, fg_weight: float = 0.0,
                        kind: str = "mse") -> torch.Tensor:
    """Squared (``kind="mse"``) or absolute (``"l1"``) error of images (B, 3, H, W) in [-1, 1],
    pixels near objects weighted more.

    On Shapes most pixels are black background, so a plain mean is mostly spent on getting black
    right and a small shape's corners barely count. Pixels within two of an object (any channel
    above -0.45, dilated by a 5x5 max-pool) get weight ``1 + fg_weight``, the rest 1; dividing by
    the mean weight keeps the loss on the scale of the plain one. ``fg_weight=0`` is exactly
    ``F.mse_loss`` (or ``F.l1_loss``).
    """
    if recon.shape != x.shape or x.ndim != 4:
        raise ValueError(f"expected two image batches (B, C, H, W) of one shape, got "
                         f"{tuple(recon.shape)} and {tuple(x.shape)}")
    if kind not in ("mse", "l1"):
        raise ValueError(f"kind must be 'mse' or 'l1', got {kind!r}")
    err = (recon - x) ** 2 if kind == "mse" else (recon - x).abs()
    if not fg_weight:
        return err.mean()
    near = F.max_pool2d((x.amax(1, keepdim=True) > -0.45).float(), 5, stride=1, padding=2)
    w = 1 + fg_weight * near
    return (w * err).mean() / w.mean()


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of images in [-1, 1] (peak-to-peak 2), per image."""
    mse = (x.float() - y.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(4 / mse.clamp(min=1e-10))


@settings
class VQVAETrain:
    """How a VQ-VAE trains (``minit2i.presets`` has one per preset)."""

    steps: int
    batch_size: int
    n_train: int                 # pre-rendered training scenes
    lr: float = 1e-3
    warmup: int = 100
    restart_every: int = 100     # dead codes move onto encoder outputs this often (early on)
    fg_weight: float = 0.0       # see reconstruction_loss
    loss: str = "mse"            # the reconstruction error: "mse" or "l1"
    seed: int = 0
    log_every: int = 25

    def __post_init__(self):
        if self.loss not in ("mse", "l1"):
            raise ValueError(f"loss must be 'mse' or 'l1', got {self.loss!r}")


@torch.no_grad()
def encoder_vectors(model: VQVAE, x: torch.Tensor) -> torch.Tensor:
    """The encoder's outputs for images x (B, 3, H, W), as vectors (B h w, D) in fp32."""
    with full_precision(x.device):
        z = model.encoder(x).permute(0, 2, 3, 1)
    return z.reshape(-1, model.config.code_dim).to(exact_dtype(model.quantizer.codebook))


class CodebookUpkeep:
    """The cures of chapter 3 during training: a k-means start from the first batch's encodings,
    then every ``restart_every`` steps (until 80 % of training) the codes no batch used since the
    last restart move onto encoder outputs. Shared by the VQ-VAE and the VQGAN."""

    def __init__(self, model: VQVAE, restart_every: int, steps: int):
        self.model, self.every, self.until = model, restart_every, 0.8 * steps
        self.usage = torch.zeros(model.num_codes, device=model.quantizer.codebook.device)

    def start(self, x: torch.Tensor) -> None:
        kmeans_init(self.model.quantizer, encoder_vectors(self.model, x))

    def after_step(self, i: int, x: torch.Tensor, indices: torch.Tensor) -> None:
        self.usage += torch.bincount(indices.flatten(), minlength=self.model.num_codes)
        if self.every and (i + 1) % self.every == 0 and i + 1 < self.until:
            restart_dead_codes(self.model.quantizer, encoder_vectors(self.model, x), self.usage,
                               seed=i)
            self.usage.zero_()


def shapes_image_batches(train, image_size: int, device) -> object:
    """Endless batches of float training images (B, 3, H, W) for a tokenizer's ``train``."""
    images, _, _ = ShapesDataset("train", train.n_train, image_size, seed=train.seed).tensors()
    return batches_from(images, batch_size=train.batch_size, device=device, seed=train.seed,
                        transform=to_float_image)


def make_vqvae_step(model: VQVAE, train: VQVAETrain, device):
    """One training step of the VQ-VAE, ``step(x, i) -> dict`` for ``minit2i.train.fit``:
    reconstruction (weighted towards objects, ``fg_weight``) + VQ loss, one AdamW step with
    warmup and cosine decay, then the codebook's upkeep (``step.upkeep``, whose ``start`` is the
    k-means initialisation)."""
    update = OptimizerStep([p for p in model.parameters() if p.requires_grad], train.lr,
                           device=device, betas=(0.9, 0.99), steps=train.steps,
                           warmup=train.warmup, clip=None)
    upkeep = CodebookUpkeep(model, train.restart_every, train.steps)

    def step(x, i):                                  # x: (B, 3, H, W) in [-1, 1]
        with autocast(device):
            out = model(x)
        rec = reconstruction_loss(out["recon"].float(), x, train.fg_weight, train.loss)
        loss = rec + out["vq_loss"]
        update.update(loss)
        upkeep.after_step(i, x, out["indices"])
        return {"recon": rec.detach(), "vq": out["vq_loss"].detach(),
                "perplexity": out["perplexity"]}

    step.upkeep = upkeep
    return step


def train_vqvae(model: VQVAE, train: VQVAETrain, device: torch.device, preset: str | None = None,
                progress: bool = True) -> dict:
    """Train on rendered Shapes images with ``make_vqvae_step``: k-means initialisation, then
    ``train.steps`` steps, dead codes restarted every ``restart_every`` steps."""
    batches = shapes_image_batches(train, model.config.image_size, device)
    step = make_vqvae_step(model, train, device)
    model.train()
    step.upkeep.start(next(batches))
    history = fit(step, batches, train.steps, log_every=train.log_every, desc="VQ-VAE",
                  progress=progress)
    return evaluate_vqvae(model, device) | {"seconds": history.seconds,
                                           "final_recon": history.last("recon")}


@torch.no_grad()
def evaluate_vqvae(model: VQVAE, device: torch.device, n: int = 512) -> dict:
    """PSNR, codebook usage and perplexity on the val split."""
    model.eval()
    images, _, _ = ShapesDataset("val", n, model.config.image_size, seed=1).tensors()
    x = to_float_image(images.to(device))
    out = model(x)
    used = torch.unique(out["indices"]).numel()
    return {"psnr": float(psnr(out["recon"].clamp(-1, 1), x).mean()),
            "usage": used / model.num_codes, "perplexity": float(out["perplexity"])}
