r"""A mini DALL-E: one decoder-only transformer over [caption tokens; image tokens].

A caption becomes word tokens $t_1 \dots t_L$ (``text.Tokenizer``, starting with ``<bos>``); an
image becomes an $h \times w$ grid of codes $c_1 \dots c_N$ (chapter 3's VQ-VAE or chapter 5's
VQGAN), read row by row. The two are one sequence, modelled left to right by a causal transformer:

$$
p(t, c) = \prod_{i=2}^{L} p(t_i \mid t_{<i}) \prod_{n=1}^{N} p(c_n \mid t, c_{<n}), \qquad
\mathcal{L} = \tfrac{1}{8}\,\mathcal{L}_{\text{text}} + \tfrac{7}{8}\,\mathcal{L}_{\text{image}}
$$

(Ramesh et al., 2021, "Zero-shot text-to-image generation", who weight the two cross-entropies
1 : 7 because the image is what we want). Text and image tokens have their own embeddings and
positions (a row and a column embedding for the image), and each position's logits are masked to
the vocabulary it must produce, so an image position can never sample a word. To draw, we feed a
caption and sample the codes one at a time, with a KV cache. See chapter 6, "A mini DALL-E".

Classifier-free guidance (Ho & Salimans, 2021; for autoregressive models as in Parti and
LlamaGen): training replaces a fraction ``caption_dropout`` of the captions by the empty caption
(``<bos>`` then padding), so the same model also learns $p(c_n \mid c_{<n})$; sampling then
draws from the logits $\ell_u + s\,(\ell_c - \ell_u)$ of the conditional ($\ell_c$) and the
caption-free ($\ell_u$) model. $s = 1$ is plain conditional sampling, $s = 0$ the caption-free
model, $s > 1$ pushes each code towards what the caption, more than the data at large, asks for.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import autocast, settings
from .data import ShapesDataset
from .shapes import check_prompts, to_float_image, to_uint8_image
from .text import Tokenizer
from .train import OptimizerStep, batches_from, fit, param_groups
from .transformer import Transformer

TEXT_VOCAB = Tokenizer().vocab_size


@settings
class DALLEConfig:
    text_vocab: int = TEXT_VOCAB
    text_len: int = 24                  # tokens per caption, <bos> and padding included
    num_codes: int = 512                # K, the image tokenizer's codebook size (must match it)
    grid: int = 8                       # the image is grid x grid codes
    dim: int = 256
    depth: int = 4
    n_heads: int = 8
    dropout: float = 0.0
    text_loss_weight: float = 1 / 8     # DALL-E's 1 : 7 text : image


class MiniDALLE(nn.Module):
    """Causal transformer over joint ids: text ids in [0, V), image code c as V + c."""

    def __init__(self, config: DALLEConfig):
        super().__init__()
        c = self.config = config
        self.n_image = c.grid * c.grid
        self.text_emb = nn.Embedding(c.text_vocab, c.dim)
        self.text_pos = nn.Parameter(0.02 * torch.randn(c.text_len, c.dim))
        self.image_emb = nn.Embedding(c.num_codes, c.dim)
        self.row_emb = nn.Parameter(0.02 * torch.randn(c.grid, c.dim))
        self.col_emb = nn.Parameter(0.02 * torch.randn(c.grid, c.dim))
        self.transformer = Transformer(c.dim, c.depth, c.n_heads, dropout=c.dropout)
        self.head = nn.Linear(c.dim, c.text_vocab + c.num_codes)
        # allowed[p]: the vocabulary the output at position p may predict (that of position p+1)
        pos = torch.arange(c.text_len + self.n_image)
        is_text = (pos + 1 < c.text_len)[:, None]                        # (P, 1)
        vocab_is_text = (torch.arange(c.text_vocab + c.num_codes) < c.text_vocab)[None, :]
        self.register_buffer("allowed", is_text == vocab_is_text, persistent=False)

    @property
    def seq_len(self) -> int:
        return self.config.text_len + self.n_image

    def empty_text(self, batch: int, device=None) -> torch.Tensor:
        """The empty caption (B, L): ``<bos>`` then padding. Its text loss is nothing (padding
        is not scored), so dropping captions trains only the caption-free image model."""
        text = torch.zeros(batch, self.config.text_len, dtype=torch.long, device=device)
        text[:, 0] = Tokenizer().bos_id
        return text

    def joint(self, text: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """One sequence of joint ids (B, L + N) from text (B, L) and codes (B, grid, grid)."""
        c = self.config
        if text.dim() != 2 or text.shape[1] != c.text_len:
            raise ValueError(f"expected text tokens of shape (B, {c.text_len}), "
                             f"got {tuple(text.shape)}")
        if codes.shape[1:] != (c.grid, c.grid):
            raise ValueError(f"expected image codes of shape (B, {c.grid}, {c.grid}), "
                             f"got {tuple(codes.shape)}")
        return torch.cat([text, codes.flatten(1) + c.text_vocab], dim=1)

    def embed(self, ids: torch.Tensor, start: int = 0) -> torch.Tensor:
        """Embeddings (B, T, D) of joint ids (B, T) that sit at positions start .. start+T-1."""
        c = self.config
        B, T = ids.shape
        if start + T > self.seq_len:
            raise ValueError(f"positions {start}..{start + T - 1} run past the sequence "
                             f"({c.text_len} text + {self.n_image} image tokens)")
        n_text = max(0, min(T, c.text_len - start))                    # text comes first
        parts = []
        if n_text:
            if ids[:, :n_text].min() < 0 or ids[:, :n_text].max() >= c.text_vocab:
                raise ValueError(f"text positions hold ids outside the text vocabulary "
                                 f"0..{c.text_vocab - 1}")
            pos = torch.arange(start, start + n_text, device=ids.device)
            parts.append(self.text_emb(ids[:, :n_text]) + self.text_pos[pos])
        if n_text < T:
            n = torch.arange(start + n_text, start + T, device=ids.device) - c.text_len
            row, col = n // c.grid, n % c.grid
            codes = ids[:, n_text:] - c.text_vocab
            if codes.min() < 0 or codes.max() >= c.num_codes:
                raise ValueError(f"image positions hold ids outside {c.text_vocab}.."
                                 f"{c.text_vocab + c.num_codes - 1} (codes offset by the "
                                 "text vocabulary)")
            parts.append(self.image_emb(codes) + self.row_emb[row] + self.col_emb[col])
        return torch.cat(parts, dim=1)                                   # (B, T, D)

    def forward(self, ids: torch.Tensor, start: int = 0, kv_cache=None) -> torch.Tensor:
        """Logits (B, T, V + K) for the token after each input; the wrong vocabulary is -inf."""
        h = self.transformer(self.embed(ids, start), is_causal=True, kv_cache=kv_cache)
        logits = self.head(h)
        allowed = self.allowed[start:start + ids.shape[1]]               # (T, V + K)
        return logits.masked_fill(~allowed, float("-inf"))

    def loss(self, text: torch.Tensor, codes: torch.Tensor) -> dict[str, torch.Tensor]:
        """The weighted next-token loss of captions and their images, and its two parts."""
        c = self.config
        seq = self.joint(text, codes)
        logits = self(seq[:, :-1])                                       # (B, L + N - 1, V + K)
        if logits.element_size() < 4:           # the cross-entropy in fp32 under mixed precision
            logits = logits.float()
        target = seq[:, 1:]
        split = c.text_len - 1                  # outputs 0..L-2 predict words, the rest codes
        text_loss = F.cross_entropy(logits[:, :split].flatten(0, 1),
                                    target[:, :split].flatten(), ignore_index=0)   # 0 = <pad>
        image_loss = F.cross_entropy(logits[:, split:].flatten(0, 1),
                                     target[:, split:].flatten())
        w = c.text_loss_weight
        return {"loss": w * text_loss + (1 - w) * image_loss, "text_loss": text_loss.detach(),
                "image_loss": image_loss.detach()}

    # Drawing: what sample_codes needs from a model (chapter 6's encoder-decoder has the same).
    def start(self, text: torch.Tensor) -> tuple[list, torch.Tensor]:
        """A KV cache holding the captions (B, L), and the logits (B, K) of the first code."""
        cache = self.transformer.new_cache()
        return cache, self(text, kv_cache=cache)[:, -1, self.config.text_vocab:]

    def step(self, cache: list, code: torch.Tensor, n: int) -> torch.Tensor:
        """Feed code n (B,) of the image; the logits (B, K) of code n + 1."""
        V = self.config.text_vocab
        return self((code + V)[:, None], start=self.config.text_len + n, kv_cache=cache)[:, -1, V:]

    def next_code_logits(self, text: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """The logits (B, K) of the next code after codes (B, n), recomputing everything."""
        V = self.config.text_vocab
        return self(torch.cat([text, codes + V], dim=1))[:, -1, V:]


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """One id per row of logits (B, V): greedy at temperature 0, else from softmax(logits / T)
    restricted to the top_k most likely ids."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits.float() / temperature
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be a positive integer or None, got {top_k}")
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


