r"""CLIP: a text encoder and an image encoder trained to agree, by a symmetric InfoNCE loss.

With L2-normalised image features $I \in \mathbb{R}^{B \times D}$, text features $T$ (row $i$ of
each describes the same scene) and a learned scale $s = e^{t}$, the logits are
$L = s\, I T^\top$ and

$$
\mathcal{L} = \tfrac{1}{2}\left[\mathrm{CE}(L, y) + \mathrm{CE}(L^\top, y)\right],
\qquad y_{ij} = \frac{[g_i = g_j]}{\sum_k [g_i = g_k]},
$$

a cross-entropy over the batch in both directions (Radford et al., 2021, "Learning transferable
visual models from natural language supervision"; the loss is CPC's InfoNCE, van den Oord et
al., 2018). With all-distinct scene ids $g$ the targets are the identity (the textbook CLIP
loss); items that describe the same scene share their probability mass instead of being pushed
apart as false negatives. See chapter 4, "CLIP".
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import autocast, settings
from .data import ShapesDataset
from .shapes import (
    COLORS,
    POSITIONS,
    SHAPES,
    SIZES,
    Obj,
    Scene,
    caption,
    corrupt,
    render,
    to_float_image,
    to_uint8_image,
)
from .text import Tokenizer
from .train import OptimizerStep, batches_from, fit, param_groups
from .transformer import Transformer

MAX_LOG_SCALE = math.log(100.0)      # CLIP clamps s = e^t at 100 so the logits cannot explode


def positive_targets(groups: torch.Tensor) -> torch.Tensor:
    """Soft targets (B, B): row i spreads 1 evenly over the items j with groups[j] == groups[i]."""
    same = (groups[:, None] == groups[None, :]).float()             # (B, B), symmetric
    return same / same.sum(dim=1, keepdim=True)


def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor,
              logit_scale: torch.Tensor | float, groups: torch.Tensor | None = None,
              negatives: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE of L2-normalised features (B, D); ``logit_scale`` is s = exp(t).

    ``groups`` (B,) are scene ids: items with the same id are all positives of each other.
    Without it, item i matches only item i (targets = arange(B)). ``negatives`` (M, D) are
    extra captions that describe no image of the batch (hard negatives: a true caption with one
    attribute changed, as in NegCLIP, Yuksekgonul et al., 2023): each image must also beat
    them, so the image-to-text softmax runs over B + M captions.
    """
    if image_features.ndim != 2 or text_features.ndim != 2:
        raise ValueError(f"expected image and text features of shape (B, D), got "
                         f"{tuple(image_features.shape)} and {tuple(text_features.shape)}")
    if image_features.shape != text_features.shape:
        raise ValueError(f"image features {tuple(image_features.shape)} and text features "
                         f"{tuple(text_features.shape)} must have the same shape (B, D): one "
                         "caption per image, both projected to the same D")
    B = image_features.shape[0]
    if groups is not None and groups.shape != (B,):
        raise ValueError(f"expected groups of shape ({B},), one scene id per item, "
                         f"got {tuple(groups.shape)}")
    D = text_features.shape[1]
    if negatives is not None and (negatives.ndim != 2 or negatives.shape[1] != D):
        raise ValueError(f"expected negatives of shape (M, {D}), got "
                         f"{tuple(negatives.shape)}")
    logits = logit_scale * image_features @ text_features.T          # (B, B): s I T^T
    extra = (logit_scale * image_features @ negatives.T if negatives is not None
             else logits.new_zeros(B, 0))                            # (B, M)
    if groups is None:
        labels = torch.arange(B, device=logits.device)
        return (F.cross_entropy(torch.cat([logits, extra], 1), labels)
                + F.cross_entropy(logits.T, labels)) / 2
    y = positive_targets(groups).to(logits.dtype)                   # (B, B), rows sum to 1
    y_extra = torch.cat([y, y.new_zeros(B, extra.shape[1])], 1)     # negatives get no mass
    loss_i = -(y_extra * F.log_softmax(torch.cat([logits, extra], 1), dim=1)).sum(1).mean()
    loss_t = -(y * F.log_softmax(logits.T, dim=1)).sum(1).mean()    # text -> which image
    return (loss_i + loss_t) / 2


