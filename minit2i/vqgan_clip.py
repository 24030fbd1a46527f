r"""VQGAN+CLIP: optimise a VQGAN's latent until CLIP says the decoded image matches a caption.

Nothing is trained. For a prompt with CLIP text embedding $t$, the pre-quantisation latent $z$
of a trained VQGAN is optimised by Adam on

$$
\min_z \frac{1}{n}\sum_{k=1}^{n} d\big(E_I(A_k(G(\mathrm{sg}[q(z)] + z - \mathrm{sg}[z]))), t\big),
\quad d(u, v) = 2 \arcsin^2\!\Big(\frac{\lVert \hat u - \hat v \rVert}{2}\Big) = \frac{\theta^2}{2},
$$

where $q$ is the nearest-code quantiser (passed straight through), $G$ the decoder, $A_k$ random
cutouts and augmentations, $E_I$ the CLIP image encoder and $\theta$ the angle between the unit
vectors $\hat u$ and $\hat v$ (the spherical distance loss of Crowson et al., 2022, "VQGAN-CLIP";
VQGAN: Esser et al., 2021; CLIP: Radford et al., 2021). See chapter 7, "VQGAN+CLIP".
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .clip import crop_draws, random_crops
from .config import settings
from .shapes import check_prompts, to_uint8_image
from .text import Tokenizer


def spherical_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """2 arcsin(|x^ - y^| / 2)^2 over the last dimension: half the squared angle between x, y."""
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(f"x {tuple(x.shape)} and y {tuple(y.shape)} must share their last "
                         "dimension (the embedding size)")
    x, y = F.normalize(x, dim=-1), F.normalize(y, dim=-1)
    # |x - y| / 2 = sin(theta / 2) for unit vectors; the clamp guards arcsin against rounding
    return 2 * ((x - y).norm(dim=-1) / 2).clamp(max=1).arcsin().pow(2)


def cutouts(images: torch.Tensor, n: int, min_scale: float = 0.8, noise: float = 0.1,
            generator: torch.Generator | None = None,
            draws: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """n random views of each image (B, 3, H, W) -> (B * n, 3, H, W), image b's views together.

    Each view is ``clip.random_crops``: a square crop covering ``min_scale``..1 of the side, at
    a random place inside the image, resized back to H x W (differentiably), plus Gaussian
    noise of random strength up to ``noise``; the same views the CLIP trained on. No flips:
    "left of" must stay left. The crops are large because Shapes captions name positions that
    a small crop would move. ``draws`` (``clip.crop_draws`` for all B n views) gives the random
    numbers instead of ``generator``.
    """
    if images.ndim != 4:
        raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
    if n < 1:
        raise ValueError(f"need n >= 1 cutouts, got {n}")
    return random_crops(images.repeat_interleave(n, dim=0), min_scale, noise, generator, draws)


def codebook(vq: nn.Module) -> torch.Tensor:
    """The quantiser's codes (K, D)."""
    return vq.quantizer.codebook