@settings
class Sampling:
    """How the mini DALL-E draws: temperature, top-k, guidance scale and CLIP re-ranking.

    The recipe's defaults are the settings benchmarks/dalle_levers.py measured as best."""

    temperature: float = 1.0
    top_k: int | None = None
    guidance: float = 1.0          # s; 1 = plain conditional sampling (needs caption dropout)
    plausible: float = 0.0         # with guidance: only codes whose conditional probability is
                                   # at least this fraction of the likeliest code's
    candidates: int = 1            # > 1: best of that many samples by CLIP

    def __post_init__(self):
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.top_k is not None and (not isinstance(self.top_k, int) or self.top_k < 1):
            raise ValueError(f"top_k must be a positive integer or None, got {self.top_k!r}")
        if self.guidance < 0:
            raise ValueError(f"guidance must be >= 0 (1 = no guidance), got {self.guidance}")
        if not 0 <= self.plausible < 1:
            raise ValueError(f"plausible must be in [0, 1) (0 = every code), got {self.plausible}")
        if not isinstance(self.candidates, int) or self.candidates < 1:
            raise ValueError(f"candidates must be a positive integer, got {self.candidates!r}")


def guided_logits(cond: torch.Tensor, uncond: torch.Tensor, scale: float,
                  plausible: float = 0.0) -> torch.Tensor:
    """Classifier-free guidance: l_u + s (l_c - l_u), rows of logits over the same ids.

    The guided logit of a code grows with its ratio p_c / p_u, however unlikely it is: a code the
    caption makes 100 times likelier but still has probability 1e-4 can win. With ``plausible``
    = a > 0, only codes with p_c >= a max p_c keep their guided logit (the others get -inf),
    the "plausibility constraint" of contrastive decoding (Li et al., 2023)."""
    guided = uncond + scale * (cond - uncond)
    if plausible > 0:
        logp = torch.log_softmax(cond.float(), dim=-1)
        floor = logp.max(dim=-1, keepdim=True).values + math.log(plausible)
        guided = guided.masked_fill(logp < floor, float("-inf"))
    return guided