@settings
class CLIPConfig:
    embed_dim: int = 64          # D of the shared space both encoders project into
    text_dim: int = 64
    text_depth: int = 2
    text_heads: int = 4
    image_width: int = 32        # channels of the CNN's first stage; doubled twice on the way down
    image_size: int = 64
    vocab_size: int = Tokenizer().vocab_size
    max_length: int = Tokenizer.max_length
    init_temperature: float = 0.07   # tau; s = 1 / tau = e^t at the start, as in CLIP

    def __post_init__(self):
        if self.image_size % 16:
            raise ValueError(f"image_size must be a multiple of 16, got {self.image_size}")
        if self.text_dim % self.text_heads:
            raise ValueError(f"text_dim {self.text_dim} is not divisible by text_heads "
                             f"{self.text_heads}")


class TextEncoder(nn.Module):
    """tokens (B, L) -> features (B, D): a causal transformer read out at the eos token."""

    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        self.eos_id = Tokenizer().eos_id
        self.tok = nn.Embedding(cfg.vocab_size, cfg.text_dim)
        self.pos = nn.Parameter(0.02 * torch.randn(1, cfg.max_length, cfg.text_dim))
        self.body = Transformer(cfg.text_dim, cfg.text_depth, cfg.text_heads)
        self.proj = nn.Linear(cfg.text_dim, cfg.embed_dim, bias=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 2 or tokens.shape[1] > self.pos.shape[1]:
            raise ValueError(f"expected tokens of shape (B, L) with L <= {self.pos.shape[1]}, "
                             f"got {tuple(tokens.shape)}")
        is_eos = tokens == self.eos_id
        if not is_eos.any(dim=1).all():
            raise ValueError("every caption needs an eos token (id "
                             f"{self.eos_id}); encode captions with minit2i.text.Tokenizer")
        x = self.tok(tokens) + self.pos[:, :tokens.shape[1]]           # (B, L, text_dim)
        # Causal: position i sees tokens <= i, so the eos state has read the whole caption and
        # none of the padding after it.
        x = self.body(x, is_causal=True)
        eos = is_eos.int().argmax(dim=1)                                # first eos of each row
        return self.proj(x[torch.arange(len(x), device=x.device), eos])  # (B, D)


class ImageEncoder(nn.Module):
    """images (B, 3, H, W) -> features (B, D): a small CNN down to H/16, flattened.

    Flattening (rather than averaging over space) keeps *where* things are, which the captions
    name ("in the top left").
    """

    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        w = cfg.image_width
        chans = [w, w, 2 * w, 4 * w, 4 * w]                            # 64 -> 64, 32, 16, 8, 4
        layers, c_in = [], 3
        for k, c in enumerate(chans):
            layers += [nn.Conv2d(c_in, c, 3, stride=1 if k == 0 else 2, padding=1),
                       nn.GroupNorm(math.gcd(8, c), c), nn.GELU()]
            c_in = c
        self.features = nn.Sequential(*layers)
        side = cfg.image_size // 16
        self.proj = nn.Linear(c_in * side * side, cfg.embed_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.proj(self.features(images).flatten(1))              # (B, D)


class CLIP(nn.Module):
    """Two encoders into one space, and the log-scale t (``logit_scale``), s = exp(t) <= 100."""

    def __init__(self, cfg: CLIPConfig):
        super().__init__()
        self.cfg = cfg
        self.text = TextEncoder(cfg)
        self.image = ImageEncoder(cfg)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / cfg.init_temperature)))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1:] != (3, self.cfg.image_size, self.cfg.image_size):
            raise ValueError(f"expected images of shape (B, 3, {self.cfg.image_size}, "
                             f"{self.cfg.image_size}) in [-1, 1], got {tuple(images.shape)}")
        return F.normalize(self.image(images).float(), dim=-1)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text(tokens).float(), dim=-1)

    def scale(self) -> torch.Tensor:
        """s = exp(t), clamped at 100."""
        return self.logit_scale.clamp(max=MAX_LOG_SCALE).exp()

    def forward(self, images: torch.Tensor, tokens: torch.Tensor):
        return self.encode_image(images), self.encode_text(tokens)