def decode_latent(vq: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """Quantise z (B, D, h, w), straight through, and decode to images (B, 3, H, W) in [-1, 1].

    Forward: the image of the nearest codes. Backward: the gradient reaches z as if q were the
    identity, so z can move (and jump to other codes) although q itself has no gradient.
    """
    z_q = vq.quantizer(z)[0]
    z_st = z + (z_q - z).detach()                  # sg[q(z)] + z - sg[z]
    return vq.decoder(z_st).float().clamp(-1, 1)


@torch.no_grad()
def background_latent(vq: nn.Module) -> torch.Tensor:
    """The code vector (D,) the VQGAN gives an empty (black) canvas: the Shapes background."""
    p = next(vq.parameters())
    black = -torch.ones(1, 3, vq.config.image_size, vq.config.image_size, device=p.device)
    return codebook(vq).detach()[vq.encode(black)[0, 0, 0]]


def random_latent(vq: nn.Module, batch: int, generator: torch.Generator | None = None
                  ) -> torch.Tensor:
    """A start from noise: every latent position set to a uniformly random code (B, D, h, w)."""
    cb = codebook(vq).detach()
    idx = torch.randint(len(cb), (batch, vq.grid, vq.grid), generator=generator)
    return cb[idx.to(cb.device)].permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def expected_codes(model: nn.Module, codes: torch.Tensor, cb: torch.Tensor) -> torch.Tensor:
    """What a caption-free DALL-E expects at each position: (B, D, h, w), the mean code vector
    under its next-code distribution given the codes (B, h, w) before that position.

    One teacher-forced pass of chapter 6's transformer with the empty caption (its
    ``caption_dropout`` trained that image model): position n gets sum_k p(k | codes < n) c_k.
    """
    B, h, w = codes.shape
    V, L = model.config.text_vocab, model.config.text_len
    seq = model.joint(model.empty_text(B, codes.device), codes)
    logits = model(seq[:, :-1])[:, L - 1:, V:]                            # (B, h w, K)
    mean = logits.float().softmax(-1) @ cb                                # (B, h w, D)
    return mean.transpose(1, 2).reshape(B, -1, h, w)


# Views (images x cutouts) through CLIP in one forward and backward. A search of more images
# runs in chunks of whole images, one after the other within each step (their gradients summed
# before Adam's step), so its activations stay those of one chunk: under SEARCH_PEAK_GIB in
# float32 in every preset (minit2i.budget counts the bytes a view saves for backward;
# tests/test_budget.py checks the bound). Chunked or not, a seed gives the same images.
MAX_VIEWS = 1024
SEARCH_PEAK_GIB = 4.0


def chunk_size(views_per_image: int, max_views: int = MAX_VIEWS) -> int:
    """How many images one chunk holds: as many as keep images x views <= max_views (>= 1)."""
    return max(1, max_views // max(1, views_per_image))


def optimise(vq: nn.Module, clip: nn.Module, text_features: torch.Tensor, z0: torch.Tensor,
             steps: int, lr: float = 0.1, n_cutouts: int = 16, augment: bool = True,
             min_scale: float = 0.8, noise: float = 0.1, prior: float = 0.0,
             dalle_prior: float = 0.0, code_model: nn.Module | None = None,
             record_every: int = 0, generator: torch.Generator | None = None,
             max_views: int = MAX_VIEWS) -> dict:
    """Adam on z from z0 (B, D, h, w) towards the unit text features (B, E), one per image.

    ``lr`` is in units of the codebook's standard deviation (so it suits any VQGAN), and z is
    clamped to the codebook's per-dimension range after each step. Without ``augment`` CLIP sees
    the image itself, once. ``prior`` > 0 adds a pull towards an empty canvas: ``prior`` times
    the mean squared distance of the latent to the background's code (``background_latent``),
    in codebook standard deviations, so that only positions CLIP needs leave the background.
    ``dalle_prior`` > 0 adds a pull of the same form towards what a caption-free mini DALL-E
    ``code_model`` (chapter 6's, on the same VQGAN's codes) expects at each position given the
    codes before it (``expected_codes``): a prior over whole code grids, learnt from real scenes.
    Each step goes through CLIP in chunks of at most ``max_views`` views (see ``MAX_VIEWS``);
    each image's latent sees only its own loss, so the chunks' gradients add up to the whole
    batch's. Returns ``images`` (B, 3, H, W) decoded from the final codes,
    the per-step mean ``losses``, the final per-image ``loss`` (B,) and ``frames``
    [(step, images)] every ``record_every`` steps.
    """
    if text_features.shape[0] != z0.shape[0]:
        raise ValueError(f"one text embedding per latent: got {text_features.shape[0]} and "
                         f"{z0.shape[0]}")
    if prior < 0:
        raise ValueError(f"prior is a weight >= 0 (0: no pull towards the background), "
                         f"got {prior}")
    if dalle_prior < 0:
        raise ValueError(f"dalle_prior is a weight >= 0 (0: no DALL-E prior), got {dalle_prior}")
    if dalle_prior and code_model is None:
        raise ValueError("dalle_prior > 0 needs code_model: a mini DALL-E trained on this "
                         "VQGAN's codes (zoo 'dalle')")
    if dalle_prior and code_model.config.num_codes != codebook(vq).shape[0]:
        raise ValueError(f"code_model draws {code_model.config.num_codes} codes but the VQGAN "
                         f"has {codebook(vq).shape[0]}: use a DALL-E trained on this VQGAN")
    for p in list(vq.parameters()) + list(clip.parameters()) + (
            list(code_model.parameters()) if dalle_prior else []):
        p.requires_grad_(False)                    # only z is optimised
    cb = codebook(vq).detach()
    lo, hi = cb.min(0).values.view(1, -1, 1, 1), cb.max(0).values.view(1, -1, 1, 1)
    z = z0.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr * float(cb.std()))
    empty = background_latent(vq).view(1, -1, 1, 1) if prior else None
    B, n = z.shape[0], (n_cutouts if augment else 1)
    chunks = [slice(a, min(a + chunk_size(n, max_views), B))
              for a in range(0, B, chunk_size(n, max_views))]
    target = text_features.detach().repeat_interleave(n, dim=0)    # (B n, E)
    if z.device.type != "cpu":
        # the cutouts' random numbers are drawn where the images are: on the CPU they would take
        # most of a GPU search's time (a generator on the GPU, seeded from ``generator``)
        seed = int(torch.randint(2**62, (1,), generator=generator))
        generator = torch.Generator(device=z.device).manual_seed(seed)
    losses, frames = [], []
    for i in range(steps):
        record = record_every and i % record_every == 0
        opt.zero_grad(set_to_none=True)
        total, shown, draws = 0.0, [], None
        for c in chunks:
            images = decode_latent(vq, z[c])                            # (b, 3, H, W)
            if record:
                shown.append(images.detach().cpu())
            views = images
            if augment:
                if draws is None:    # all B n views' numbers at once: the same stream, chunked
                    draws = crop_draws((B * n, *images.shape[1:]), generator)   # or not
                v = slice(c.start * n, c.stop * n)
                views = cutouts(images, n, min_scale, noise, draws=(draws[0][:, v], draws[1][v]))
            per_view = spherical_distance(clip.encode_image(views), target[c.start * n:c.stop * n])
            loss = per_view.view(-1, n).mean(1)                         # (b,)
            pull = (prior * ((z[c] - empty) / cb.std()).pow(2).mean((1, 2, 3))
                    if prior else 0.0)
            if dalle_prior:
                zc = z[c].detach()
                codes = vq.quantizer(zc)[1].view(len(zc), *zc.shape[2:])        # (b, h, w)
                expected = expected_codes(code_model, codes, cb)
                pull = pull + dalle_prior * ((z[c] - expected) / cb.std()).pow(2).mean((1, 2, 3))
            (loss + pull).sum().backward()         # sum: each image's latent sees its own loss
            total += float(loss.detach().sum())
        if record:
            frames.append((i, torch.cat(shown)))
        opt.step()
        with torch.no_grad():
            z.copy_(torch.maximum(torch.minimum(z, hi), lo))
        losses.append(total / B)
    with torch.no_grad():
        z = z.detach()
        images = torch.cat([decode_latent(vq, z[c]) for c in chunks])
        final = torch.cat([spherical_distance(clip.encode_image(images[c]), text_features[c])
                           for c in chunks])
    frames.append((steps, images.cpu()))
    return {"images": images.cpu(), "losses": losses, "loss": final.cpu(),
            "frames": frames if record_every else []}


@settings
class SearchSettings:
    """How the search runs (``minit2i.presets`` has one per preset); see ``optimise``."""

    steps: int
    lr: float = 0.1
    n_cutouts: int = 16
    augment: bool = True
    min_scale: float = 0.8
    noise: float = 0.1
    prior: float = 0.0                 # pull towards the empty canvas (see optimise)
    dalle_prior: float = 0.0           # pull towards a caption-free DALL-E's codes (optimise)

    def __post_init__(self):
        for name in ("prior", "dalle_prior"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} is a weight >= 0 (0: off), got {getattr(self, name)}")


def generate_images(prompts: list[str], seed: int = 0, steps: int | None = None, *,
                    init_images: torch.Tensor | None = None, preset: str | None = None,
                    device=None, **kw) -> np.ndarray:
    """Text to image by VQGAN+CLIP: np.uint8 (N, 64, 64, 3), one optimisation per prompt, batched.

    Steps, step size and cutouts come from the preset's recipe ``vqgan_clip`` unless given (any
    other setting of ``SearchSettings`` may be passed by name). ``init_images`` (N, 3, H, W) in
    [-1, 1] start from their encodings instead of from random codes. The same seed gives the
    same images.
    """
    from .presets import recipe
    from .zoo import load_or_train

    prompts = check_prompts(prompts)
    search = recipe("vqgan_clip", preset).train.replace(**kw)
    if steps is not None:
        search = search.replace(steps=steps)
    vq = load_or_train("vqgan", preset, device=device, verbose=False)
    device = next(vq.parameters()).device
    clip = load_or_train("clip", preset, device=device, verbose=False)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        text = clip.encode_text(Tokenizer().encode_batch(prompts).to(device))
        if init_images is not None:
            if len(init_images) != len(prompts):
                raise ValueError(f"{len(init_images)} init_images for {len(prompts)} prompts")
            z0 = vq.encoder(init_images.to(device))
        else:
            z0 = random_latent(vq, len(prompts), g)
    code_model = None
    if search.dalle_prior:
        code_model = load_or_train("dalle", preset, device=device, verbose=False)
    out = optimise(vq, clip, text, z0, generator=g, code_model=code_model, **vars(search))
    return to_uint8_image(out["images"]).permute(0, 2, 3, 1).numpy()