@torch.no_grad()
def sample_codes(model: nn.Module, text: torch.Tensor, temperature: float = 1.0,
                 top_k: int | None = None, generator: torch.Generator | None = None,
                 use_cache: bool = True, guidance: float = 1.0, plausible: float = 0.0
                 ) -> torch.Tensor:
    """Image codes (B, grid, grid) for captions (B, L), drawn token by token.

    With ``use_cache`` each step feeds only the newest code and reuses the keys and values of
    the earlier tokens; without it every step recomputes the whole sequence (same codes, slower).
    With ``guidance`` s != 1 the batch also runs with the empty caption and each code is drawn
    from the guided logits (see ``guided_logits``, and its ``plausible``).
    """
    c = model.config
    B = text.shape[0]
    guided = guidance != 1.0
    if guided:
        text = torch.cat([text, model.empty_text(B, text.device)])         # (2B, L)
    codes = text.new_zeros(len(text), 0)                                   # drawn so far
    if use_cache:
        cache, logits = model.start(text)
    else:
        logits = model.next_code_logits(text, codes)
    for n in range(model.n_image):
        logits = logits.float()                                            # (B or 2B, K)
        if guided:
            logits = guided_logits(logits[:B], logits[B:], guidance, plausible)
        code = sample_next(logits, temperature, top_k, generator)          # (B,)
        code = code.repeat(2) if guided else code                          # both halves
        codes = torch.cat([codes, code[:, None]], dim=1)
        if n == model.n_image - 1:
            break
        logits = model.step(cache, code, n) if use_cache else model.next_code_logits(text, codes)
    return codes[:B].view(B, c.grid, c.grid)