def crop_draws(shape: tuple[int, ...], generator: torch.Generator | None = None,
               device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The random numbers of ``random_crops`` for views of ``shape`` (B, 3, H, W), in the order
    it draws them: u (4, B) uniform (scale, shift x, shift y, noise strength), eps (B, 3, H, W)
    Gaussian; on the generator's device, else on ``device`` (default the CPU)."""
    device = generator.device if generator is not None else device
    return (torch.rand(4, shape[0], generator=generator, device=device),
            torch.randn(shape, generator=generator, device=device))


def random_crops(images: torch.Tensor, min_scale: float = 0.8, noise: float = 0.1,
                 generator: torch.Generator | None = None,
                 draws: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """One random view per image (B, 3, H, W): a square crop covering ``min_scale``..1 of the
    side, resized back (differentiably), plus Gaussian noise of random strength <= ``noise``.

    No flips, and large crops: Shapes captions name positions. CLIP trains on such views (as
    the original trained on random crops), and chapter 7's cutouts are the same views.
    ``draws`` (from ``crop_draws``) gives the random numbers instead of ``generator``.
    """
    if images.ndim != 4:
        raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
    if not 0 < min_scale <= 1:
        raise ValueError(f"min_scale must be in (0, 1], got {min_scale}")
    B, dev, dtype = images.shape[0], images.device, images.dtype
    # without a generator, drawn where the images are (a GPU need not wait for the CPU's)
    u, eps = draws if draws is not None else crop_draws(images.shape, generator, dev)
    if u.shape != (4, B) or eps.shape != images.shape:
        raise ValueError(f"draws for {B} views of {tuple(images.shape[1:])} should be (4, {B}) "
                         f"and {tuple(images.shape)}, got {tuple(u.shape)} and "
                         f"{tuple(eps.shape)}")
    u, eps = u.to(dev, dtype), eps.to(dev, dtype)
    scale = min_scale + (1 - min_scale) * u[0]                        # crop side / image side
    shift = (1 - scale) * (2 * u[1:3] - 1)                            # keeps the crop inside
    theta = torch.zeros(B, 2, 3, device=dev, dtype=dtype)
    theta[:, 0, 0], theta[:, 1, 1] = scale, scale
    theta[:, 0, 2], theta[:, 1, 2] = shift[0], shift[1]
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    views = F.grid_sample(images, grid, mode="bilinear", align_corners=False)
    return views + noise * u[3].view(-1, 1, 1, 1) * eps


@settings
class CLIPTrain:
    """How a CLIP trains (``minit2i.presets`` has one per preset)."""

    steps: int
    batch_size: int
    n_train: int
    lr: float = 1e-3
    warmup: int = 0
    weight_decay: float = 0.1
    augment: bool = False         # the image encoder sees random_crops of the images
    hard_negatives: bool = False  # each caption also brings a false one (shapes.corrupt)
    images_through: str | None = None  # a zoo image tokenizer: the image encoder sees its
                                       # reconstructions (codes, decoded) instead of renders
    n_eval: int = 500             # one-object val scenes for the zero-shot scores
    seed: int = 0                 # clip and clip_b differ only here
    log_every: int = 25


def make_train_step(model: CLIP, lr: float, steps: int, weight_decay: float = 0.1,
                    warmup: int = 0, device="cpu", augment: bool = False):
    """A ``step(batch, i)`` for ``train.fit`` on batches (images, tokens, scene ids) or
    (images, tokens, scene ids, hard-negative tokens).

    AdamW without decay on biases, norms, embeddings and the temperature
    (``minit2i.train.param_groups``; a frozen parameter is left out). With ``augment`` the
    image encoder sees ``random_crops`` of the images.
    """
    update = OptimizerStep(param_groups(model, weight_decay), lr, device=device,
                           betas=(0.9, 0.98), eps=1e-6, steps=steps, warmup=warmup, clip=None)

    def step(batch, i):
        images, tokens, groups, *negative_tokens = batch
        x = to_float_image(images)
        with autocast(device):
            img, txt = model(random_crops(x) if augment else x, tokens)
            negatives = model.encode_text(negative_tokens[0]) if negative_tokens else None
        loss = clip_loss(img, txt, model.scale(), groups, negatives)
        update.update(loss)
        with torch.no_grad():                       # keep t itself in [0, ln 100], as CLIP does
            model.logit_scale.clamp_(0, MAX_LOG_SCALE)
        return {"loss": loss.detach(), "scale": model.scale().detach()}

    return step


def train_clip(model: CLIP, train: CLIPTrain, device, preset: str | None = None) -> dict:
    """The zoo's trainer: ``steps`` steps on Shapes scenes, then the chapter's measurements."""
    data = ShapesDataset("train", n=train.n_train, size=model.cfg.image_size, seed=train.seed)
    images, tokens, _ = data.tensors()
    if train.images_through:
        images = through_tokenizer(images, train.images_through, preset, device)
    groups = scene_ids(data)
    extra = (hard_negative_tokens(data, train.seed),) if train.hard_negatives else ()
    batches = batches_from(images, tokens, groups, *extra, batch_size=train.batch_size,
                           device=device, seed=train.seed)
    step = make_train_step(model.train(), train.lr, train.steps, train.weight_decay,
                           train.warmup, device, train.augment)
    hist = fit(step, batches, train.steps, log_every=train.log_every, desc="clip")
    metrics = {"loss": hist.last("loss"), "scale": hist.last("scale"), "seconds": hist.seconds,
               "curve_steps": [float(s) for s in hist.steps], "curve_loss": hist["loss"]}
    metrics.update(evaluate(model.eval(), n=train.n_eval))
    return metrics


def through_tokenizer(images: torch.Tensor, tokenizer: str, preset: str | None, device,
                      batch_size: int = 256) -> torch.Tensor:
    """uint8 images (N, 3, H, W) as the zoo's ``tokenizer`` reconstructs them: encoded to codes
    and decoded again (what a picture drawn in codes looks like), uint8, on the CPU."""
    from .zoo import load_or_train

    vq = load_or_train(tokenizer, preset, device=device, verbose=False).eval()  # may train
    with torch.no_grad():
        return torch.cat([to_uint8_image(vq.decode_indices(vq.encode(
            to_float_image(x.to(device))))).cpu() for x in images.split(batch_size)])


# ---------------------------------------------------------------------------------------------
# Measuring a CLIP: scene ids, embeddings, retrieval and zero-shot classification
# ---------------------------------------------------------------------------------------------

def scene_key(scene: Scene) -> str:
    """What a caption pins down about a scene, as its canonical caption (no jitter, no synonyms)."""
    return caption(scene.described())


def hard_negative_tokens(data: ShapesDataset, seed: int = 0) -> torch.Tensor:
    """(N, L): for each item a caption of its scene with one attribute changed (``corrupt``),
    in the item's own phrasing style drawn afresh."""
    rng = np.random.default_rng([seed, 17])
    tok = Tokenizer()
    return torch.stack([tok.encode(caption(corrupt(data.scene_and_caption(i)[0], rng), rng),
                                   data.max_length) for i in range(len(data))])


def scene_ids(data: ShapesDataset) -> torch.Tensor:
    """(N,) long: equal ids for items whose captions describe the same scene (the positives)."""
    ids: dict[str, int] = {}
    keys = [scene_key(data.scene_and_caption(i)[0]) for i in range(len(data))]
    return torch.tensor([ids.setdefault(k, len(ids)) for k in keys], dtype=torch.long)


def distinct_scenes(split: str, n: int, n_objects=(1, 2), seed: int = 0, size: int = 64):
    """Up to n items of ``split`` with pairwise different scene keys: uint8 images (n, 3, H, W),
    their captions and scenes. Retrieval among them has exactly one right answer per query."""
    data = ShapesDataset(split, n=50 * n, size=size, seed=seed, n_objects=n_objects)
    seen, keep = set(), []
    for i in range(len(data)):
        key = scene_key(data.scene_and_caption(i)[0])
        if key not in seen:
            seen.add(key)
            keep.append(i)
        if len(keep) == n:
            break
    scenes, captions = zip(*(data.scene_and_caption(i) for i in keep), strict=True)
    images = torch.stack([torch.from_numpy(render(s, size)).permute(2, 0, 1) for s in scenes])
    return images, list(captions), list(scenes)


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def embed_images(model: CLIP, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """(N, D) features of uint8 or [-1, 1] float images (N, 3, H, W), on the CPU."""
    out = []
    for chunk in images.split(batch_size):
        x = chunk.to(_device(model))
        out.append(model.encode_image(to_float_image(x) if x.dtype == torch.uint8 else x).cpu())
    return torch.cat(out)


@torch.no_grad()
def embed_texts(model: CLIP, texts: list[str], batch_size: int = 1024) -> torch.Tensor:
    """(N, D) features of captions, on the CPU."""
    tokens = Tokenizer().encode_batch(texts, model.cfg.max_length)
    return torch.cat([model.encode_text(t.to(_device(model))).cpu()
                      for t in tokens.split(batch_size)])


def recall_at_k(image_features: torch.Tensor, text_features: torch.Tensor,
                ks=(1, 5)) -> dict[str, float]:
    """Retrieval with item i the only right answer: fraction of queries whose answer ranks <= k."""
    sim = image_features @ text_features.T                         # (N, N), rows = images
    right = sim.diagonal()[:, None]
    rank_t2i = (sim > right.T).sum(0)                               # images beating the right one
    rank_i2t = (sim > right).sum(1)                                 # texts beating the right one
    return {f"{name}_R@{k}": float((rank < k).float().mean())
            for k in ks for name, rank in (("t2i", rank_t2i), ("i2t", rank_i2t))}


ATTRIBUTES = {"color": tuple(COLORS), "shape": SHAPES, "size": SIZES, "position": POSITIONS}


def attribute_prompts(attribute: str) -> list[list[str]]:
    """Per class of ``attribute``, every canonical one-object caption with that value (an
    ensemble of prompts over the other attributes)."""
    if attribute not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {attribute!r}; known: {', '.join(ATTRIBUTES)}")
    objs = [Obj(s, c, z, p) for c in COLORS for s in SHAPES for z in SIZES for p in POSITIONS]
    return [[caption(Scene((o,))) for o in objs if getattr(o, attribute) == v]
            for v in ATTRIBUTES[attribute]]


def class_embeddings(model: CLIP, prompts_per_class: list[list[str]]) -> torch.Tensor:
    """(C, D): the normalised mean of each class's prompt embeddings (CLIP's prompt ensembling)."""
    return F.normalize(torch.stack([embed_texts(model, ps).mean(0) for ps in prompts_per_class]),
                       dim=-1)


def zero_shot_logits(model: CLIP, image_features: torch.Tensor,
                     prompts_per_class: list[list[str]], ensemble: str = "marginal"
                     ) -> torch.Tensor:
    r"""(N, C) class scores. ``"mean"``: cosine with ``class_embeddings``. ``"marginal"``:
    \log \sum_{p \in P_c} e^{s\, I \cdot T_p}, the log of the probability the model gives to
    all of class c's prompts together (the other attributes summed out)."""
    if ensemble == "mean":
        return image_features @ class_embeddings(model, prompts_per_class).T
    if ensemble != "marginal":
        raise ValueError(f"unknown ensemble {ensemble!r}; use 'marginal' or 'mean'")
    s = float(model.scale().detach())
    return torch.stack([torch.logsumexp(s * image_features @ embed_texts(model, ps).T, dim=1)
                        for ps in prompts_per_class], dim=1)


def zero_shot_accuracy(model: CLIP, images: torch.Tensor, scenes: list[Scene],
                       attribute: str, ensemble: str = "marginal") -> float:
    """Accuracy of the top class on one-object scenes, with the prompts of ``attribute_prompts``."""
    logits = zero_shot_logits(model, embed_images(model, images), attribute_prompts(attribute),
                              ensemble)
    truth = torch.tensor([ATTRIBUTES[attribute].index(getattr(s.objects[0], attribute))
                          for s in scenes])
    return float((logits.argmax(1) == truth).float().mean())


def evaluate(model: CLIP, n: int = 500, n_retrieval: int = 100) -> dict[str, float]:
    """Zero-shot colour/shape/position/size accuracy on one-object ``val`` scenes, and R@1, R@5
    among ``n_retrieval`` distinct scenes of ``val`` and of ``heldout``."""
    data = ShapesDataset("val", n=n, n_objects=1, size=model.cfg.image_size, seed=1)
    images, _, _ = data.tensors()
    scenes = [data.scene_and_caption(i)[0] for i in range(n)]
    out = {f"zero_shot_{a}": zero_shot_accuracy(model, images, scenes, a) for a in ATTRIBUTES}
    for split in ("val", "heldout"):
        imgs, caps, _ = distinct_scenes(split, n_retrieval, size=model.cfg.image_size)
        rec = recall_at_k(embed_images(model, imgs), embed_texts(model, caps))
        out.update({f"{split}_{k}": v for k, v in rec.items()})
    return out