# ---------------------------------------------------------------------------------------------
# Data, training (for the zoo) and drawing
# ---------------------------------------------------------------------------------------------

@torch.no_grad()
def encode_images(vq: nn.Module, images: torch.Tensor, device, batch_size: int = 256
                  ) -> torch.Tensor:
    """VQ codes (N, h, w) on the CPU of uint8 images (N, 3, H, W), encoded in batches."""
    vq.eval()
    return torch.cat([vq.encode(to_float_image(x.to(device))).cpu()
                      for x in images.split(batch_size)])


def shapes_tokens(vq: nn.Module, split: str, n: int, seed: int, device, text_len: int = 24,
                  n_objects: int | tuple[int, ...] = (1, 2)) -> tuple[torch.Tensor, torch.Tensor]:
    """Captions (n, text_len) and image codes (n, h, w) of n Shapes scenes (by default an even
    mix of one- and two-object scenes)."""
    images, text, _ = ShapesDataset(split, n, seed=seed, max_length=text_len,
                                    n_objects=n_objects).tensors()
    return text, encode_images(vq, images, device)


@torch.no_grad()
def evaluate(model: MiniDALLE, text: torch.Tensor, codes: torch.Tensor, batch_size: int = 256
             ) -> dict[str, float]:
    """Mean losses over a whole set (the model is left in eval mode)."""
    model.eval()
    device = next(model.parameters()).device
    sums: dict[str, float] = {}
    for t, c in zip(text.split(batch_size), codes.split(batch_size), strict=True):
        with autocast(device):
            out = model.loss(t.to(device), c.to(device))
        for k, v in out.items():
            sums[k] = sums.get(k, 0.0) + float(v) * len(t)
    return {k: v / len(text) for k, v in sums.items()}


def single_object_prompts(split: str, n: int, seed: int = 2) -> list[str]:
    """Captions of n one-object scenes of a split (seed 2: scenes apart from the losses' sets)."""
    ds = ShapesDataset(split, n, seed=seed, n_objects=1)
    return [ds.scene_and_caption(i)[1] for i in range(n)]


def judged_accuracy(model: MiniDALLE, vq: nn.Module, prompts: list[str], seed: int = 0,
                    sampling: Sampling | None = None) -> float:
    """Fraction of one-object prompts drawn with the right shape and colour, by the judge."""
    from .eval import shapes_eval

    return shapes_eval(draw(model, vq, prompts, seed=seed, sampling=sampling), prompts)["colour"]


@settings
class DALLETrain:
    """How the mini DALL-E trains (``minit2i.presets`` has one per preset)."""

    steps: int
    batch_size: int
    n_train: int                  # pre-rendered, pre-tokenised training scenes
    n_val: int = 256              # scenes of the val split and of held-out pairs, for the losses
    lr: float = 1e-3
    warmup: int | None = None     # None: 5 % of the steps
    weight_decay: float = 0.01
    caption_dropout: float = 0.0  # fraction of captions replaced by the empty one (for guidance)
    tokenizer: str = "vqgan"      # the zoo's image tokenizer: "vqgan" (chapter 5) or "vqvae"
    n_objects: tuple[int, ...] = (1, 2)   # objects per training scene (an even mix)
    eval_every: int = 500         # a multiple of log_every
    n_judge: int = 0              # prompts drawn and judged at each evaluation (0: none)
    patience: int = 0             # stop after this many evaluations without a better held-out
    seed: int = 0                 # loss (0: never stop early)
    log_every: int = 25

    def __post_init__(self):
        if not 0 <= self.caption_dropout < 1:
            raise ValueError(f"caption_dropout must be in [0, 1), got {self.caption_dropout}")
        if self.eval_every % self.log_every:
            raise ValueError(f"eval_every ({self.eval_every}) must be a multiple of log_every "
                             f"({self.log_every}): evaluations happen at the end of a window")


def make_dalle_step(model: MiniDALLE, train: DALLETrain, device):
    """One training step of the mini DALL-E, ``step((text, codes), i) -> dict`` for
    ``minit2i.train.fit``: a fraction ``caption_dropout`` of the captions replaced by the empty
    one (for guidance), the weighted loss, one AdamW step (warmup, cosine decay, clipping)."""
    warmup = train.steps // 20 if train.warmup is None else train.warmup
    update = OptimizerStep(param_groups(model, train.weight_decay), train.lr, device=device,
                           betas=(0.9, 0.95), steps=train.steps, warmup=warmup, clip=1.0)
    g = torch.Generator(device="cpu").manual_seed(train.seed)
    empty = model.empty_text(1, device)

    def step(batch, i):
        text, codes = batch
        if train.caption_dropout:
            drop = (torch.rand(len(text), generator=g) < train.caption_dropout).to(device)
            text = torch.where(drop[:, None], empty, text)
        model.train()
        with autocast(device):
            out = model.loss(text, codes)
        update.update(out["loss"])
        return {k: v.detach() for k, v in out.items()}

    return step


def train_dalle(model: MiniDALLE, train: DALLETrain, device, preset: str | None = None) -> dict:
    """Train on tokenised Shapes scenes; keep the weights with the best held-out-pair loss.

    The image tokenizer is the zoo's ``train.tokenizer`` for the same ``preset``. Every
    ``eval_every`` steps the loss is measured on validation scenes and on scenes made only of the
    colour x shape pairs the training set never shows; the best weights on the latter are kept,
    and training stops after ``patience`` evaluations without improvement. With ``n_judge``,
    each evaluation also draws that many one-object prompts of each kind and records the fraction
    the judge finds right (the curve of memorisation against generalisation).
    """
    from .zoo import load_or_train

    vq = load_or_train(train.tokenizer, preset, device=device)
    c = model.config
    if (vq.num_codes, vq.grid) != (c.num_codes, c.grid):
        raise ValueError(f"the {train.tokenizer} has {vq.num_codes} codes on a {vq.grid}x"
                         f"{vq.grid} grid, the dalle recipe expects {c.num_codes} on {c.grid}x"
                         f"{c.grid}: make the recipes in minit2i/presets.py agree")
    data = shapes_tokens(vq, "train", train.n_train, train.seed, device, c.text_len,
                         train.n_objects)
    val = shapes_tokens(vq, "val", train.n_val, 0, device, c.text_len)
    # seed 1: held-out-pair scenes for choosing the weights; the chapter measures on seed 0
    heldout = shapes_tokens(vq, "heldout", train.n_val, 1, device, c.text_len)
    steps = train.steps
    step = make_dalle_step(model, train, device)
    curve = {"curve_step": [], "curve_train": [], "curve_val": [], "curve_heldout": []}
    judge_prompts = {f"curve_{split}_acc": single_object_prompts(split, train.n_judge)
                     for split in ("val", "heldout")} if train.n_judge else {}
    best = {"loss": float("inf"), "state": None, "step": 0, "since": 0}

    def evaluation(i, history):
        if i % train.eval_every and i != steps:
            return False
        since = curve["curve_step"][-1] if curve["curve_step"] else 0
        window = [v for s, v in zip(history.steps, history["loss"]) if s > since]
        v, h = evaluate(model, *val), evaluate(model, *heldout)
        for key, value in [("curve_step", i), ("curve_train", float(np.mean(window))),
                           ("curve_val", v["loss"]), ("curve_heldout", h["loss"])]:
            curve[key].append(value)
        for key, prompts in judge_prompts.items():
            curve.setdefault(key, []).append(judged_accuracy(model, vq, prompts))
        if h["loss"] < best["loss"]:
            state = {k: t.detach().cpu().clone() for k, t in model.state_dict().items()}
            best.update(loss=h["loss"], state=state, step=i, since=0)
        else:
            best["since"] += 1
        return bool(train.patience) and best["since"] >= train.patience

    batches = batches_from(*data, batch_size=train.batch_size, device=device, seed=train.seed)
    history = fit(step, batches, steps, log_every=train.log_every, callbacks=[evaluation],
                  desc="dalle")
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    final = {f"val_{k}": v for k, v in evaluate(model, *val).items()}
    final.update({f"heldout_{k}": v for k, v in evaluate(model, *heldout).items()})
    return {**final, **curve, "best_step": best["step"], "steps_done": history.steps_done,
            "stopped_early": history.stopped_early, "seconds": history.seconds,
            "image_tokenizer": train.tokenizer}


def clip_scores(clip: nn.Module, images: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """Cosine similarity (N,) of each image (N, 3, H, W) in [-1, 1] with its caption (N, L)."""
    with torch.no_grad():
        return (clip.encode_image(images) * clip.encode_text(text)).sum(-1).float()


@torch.no_grad()
def draw(model: MiniDALLE, vq: nn.Module, prompts: list[str], n_per_prompt: int = 1,
         seed: int = 0, sampling: Sampling | None = None, clip: nn.Module | None = None,
         batch_size: int = 64) -> torch.Tensor:
    """Images (N, 3, H, W) in [-1, 1], n_per_prompt per prompt (grouped by prompt).

    ``sampling`` (default: plain sampling at temperature 1) sets temperature, top-k, guidance
    and re-ranking: with ``candidates`` > 1, each image is the best of that many samples by
    ``clip``'s score.
    """
    s = sampling or Sampling()
    if s.candidates > 1 and clip is None:
        raise ValueError("re-ranking (candidates > 1) needs a CLIP model to score the samples")
    device = next(model.parameters()).device
    model.eval()
    text = Tokenizer().encode_batch(check_prompts(prompts), model.config.text_len).to(device)
    text = text.repeat_interleave(n_per_prompt * s.candidates, dim=0)
    g = torch.Generator(device=device).manual_seed(seed)
    images = []
    for t in text.split(batch_size):
        with autocast(device):
            codes = sample_codes(model, t, s.temperature, s.top_k, generator=g,
                                 guidance=s.guidance, plausible=s.plausible)
            images.append(vq.decode_indices(codes).float().clamp(-1, 1))
    images = torch.cat(images)
    if s.candidates > 1:
        scores = clip_scores(clip, images, text).view(-1, s.candidates)
        pick = scores.argmax(-1) + torch.arange(len(scores), device=device) * s.candidates
        images = images[pick]
    return images


def generate_images(prompts: list[str], n_per_prompt: int = 1, seed: int = 0, *,
                    sampling: Sampling | None = None, preset: str | None = None,
                    device=None) -> np.ndarray:
    """Text to image with the zoo's trained "dalle": np.uint8 (N, 64, 64, 3), grouped by prompt.

    ``sampling`` defaults to the preset recipe's (the settings the benchmark measured as best);
    with ``candidates`` > 1 chapter 4's CLIP re-ranks.
    """
    from .presets import recipe
    from .zoo import load_or_train

    prompts = check_prompts(prompts)
    if not isinstance(n_per_prompt, int) or n_per_prompt < 1:
        raise ValueError(f"n_per_prompt must be a positive integer, got {n_per_prompt!r}")
    sampling = sampling or recipe("dalle", preset).sample
    model = load_or_train("dalle", preset, device=device)
    device = next(model.parameters()).device
    vq = load_or_train(model.metrics["image_tokenizer"], preset, device=device)
    clip = load_or_train("clip", preset, device=device) if sampling.candidates > 1 else None
    images = draw(model, vq, prompts, n_per_prompt, seed, sampling, clip)
    return to_uint8_image(images).permute(0, 2, 3, 1).cpu().numpy()
