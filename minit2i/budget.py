"""What each chapter costs from an empty cache, counted, and the time budgets it must meet.

    python -m minit2i.budget [--preset P ...] [--chapter N] [--markdown] [--calibrate]

From an empty cache a chapter runs: the models it introduces (trained, so the reader sees
training), the models it needs that the package does not ship for this recipe (trained too,
after what they are trained from), its own experiments (the small training runs and VQGAN+CLIP
searches of its cells), and the rest of its cells. Shipped models are loaded (``minit2i.zoo``).
Each piece is counted:

- **FLOPs** of one real training step, counted by ``torch.utils.flop_counter.FlopCounterMode``
  at a batch of two through the package's own step functions (the GAN's; the VQ-VAE's; the
  VQGAN's, phase by phase, with its discriminator and the adaptive weight's two extra
  gradients; the CLIP's; the DALL-E's) or, for chapter 2's models, stand-ins of the notebook's
  classes, scaled by batch size x steps; the DALL-E's evaluations (losses, judged drawings) and
  its tokenising of the data; the searches' decodes and cutouts. Not counted: element-wise
  work (norms, activations, the optimiser's update), which the calibrated rates absorb; a
  trainer's final evaluation (one pass over at most 1,024 validation images); the VQ cures'
  occasional encoder pass.
- **Host seconds**: rendering scenes and judging images, on the CPU, at measured rates, whatever
  the accelerator; and the cutouts' random numbers (on the CPU, or the GPU when there is one).
- **Steps**: a GPU spends a fixed time per step (kernel launches, Python), whatever its size.
- **Peak memory**: weights with their gradients and Adam's two moments (16 bytes a parameter),
  the most bytes a step's saved-for-backward tensors hold at once (``saved_tensors_hooks``,
  float32: an upper bound under mixed precision), and the training images kept on the device.

seconds = FLOPs / rate of its kind (x fp32 slowdown outside autocast) + steps x step cost + host
seconds; a chapter adds its other cells (``REST_S``, measured on the CPU). The rates stand in
``MACHINES`` with where each comes from; ``BUDGETS`` are the promises ``tests/test_budget.py``
checks. See the book's page "How these pages were made".
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import math
import re
import sys
import weakref
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .config import PRESETS, amp_dtype, get_device, preset_name, seeded
from .presets import recipe
from .zoo import depends_on, recipe_record

# ---------------------------------------------------------------------------------------------
# Machines and budgets: every assumed rate, in one place
# ---------------------------------------------------------------------------------------------

# Kinds of work, which run at different rates: the VQ-VAE family's convolutions, chapter 1's
# 32x32 DCGAN, the CLIPs (a small CNN at full resolution and a text transformer), the DALL-E's
# transformer, chapter 2's tiny transformers, the VQGAN+CLIP search (fp32), DALL-E drawing.
KINDS = ("conv", "gan", "clip", "transformer", "small_transformer", "search", "sampling")
CONV_KINDS = ("conv", "gan", "clip", "search")


@dataclass(frozen=True)
class Machine:
    """Achieved (not peak) throughput on the counted FLOPs, per kind of work."""

    label: str
    rates: dict                  # kind -> FLOP/s under the device's autocast
    fp32_rate: float | None      # FLOP/s of work outside autocast (None: as its kind)
    step_s: float                # fixed seconds per training or search step
    token_s: float               # fixed seconds per sampled token (a step of KV-cached drawing)
    noise_per_s: float           # Gaussian numbers drawn per second for the cutouts' noise

    def rate(self, kind: str, amp: bool = True) -> float:
        if kind not in self.rates:
            raise ValueError(f"no rate for work of kind {kind!r}; kinds: {', '.join(KINDS)}")
        return self.rates[kind] if amp or self.fp32_rate is None else self.fp32_rate


def _gpu(label: str, conv: float, matmul: float, fp32: float, step_s: float,
         token_s: float) -> Machine:
    rates = {k: conv if k in CONV_KINDS else matmul for k in KINDS}
    return Machine(label, rates, fp32, step_s, token_s, noise_per_s=20e9)   # drawn on the GPU


MACHINES = {
    # Two CPU cores, float32: each kind's rate is fitted to the committed cpu-preset runs of
    # that kind (CALIBRATION below; `python -m minit2i.budget --calibrate` refits them
    # from the repository's notebooks and benchmark files, and tests/test_budget.py checks
    # these figures against it). The spread is real: the DALL-E's 128-wide matrices run at
    # 166 GFLOP/s and the convolutions of the tokenizers and the GAN at about 100, while the
    # CLIP's narrow full-resolution CNN (41) and the search through it (26) spend their time in
    # element-wise work and small operations that the FLOP count does not see. Every run behind
    # these rates had the two cores to itself: a second PyTorch process on two cores slows one
    # tenfold or more (chapter 4's CLIP temperature runs took 2-4 minutes each shared, 10-12 s
    # alone), so a figure from a shared machine says nothing about a laptop.
    "laptop": Machine("a laptop (2 CPU cores, fp32)",
                      {"conv": 102e9, "gan": 108e9, "clip": 41e9, "transformer": 166e9,
                       "small_transformer": 114e9, "search": 26e9, "sampling": 33e9},
                      fp32_rate=None, step_s=0.0, token_s=0.0, noise_per_s=150e6),
    # Colab's T4: 65 TFLOP/s fp16 tensor-core peak, 8.1 fp32 (no TF32). Assumed: 6 TFLOP/s
    # on convolutions and 10 on matrix products under fp16 autocast (batches of 32-512 small
    # images, 16-64 channels, GroupNorm in fp32 between the convolutions), 3 TFLOP/s in fp32
    # (the VQGAN+CLIP search runs without autocast), 8 ms per step and 3 ms per drawn token
    # for launches and the Python loop on Colab's two slow vCPUs. NOT MEASURED:
    # benchmarks/gpu_check.py measures them on a GPU.
    "t4": _gpu("a Colab T4 (fp16 autocast)", conv=6e12, matmul=10e12, fp32=3e12, step_s=0.008,
               token_s=0.003),
    # An H100: 989 TFLOP/s bf16 dense peak, 67 fp32 (convolutions in TF32 by default).
    # Assumed: 50 TFLOP/s on convolutions and 80 on matrix products under bf16 autocast (these
    # models are far too small to fill it), 25 in fp32, 4 ms per step, 1.5 ms per drawn token.
    # NOT MEASURED: benchmarks/gpu_check.py measures them.
    "h100": _gpu("an H100 (bf16 autocast)", conv=50e12, matmul=80e12, fp32=25e12, step_s=0.004,
                 token_s=0.0015),
}

# preset -> (the machine it is written for, minutes per chapter from an empty cache)
BUDGETS = {"cpu": ("laptop", 15.0), "full": ("t4", 10.0)}

# Two-core machines differ. Chapter 6's DALL-E training (3,000 steps of the cpu recipe: the same
# FLOPs at learning rate 2e-3 and 4e-3) took 586 s on the laptop the rates above were fitted to
# and 1,641 s on a later two-core machine, which read 114 GFLOP/s on
# ``minit2i.config.matmul_gflops``. So a run records that reading beside its seconds (the
# notebook's record from ``minit2i.tools.execute``, a checkpoint's metrics, benchmarks/dalle.py's
# JSON), and ``laptop_seconds`` scales them to the laptop's by reading / LAPTOP_MATMUL_GFLOPS.
# The laptop itself was never read: its figure is inferred from that one training run on both
# machines (114 x 1641 / 586), and every run without a reading is taken to be the laptop's.
LAPTOP_MATMUL_GFLOPS = 319.0


def laptop_seconds(seconds: float, reading: float | None) -> float:
    """A run's seconds scaled to the laptop's, from its machine's ``matmul_gflops`` reading
    (None: the run was the laptop's own)."""
    return seconds if not reading else seconds * float(reading) / LAPTOP_MATMUL_GFLOPS

RENDER_PER_S = 10_000   # scenes rendered and captioned per second on one core (shapes_speed.json)
JUDGE_S = 0.003         # seconds to judge one image (judge_accuracy.json: 4,000 images in 10.5 s)
GIB = 2**30

# ---------------------------------------------------------------------------------------------
# What each chapter runs
# ---------------------------------------------------------------------------------------------

CHAPTERS = {1: "01_gan", 2: "02_attention", 3: "03_vector_quantization", 4: "04_clip",
            5: "05_vqgan", 6: "06_mini_dalle", 7: "07_vqgan_clip", 8: "08_comparison"}


@dataclass(frozen=True)
class Needs:
    """A chapter's work: models it trains (it introduces them), models it loads, experiments."""

    trains: tuple[str, ...] = ()
    loads: tuple[str, ...] = ()
    experiments: tuple[str, ...] = ()


CHAPTER_NEEDS = {
    1: Needs(trains=("shapes_gan",)),
    2: Needs(experiments=("shapes_vit", "caption_lm")),
    3: Needs(trains=("vqvae",), experiments=("vq_lr_trap", "vq_fg_weight")),
    4: Needs(trains=("clip",), experiments=("clip_temperature",)),
    5: Needs(trains=("vqgan",), loads=("vqvae",), experiments=("vqgan_control", "vqgan_failure")),
    6: Needs(trains=("dalle",), loads=("vqgan", "clip"),
             experiments=("pixelcnn", "dalle_sampling")),
    7: Needs(loads=("vqgan", "clip", "clip_b"), experiments=("search_ch7",)),
    8: Needs(loads=("dalle", "vqgan", "clip"), experiments=("search_ch8", "dalle_ch8")),
}

# The models the package ships (minit2i/checkpoints, built by `python -m minit2i.tools.ship`)
# with the recipes of SHIPPED_PRESET. Another preset whose recipe of such a model (and of the
# models it is trained from) is the same loads the shipped file too.
SHIPPED = ("vqvae", "vqgan", "clip", "clip_b", "dalle")
SHIPPED_PRESET = "cpu"

# Sizes the chapters' cells fix themselves (they are not recipes); tests/test_budget.py reads
# each notebook and checks that it still says this.
NOTEBOOK_CONSTANTS = {
    "ch3_trap": dict(channels=16, batch_size=32),          # train_briefly's VQ-VAE
    "ch5_failure": dict(channels=16, batch_size=32),       # the failure runs' VQ-VAE and D
    "ch6_n_eval": {"smoke": 8, "cpu": 64, "full": 256},    # prompts per set in the scores
    "ch6_pixelcnn_draws": 12,                              # PixelCNN images drawn and judged
    "ch7_prompts": 8, "ch7_edits": 3,                      # the search, edit and bare runs
    "ch8_compare": {"smoke": (4, 2), "cpu": (12, 3), "full": (64, 4)},   # prompts x images
}

# Seconds of each chapter's other cells (figures, the ring GANs and codebooks, attention
# timings, evaluations, re-ranking): its measured cpu-preset run time less the counted work of
# that run, at least REST_FLOOR_S (`--calibrate` prints them afresh). Taken as the same on
# every machine: most of it is CPU work (the ring experiments, the judge, rendering), so a GPU
# is unlikely to be slower.
REST_S = {1: 127, 2: 16, 3: 13, 4: 22, 5: 27, 6: 19, 7: 10, 8: 10}
REST_FLOOR_S = 10        # a chapter whose count covers its whole measured time still has cells


def is_shipped(name: str, preset: str, installed: bool = False) -> bool:
    """Whether the package ships ``name`` for this preset's recipe: by the plan (SHIPPED, with
    the recipe of SHIPPED_PRESET), or with ``installed`` whether such a file is here now."""
    if installed:
        from .zoo import shipped_path
        return shipped_path(name, preset) is not None
    return name in SHIPPED and recipe_record(name, preset) == recipe_record(name, SHIPPED_PRESET)


def chapter_plan(chapter: int, preset: str | None = None, installed: bool = False
                 ) -> dict[str, list[str]]:
    """What a chapter does from an empty cache: the models it ``trains`` (its own, then those it
    needs that are not shipped, each after what it is trained from), those it ``loads`` from the
    shipped checkpoints (by the plan; with ``installed``, those this installation holds), and
    its ``experiments``."""
    preset = preset_name(preset)
    if chapter not in CHAPTER_NEEDS:
        raise ValueError(f"no chapter {chapter}; chapters: {', '.join(map(str, CHAPTERS))}")
    needs = CHAPTER_NEEDS[chapter]
    trains: list[str] = []
    loads: list[str] = []

    def need(name: str, own: bool) -> None:
        if name in trains or (name in loads and not own):
            return
        if not own and is_shipped(name, preset, installed):
            loads.append(name)
            return
        for dep in depends_on(name, preset):
            need(dep, own=False)
        trains.append(name)

    for name in needs.trains:
        need(name, own=True)
    for name in needs.loads:
        need(name, own=False)
    return {"trains": trains, "loads": loads, "experiments": list(needs.experiments)}


# ---------------------------------------------------------------------------------------------
# Counting one step
# ---------------------------------------------------------------------------------------------

TINY = 2      # the batch FLOPs are counted at (BatchNorm needs two)


@dataclass(frozen=True)
class Count:
    """FLOPs (convolutions apart) and peak saved bytes, per sample."""

    conv: float
    other: float
    saved_bytes: float

    def __add__(self, o: Count) -> Count:
        return Count(self.conv + o.conv, self.other + o.other, self.saved_bytes + o.saved_bytes)

    def __sub__(self, o: Count) -> Count:
        return Count(self.conv - o.conv, self.other - o.other, self.saved_bytes - o.saved_bytes)

    def __mul__(self, k: float) -> Count:
        return Count(self.conv * k, self.other * k, self.saved_bytes * k)

    @property
    def flops(self) -> float:
        return self.conv + self.other


def count(fn, per: int = TINY, exclude: nn.Module | None = None) -> Count:
    """FLOPs of ``fn()`` and the most bytes its saved-for-backward tensors held at once, each
    divided by ``per``.

    Attention runs through PyTorch's math kernel while counting, whose matrix products the
    counter sees (the fused CPU kernel it would not). Saved tensors that are parameters of
    ``exclude`` are weights, not activations, and are left out."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    params = {p.untyped_storage().data_ptr() for p in exclude.parameters()} if exclude else set()
    live: dict[int, tuple[weakref.ref, int]] = {}
    peak = 0

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal peak
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            live[ptr] = (weakref.ref(t), t.untyped_storage().nbytes())
            for key in [k for k, (ref, _) in live.items() if ref() is None]:
                del live[key]                     # freed with its graph after a backward
            peak = max(peak, sum(n for _, n in live.values()))
        return t

    threads = torch.get_num_threads()
    torch.set_num_threads(1)            # tiny batches: one thread is faster, and the counts
    try:                                # do not depend on it
        with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter, \
                torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn()
    finally:
        torch.set_num_threads(threads)
    ops = counter.get_flop_counts().get("Global", {})
    conv = sum(v for op, v in ops.items() if "convolution" in str(op))
    return Count(conv / per, (counter.get_total_flops() - conv) / per, peak / per)


def _images(n: int = TINY, size: int = 64) -> torch.Tensor:
    return torch.rand(n, 3, size, size) * 2 - 1


def _tokens(n: int = TINY, length: int | None = None) -> torch.Tensor:
    from .text import Tokenizer
    return Tokenizer().encode_batch(["a large red circle to the left of a small blue square"] * n,
                                    length)


def _n_params(*models: nn.Module) -> int:
    return sum(p.numel() for m in models for p in m.parameters())


@dataclass(frozen=True)
class Work:
    """One piece of a chapter's work, counted."""

    name: str
    kind: str                     # one of KINDS: which rate it runs at
    conv_flops: float
    other_flops: float
    steps: int                    # optimiser or search steps (a GPU's fixed cost per step)
    amp: bool = True              # under autocast (False: fp32 on a GPU too)
    host_s: float = 0.0           # CPU seconds: rendering, judging, the cutouts' noise
    peak_bytes: float = 0.0       # estimated peak memory on the device
    tokens: int = 0               # sampled tokens (DALL-E drawing)
    noise: float = 0.0            # Gaussian numbers drawn for the cutouts

    @property
    def flops(self) -> float:
        return self.conv_flops + self.other_flops

    def seconds(self, machine: Machine | str) -> float:
        m = MACHINES[machine] if isinstance(machine, str) else machine
        return (self.flops / m.rate(self.kind, self.amp) + self.steps * m.step_s
                + self.tokens * m.token_s + self.noise / m.noise_per_s + self.host_s)

    def __add__(self, o: Work) -> Work:
        if (self.kind, self.amp) != (o.kind, o.amp):
            raise ValueError(f"cannot add {o.kind} work to {self.kind} work")
        return Work(self.name, self.kind, self.conv_flops + o.conv_flops,
                    self.other_flops + o.other_flops, self.steps + o.steps, self.amp,
                    self.host_s + o.host_s, max(self.peak_bytes, o.peak_bytes),
                    self.tokens + o.tokens, self.noise + o.noise)


def training(name: str, kind: str, step: Count, steps: int, batch: int, n_params: int,
             rendered: int = 0, data_bytes: float = 0.0, runs: int = 1) -> Work:
    """``runs`` runs of ``steps`` training steps at ``batch``, each step counted as ``step``."""
    total = step * (runs * steps * batch)
    peak = 16 * n_params + step.saved_bytes * batch + data_bytes
    return Work(name, kind, total.conv, total.other, runs * steps,
                host_s=runs * rendered / RENDER_PER_S, peak_bytes=peak)


def _image_bytes(n: int, size: int = 64) -> int:
    return n * 3 * size * size                          # uint8 images kept on the device


# ---- the zoo's models ----------------------------------------------------------------------

def _vqvae_step(model, train) -> Count:
    """A step of ``minit2i.vq.make_vqvae_step`` (without the codebook restarts)."""
    from .vq import make_vqvae_step
    step = make_vqvae_step(model.train(), train.replace(restart_every=0), "cpu")
    x = _images(size=model.config.image_size)
    return count(lambda: step(x, 0), exclude=model)


def _vqgan_run(name: str, model_config, train, batch: int, disc_channels: int | None = None
               ) -> Work:
    """A VQGAN run, phase by phase (before the discriminator starts, while it trains alone, with
    its verdict reaching the generator), each phase's step counted through
    ``minit2i.vqgan.make_vqgan_step``."""
    from .vq import VQVAE
    from .vqgan import PatchDiscriminator, make_vqgan_step
    channels = disc_channels or train.disc_channels
    model, disc = VQVAE(model_config), PatchDiscriminator(channels)
    step = make_vqgan_step(model, disc, train.replace(restart_every=0), torch.device("cpu"))
    model.train()
    x = _images(size=model_config.image_size)
    starts = sorted({0, min(train.disc_start, train.steps),
                     min(train.disc_start + train.disc_warmup, train.steps), train.steps})
    total, saved = Count(0, 0, 0), 0.0
    for a, b in zip(starts, starts[1:]):
        if b > a:
            c = count(lambda a=a: step(x, a), exclude=model)
            total, saved = total + c * ((b - a) * batch), max(saved, c.saved_bytes)
    peak = 16 * _n_params(model, disc) + saved * batch + _image_bytes(train.n_train)
    return Work(name, "conv", total.conv, total.other, train.steps,
                host_s=train.n_train / RENDER_PER_S, peak_bytes=peak)


def _clip_count(config, augment: bool) -> tuple[Count, nn.Module]:
    from .clip import CLIP, make_train_step
    model = CLIP(config)
    step = make_train_step(model.train(), lr=1e-3, steps=10, device="cpu", augment=augment)
    images = ((_images(size=config.image_size) + 1) * 127.5).to(torch.uint8)
    batch = (images, _tokens(length=config.max_length), torch.arange(TINY))
    return count(lambda: step(batch, 0), exclude=model), model


@functools.cache
def _dalle_counts(preset: str) -> tuple[int, Count, Count, Count]:
    """The DALL-E's parameters, and per sample: a training step, a loss evaluation, a drawing."""
    from .dalle import MiniDALLE, make_dalle_step, sample_codes
    with seeded(0):
        config = recipe("dalle", preset).model
        model = MiniDALLE(config)
        text = _tokens(length=config.text_len)
        codes = torch.randint(config.num_codes, (TINY, config.grid, config.grid))
        step = make_dalle_step(model, recipe("dalle", preset).train, "cpu")
        train = count(lambda: step((text, codes), 0), exclude=model)
        with torch.no_grad():
            forward = count(lambda: model.eval().loss(text, codes))
            sample = count(lambda: sample_codes(model, text))
    return _n_params(model), train, forward, sample


@functools.cache
def _tokenizer_counts(name: str, preset: str) -> tuple[Count, Count]:
    """Per image: the tokenizer's encoding (of training data) and its decoding (drawing)."""
    from .vq import VQVAE
    with seeded(0), torch.no_grad():
        model = VQVAE(recipe(name, preset).model).eval()
        enc = count(lambda: model.encode(_images()))
        dec = count(lambda: model.decode_indices(
            torch.zeros(TINY, model.grid, model.grid, dtype=torch.long)))
    return enc, dec


def dalle_drawing(name: str, preset: str, images: int, judged: int = 0) -> Work:
    """Drawing ``images`` with the DALL-E (KV-cached sampling in batches of 64, then the
    tokenizer's decoder), and judging ``judged`` of them."""
    r = recipe("dalle", preset)
    _, _, _, sample = _dalle_counts(preset)
    _, dec = _tokenizer_counts(r.train.tokenizer, preset)
    per = sample + dec
    tokens = math.ceil(images / 64) * r.model.grid ** 2
    return Work(name, "sampling", per.conv * images, per.other * images, 0,
                host_s=judged * JUDGE_S, tokens=tokens)


@functools.cache
def model_work(name: str, preset: str) -> Work:
    """Training the zoo model ``name`` with the preset's recipe (not what it loads first)."""
    with seeded(0):
        r = recipe(name, preset)
        t = r.train
        if name == "shapes_gan":
            from .gan import ShapesGAN, make_train_step
            model = ShapesGAN(r.model)
            step = make_train_step(model.train(), lr=t.lr, kind=t.kind, device="cpu")
            x = _images(size=r.model.image_size)
            c = count(lambda: step((x,), 0), exclude=model)
            return training(name, "gan", c, t.steps, t.batch_size, _n_params(model), t.n_images,
                            _image_bytes(t.n_images, r.model.image_size))
        if name == "vqvae":
            from .vq import VQVAE
            model = VQVAE(r.model)
            return training(name, "conv", _vqvae_step(model, t), t.steps, t.batch_size,
                            _n_params(model), t.n_train, _image_bytes(t.n_train))
        if name == "vqgan":
            return _vqgan_run(name, r.model, t, t.batch_size)
        if name in ("clip", "clip_b"):
            c, model = _clip_count(r.model, t.augment)
            # scene_ids reads every caption a second time
            return training(name, "clip", c, t.steps, t.batch_size, _n_params(model),
                            2 * t.n_train, _image_bytes(t.n_train) + t.n_train * 8 * 25)
        if name == "dalle":
            n_params, c, forward, sample = _dalle_counts(preset)
            cfg = r.model
            w = training(name, "transformer", c, t.steps, t.batch_size, n_params,
                         t.n_train + 2 * t.n_val, t.n_train * 8 * (cfg.text_len + cfg.grid ** 2))
            enc, dec = _tokenizer_counts(t.tokenizer, preset)
            evals = math.ceil(t.steps / t.eval_every)
            extra = (enc * (t.n_train + 2 * t.n_val)              # tokenising the scenes
                     + forward * (evals * 2 * t.n_val)            # val and held-out losses
                     + (sample + dec) * (evals * 2 * t.n_judge))  # judged drawings
            return dataclasses.replace(
                w, conv_flops=w.conv_flops + extra.conv, other_flops=w.other_flops + extra.other,
                host_s=w.host_s + evals * 2 * t.n_judge * JUDGE_S,
                tokens=evals * 2 * math.ceil(t.n_judge / 64) * cfg.grid ** 2)
    raise ValueError(f"no cost model for {name!r}")


# ---- the chapters' experiments ---------------------------------------------------------------

class PatchClassifier(nn.Module):
    """Chapter 2's patch classifier as the notebook writes it (here only to be counted)."""

    def __init__(self, dim, depth, n_heads, patch, image_size=64, n_classes=(8, 5, 9)):
        super().__init__()
        from .transformer import Transformer
        self.patch, self.n_classes = patch, n_classes
        self.embed = nn.Linear(3 * patch * patch, dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(0.02 * torch.randn(1, (image_size // patch) ** 2 + 1, dim))
        self.encoder = Transformer(dim, depth, n_heads)
        self.head = nn.Linear(dim, sum(n_classes))

    def forward(self, images):
        from .transformer import patchify
        x = self.embed(patchify(images, self.patch))
        x = torch.cat([self.cls.expand(len(x), -1, -1), x], 1) + self.pos
        return self.head(self.encoder(x)[:, 0]).split(self.n_classes, dim=-1)


class CaptionLM(nn.Module):
    """Chapter 2's caption language model as the notebook writes it (here only to be counted)."""

    def __init__(self, vocab_size, dim, depth, n_heads, length=24):
        super().__init__()
        from .transformer import Transformer
        self.tok = nn.Embedding(vocab_size, dim)
        self.pos = nn.Parameter(0.02 * torch.randn(1, length, dim))
        self.body = Transformer(dim, depth, n_heads)
        self.head = nn.Linear(dim, vocab_size)

    def forward(self, tokens, causal=True):
        x = self.tok(tokens) + self.pos[:, :tokens.shape[1]]
        return self.head(self.body(x, is_causal=causal))


@functools.cache
def search_counts(preset: str) -> tuple[Count, Count]:
    """Per image and step of ``minit2i.vqgan_clip.optimise``: the decode (forward, and backward
    to the latent) and one cutout (through CLIP's image encoder and back to the image), from
    runs of one and two steps with one and two cutouts."""
    from .clip import CLIP
    from .vq import VQVAE
    from .vqgan_clip import optimise, random_latent
    with seeded(0):
        vq = VQVAE(recipe("vqgan", preset).model).eval()
        clip = CLIP(recipe("clip", preset).model).eval()
        text = F.normalize(torch.randn(1, clip.cfg.embed_dim), dim=-1)
        z0 = random_latent(vq, 1)

        def run(steps: int, n: int) -> Count:
            g = torch.Generator().manual_seed(0)
            return count(lambda: optimise(vq, clip, text, z0, steps=steps, n_cutouts=n,
                                          generator=g), per=1)

        r11, r21, r12, r22 = run(1, 1), run(2, 1), run(1, 2), run(2, 2)
    step = r21 - r11                                   # one step with one cutout
    view = (r22 - r12) - step                          # one more cutout in that step
    view_bytes = r12.saved_bytes - r11.saved_bytes     # the peak grows by this per cutout
    return (Count(step.conv - view.conv, step.other - view.other, r11.saved_bytes - view_bytes),
            Count(view.conv, view.other, view_bytes))


def search_bytes_per_view(preset: str | None = None) -> float:
    """Activation bytes one cutout adds to a search step's peak (the decode's share spread over
    the cutouts of its image), float32: what ``vqgan_clip.MAX_VIEWS`` is sized with."""
    decode, view = search_counts(preset_name(preset))
    return view.saved_bytes


def search(name: str, preset: str, images: int, augment: bool = True) -> Work:
    """VQGAN+CLIP searches for ``images`` prompts with the preset's settings, in chunks of at
    most ``vqgan_clip.MAX_VIEWS`` views a step (each chunk a step of its own on a GPU)."""
    from .vqgan_clip import chunk_size
    s = recipe("vqgan_clip", preset).train
    decode, view = search_counts(preset)
    n = s.n_cutouts if augment and s.augment else 1
    per_image = decode + view * n
    total = per_image * (images * s.steps)
    chunk = min(images, chunk_size(n))
    noise = images * s.steps * n * 3 * 64 * 64 if n > 1 else 0.0
    return Work(name, "search", total.conv, total.other, s.steps * math.ceil(images / chunk),
                amp=False, peak_bytes=per_image.saved_bytes * chunk, noise=noise)


@functools.cache
def experiment_work(name: str, preset: str) -> Work:
    """One of the chapters' own experiments (see CHAPTER_NEEDS), counted."""
    with seeded(0):
        return _experiment(name, preset)


def _experiment(name: str, preset: str) -> Work:
    if name == "shapes_vit":
        r = recipe(name, preset)
        model = PatchClassifier(r.model.dim, r.model.depth, r.model.n_heads, r.model.patch)
        labels, x = torch.zeros(TINY, dtype=torch.long), _images()
        c = count(lambda: sum(F.cross_entropy(lg, labels) for lg in model(x)).backward(),
                  exclude=model)
        w = training(name, "small_transformer", c, r.train.steps, r.train.batch_size,
                     _n_params(model), r.train.n_train + r.train.n_val)
        return dataclasses.replace(w, amp=False)          # the notebook trains it in fp32
    if name == "caption_lm":
        from .text import Tokenizer
        r = recipe(name, preset)
        model = CaptionLM(Tokenizer().vocab_size, r.model.dim, r.model.depth, r.model.n_heads)
        tokens = _tokens()

        def step():
            logits = model(tokens[:, :-1])
            F.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten()).backward()

        w = training(name, "small_transformer", count(step, exclude=model), r.train.steps,
                     r.train.batch_size, _n_params(model), runs=2)     # causal, and peeking
        return dataclasses.replace(w, host_s=(r.train.n_train + 512) / RENDER_PER_S, amp=False)
    if name == "vq_lr_trap":
        from .vq import VQVAE, VQVAEConfig
        t, k = recipe(name, preset).train, NOTEBOOK_CONSTANTS["ch3_trap"]
        model = VQVAE(VQVAEConfig(channels=k["channels"], num_codes=512, ema=False))
        c = _vqvae_step(model, recipe("vqvae", preset).train.replace(fg_weight=0.0))
        w = training(name, "conv", c, t.steps, k["batch_size"], _n_params(model),
                     data_bytes=_image_bytes(t.n_train), runs=len(t.lrs))
        return dataclasses.replace(w, host_s=t.n_train / RENDER_PER_S, amp=False)   # fp32 cell
    if name == "vq_fg_weight":
        from .vq import VQVAE
        t, base = recipe(name, preset).train, recipe("vqvae", preset)
        model = VQVAE(base.model)
        w = training(name, "conv", _vqvae_step(model, base.train), t.steps,
                     base.train.batch_size, _n_params(model), t.n_train,
                     _image_bytes(t.n_train), runs=len(t.fg_weights))
        return dataclasses.replace(w, host_s=w.host_s + len(t.fg_weights) * t.n_judge * JUDGE_S)
    if name == "clip_temperature":
        r = recipe(name, preset)
        c, model = _clip_count(r.model, augment=False)
        w = training(name, "clip", c, r.train.steps, r.train.batch_size, _n_params(model),
                     data_bytes=_image_bytes(r.train.n_train), runs=4)   # s = 1, 10, 100, learned
        return dataclasses.replace(w, host_s=2 * r.train.n_train / RENDER_PER_S)
    if name == "vqgan_control":
        return dataclasses.replace(model_work("vqgan", preset), name=name)   # no adversary
    if name == "vqgan_failure":
        from .vq import VQVAEConfig
        fail, k = recipe(name, preset).train, NOTEBOOK_CONSTANTS["ch5_failure"]
        cfg = VQVAEConfig(channels=k["channels"], num_codes=512)
        good = _vqgan_run(name, cfg, fail.good, k["batch_size"], k["channels"])
        bad = _vqgan_run(name, cfg, fail.bad, k["batch_size"], k["channels"])
        return dataclasses.replace(good + bad, host_s=fail.n_train / RENDER_PER_S)
    if name == "pixelcnn":
        # chapter 6's PixelCNN: trained in fp32, then drawing its images one pixel at a time
        # (each pixel a forward pass over the whole image)
        from .pixelcnn import PixelCNN
        r, n = recipe(name, preset), NOTEBOOK_CONSTANTS["ch6_pixelcnn_draws"]
        model, s = PixelCNN(r.model), r.model.image_size
        pixels = torch.zeros(TINY, s, s, dtype=torch.long)
        cond = torch.zeros(TINY, dtype=torch.long)
        step = count(lambda: model.loss(pixels, cond, cond).backward(), exclude=model)
        w = training(name, "conv", step, r.train.steps, r.train.batch_size, _n_params(model),
                     r.train.n_train, r.train.n_train * s * s * 8)
        with torch.no_grad():
            draw = count(lambda: model(pixels, cond, cond)) * (s * s * n)
        return Work(name, "conv", w.conv_flops + draw.conv, w.other_flops + draw.other,
                    w.steps + s * s, amp=False, host_s=w.host_s + n * JUDGE_S,
                    peak_bytes=w.peak_bytes)
    if name == "dalle_sampling":
        # chapter 6's scores: three prompt sets of n_eval, plain and best of 8 by CLIP, a
        # sweep of five settings on n_eval prompts with their diversity, and the figures
        n = NOTEBOOK_CONSTANTS["ch6_n_eval"][preset]
        return dalle_drawing(name, preset, 3 * n * (1 + 8) + 5 * (n + 32) + 200,
                             judged=3 * n * 2 + 5 * n)
    if name == "search_ch7":
        k = NOTEBOOK_CONSTANTS
        return (search(name, preset, k["ch7_prompts"] + k["ch7_edits"])
                + search(name, preset, k["ch7_prompts"], augment=False))
    if name == "search_ch8":
        prompts, per = NOTEBOOK_CONSTANTS["ch8_compare"][preset]
        w = search(name, preset, prompts * per + 1)                  # and one warm-up image
        return dataclasses.replace(w, host_s=w.host_s + prompts * per * JUDGE_S)
    if name == "dalle_ch8":
        prompts, per = NOTEBOOK_CONSTANTS["ch8_compare"][preset]
        return dalle_drawing(name, preset, prompts * per + 1, judged=prompts * per)
    raise ValueError(f"no cost model for experiment {name!r}")


# ---------------------------------------------------------------------------------------------
# Chapters: works, minutes, the table
# ---------------------------------------------------------------------------------------------

def chapter_works(chapter: int, preset: str | None = None, installed: bool = False
                  ) -> list[Work]:
    """The counted work of a chapter run from an empty cache (see ``chapter_plan``)."""
    preset = preset_name(preset)
    plan = chapter_plan(chapter, preset, installed)
    return ([model_work(name, preset) for name in plan["trains"]]
            + [experiment_work(name, preset) for name in plan["experiments"]])


def chapter_seconds(chapter: int, preset: str | None = None, machine: str | None = None,
                    installed: bool = False) -> float:
    """Expected seconds of a whole chapter from an empty cache on ``machine`` (default: the
    one the preset is written for)."""
    preset = preset_name(preset)
    machine = machine or BUDGETS.get(preset, ("laptop",))[0]
    rest = REST_S[chapter] if preset != "smoke" else 0.0     # smoke: a check, not a reading
    return rest + sum(w.seconds(machine) for w in chapter_works(chapter, preset, installed))


def chapter_peak_bytes(chapter: int, preset: str | None = None) -> float:
    return max([w.peak_bytes for w in chapter_works(chapter, preset)] or [0.0])


def notebook_record(path: Path) -> dict:
    """The ``minit2i`` record of a notebook's committed run ({} if there is none)."""
    if not path.is_file():
        return {}
    return json.loads(path.read_text()).get("metadata", {}).get("minit2i") or {}


def run_record(chapter: int, root: Path | None = None) -> dict:
    """The ``minit2i`` record of a chapter's committed run ({} if there is none)."""
    return notebook_record((root or _repo()) / "notebooks" / f"{CHAPTERS[chapter]}.ipynb")


def record_laptop_seconds(record: dict) -> float:
    """A run record's seconds at the laptop's speed (``laptop_seconds``)."""
    return laptop_seconds(float(record["duration_s"]), record.get("matmul_gflops"))


def loaded_own_models(chapter: int, root: Path | None = None) -> list[str]:
    """The models a chapter trains from an empty cache that its committed run loaded instead
    (from the cache or the shipped checkpoints), as its outputs say."""
    path = (root or _repo()) / "notebooks" / f"{CHAPTERS[chapter]}.ipynb"
    if not path.is_file():
        return []
    text = _outputs_text(path)
    return [n for n in CHAPTER_NEEDS[chapter].trains if re.search(rf"loaded {n} \(\w+\)", text)]


def measured_minutes(chapter: int, root: Path | None = None) -> tuple[str, float] | None:
    """(preset, minutes) of the committed notebook's recorded run, if the repository has it,
    scaled to the laptop by the run's machine reading (``laptop_seconds``)."""
    record = run_record(chapter, root)
    if "duration_s" not in record:
        return None
    return record.get("preset", "?"), record_laptop_seconds(record) / 60


def budget_rows(presets=("cpu", "full"), root: Path | None = None) -> list[dict]:
    """One row per chapter and preset: counted cost, expected minutes on each machine, the
    measured minutes where the committed run used this preset, what it trains and loads."""
    rows = []
    for preset in presets:
        for chapter in CHAPTERS:
            works = chapter_works(chapter, preset)
            plan = chapter_plan(chapter, preset)
            measured = measured_minutes(chapter, root)
            row = {"chapter": chapter, "preset": preset,
                   "tflop": sum(w.flops for w in works) / 1e12,
                   "peak_gib": chapter_peak_bytes(chapter, preset) / GIB}
            for m in MACHINES:
                row[m] = chapter_seconds(chapter, preset, m) / 60
            row["measured"] = measured[1] if measured and measured[0] == preset else None
            # a run that loaded what the chapter trains from an empty cache says so
            own = loaded_own_models(chapter, root) if row["measured"] is not None else []
            row["measured_text"] = _minutes(row["measured"]) + (
                f" (loaded {', '.join(own)})" if own else "")
            row["budget"] = BUDGETS[preset][1] if preset in BUDGETS else None
            row.update(trains=plan["trains"], loads=plan["loads"])
            rows.append(row)
    return rows


def _minutes(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.1f}" if value < 100 else f"{value / 60:.0f} h"


RECIPE_WORK = {"shapes_vit": "experiment", "caption_lm": "experiment", "vq_lr_trap": "experiment",
               "vq_fg_weight": "experiment", "clip_temperature": "experiment",
               "vqgan_failure": "experiment", "pixelcnn": "experiment"}


def recipe_work(name: str, preset: str) -> Work:
    """The counted work of one recipe: a zoo model's training, an experiment's runs, or (for
    ``vqgan_clip``) the search for one image."""
    if name == "vqgan_clip":
        return search(name, preset, 1)
    if RECIPE_WORK.get(name) == "experiment":
        return experiment_work(name, preset)
    return model_work(name, preset)


def gpu_measurement(root: Path | None = None) -> dict | None:
    """benchmarks/results/gpu_check.json when it comes from a GPU run, else None."""
    path = (root or _repo()) / "benchmarks" / "results" / "gpu_check.json"
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    return data if data.get("gpu") else None


def markdown(presets=("cpu", "full"), root: Path | None = None, link=None) -> list[str]:
    """The status page's tables: minutes per chapter and preset, what each chapter trains and
    loads, and each recipe's cost and peak memory. ``link(chapter)`` names a chapter."""
    from .presets import RECIPES
    from .zoo import WHERE, spec
    link = link or str
    gpu = gpu_measurement(root)
    lines = []
    for preset in presets:
        machine, limit = BUDGETS.get(preset, (None, None))
        measured_gpu = gpu if gpu and gpu.get("preset") == preset else None
        lines += [f"**`{preset}` preset**" + (f": at most {limit:g} min a chapter on "
                                              f"{MACHINES[machine].label}" if machine else ""), ""]
        head = "| chapter | TFLOP | laptop | T4 | H100 | measured |"
        if measured_gpu:
            head += f" measured on {measured_gpu['device']} |"
        lines += [head, "|" + "---|" * (head.count("|") - 1)]
        for row in budget_rows((preset,), root):
            cells = {m: _minutes(row[m]) for m in MACHINES}
            if machine:
                over = row[machine] > limit
                cells[machine] = f"**{cells[machine]}**" + (" (over)" if over else "")
            line = (f"| {link(row['chapter'])} | {row['tflop']:,.0f} | {cells['laptop']} | "
                    f"{cells['t4']} | {cells['h100']} | {row['measured_text']} |")
            if measured_gpu:
                here = measured_gpu["chapters"][str(row["chapter"])]["minutes_here"]
                line += f" {_minutes(here)} |"
            lines.append(line)
        lines.append("")
        read = [(c, r) for c in CHAPTERS if (r := run_record(c, root)).get("matmul_gflops")
                and r.get("preset") == preset]
        if read:
            lines += ["The measured column is each chapter's committed run, scaled to the laptop "
                      "where it ran on another machine, by that machine's speed reading against "
                      f"the laptop's {LAPTOP_MATMUL_GFLOPS:.0f} GFLOP/s "
                      "(`minit2i.budget.laptop_seconds`): "
                      + "; ".join(f"chapter {c}, {r['duration_s'] / 60:.1f} min on a machine "
                                  f"reading {r['matmul_gflops']:.0f}" for c, r in read) + ".", ""]
    lines += ["**What each chapter trains and loads**, from an empty cache", "",
              "| chapter | " + " | ".join(f"`{p}`: trains | `{p}`: loads (shipped)"
                                          for p in presets) + " |",
              "|---|" + "---|---|" * len(presets)]
    for chapter in CHAPTERS:
        cells = []
        for preset in presets:
            plan = chapter_plan(chapter, preset)
            cells += [", ".join(plan["trains"]) or "—", ", ".join(plan["loads"]) or "—"]
        lines.append(f"| {link(chapter)} | " + " | ".join(cells) + " |")
    lines += ["", "**Each recipe**: parameters, counted cost, estimated peak memory and minutes "
              "on the machine each preset is written for (" + " / ".join(
                  f"`{p}`" for p in presets) + ")", "",
              "| recipe | parameters | TFLOP | peak GiB | minutes |", "|---|---|---|---|---|"]
    for name in RECIPES:
        works = [recipe_work(name, p) for p in presets]
        params = "—"
        if name in WHERE:
            params = " / ".join(f"{_n_params(spec(name).build(recipe(name, p).model)):,}"
                                for p in presets)
        minutes = " / ".join(_minutes(w.seconds(BUDGETS.get(p, ("laptop",))[0]) / 60)
                             for p, w in zip(presets, works))
        lines.append(f"| `{name}`{' (one image)' if name == 'vqgan_clip' else ''} | {params} | "
                     + " / ".join(f"{w.flops / 1e12:,.1f}" for w in works) + " | "
                     + " / ".join(f"{w.peak_bytes / GIB:.2f}" for w in works) + f" | {minutes} |")
    return lines + [""]


def describe(chapter: int | None = None, preset: str | None = None) -> str:
    """The first cell's line: device, precision, preset, and (for a chapter) the expected
    minutes from an empty cache on this kind of machine, with what it trains and loads."""
    preset = preset_name(preset)
    device = get_device()
    dtype = amp_dtype(device)
    gpu = f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else ""
    precision = str(dtype).replace("torch.", "") if dtype else "float32"
    line = f"device: {device.type}{gpu}, precision: {precision}, preset: {preset}"
    if chapter is None:
        return line
    machine = "laptop"
    if device.type == "cuda":
        machine = "h100" if torch.cuda.get_device_capability(device)[0] >= 8 else "t4"
    plan = chapter_plan(chapter, preset, installed=True)      # what this installation holds
    seconds = chapter_seconds(chapter, preset, machine, installed=True)
    what = [f"trains {', '.join(plan['trains'])}" if plan["trains"] else "trains no model"]
    if plan["loads"]:
        what.append(f"loads {', '.join(plan['loads'])} (shipped)")
    return (f"{line}\nchapter {chapter} from an empty cache: {_duration(seconds)} on "
            f"{MACHINES[machine].label}; it {' and '.join(what)}")


def _duration(seconds: float) -> str:
    if seconds < 60:
        return "under a minute"
    if seconds < 100 * 60:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.0f} h"


def start_chapter(chapter: int, preset: str | None = None) -> str:
    """What a chapter's first cell calls: declares the models the chapter introduces (trained
    here, so the reader sees training, not loaded from the shipped checkpoints; see
    ``minit2i.zoo.introduce``) and returns ``describe(chapter)``."""
    from . import zoo

    zoo.introduce(*CHAPTER_NEEDS[chapter].trains)
    return describe(chapter, preset)


# ---------------------------------------------------------------------------------------------
# Calibration: the laptop's rates and the chapters' other cells, from the committed runs
# ---------------------------------------------------------------------------------------------

def _repo() -> Path:
    return Path(__file__).resolve().parents[1]


# (kind, what was measured, file, how to read its seconds). A notebook pattern's matches are
# summed; a progress bar's "[MM:SS<", or its stored sentence's "steps in MM:SS", is read as
# seconds.
CALIBRATION = (
    ("gan", "shapes_gan", "notebooks/01_gan.ipynb",
     r"shapes_gan: (?:100%.*?\[|\d+/\d+ steps in )(\d+):(\d+)"),
    ("conv", "vqvae", "benchmarks/results/vq.json", "models.vqvae.seconds"),
    ("conv", "vqgan", "benchmarks/results/vq.json", "models.vqgan.seconds"),
    ("conv", "vqgan_control", "notebooks/05_vqgan.ipynb", r"control fine-tuned in (\d+) s"),
    ("clip", "clip", "benchmarks/results/clip.json", "train_seconds"),
    ("clip", "clip_temperature", "notebooks/04_clip.ipynb",
     r"(?:s = \d+|learned \(from [\d.]+\)): (?:100%.*?\[|\d+/\d+ steps in )(\d+):(\d+)"),
    ("transformer", "dalle", "benchmarks/results/dalle.json", "pipeline_laptop_seconds.dalle"),
    ("small_transformer", "shapes_vit", "notebooks/02_attention.ipynb", r"trained in (\d+) s"),
    ("small_transformer", "caption_lm", "notebooks/02_attention.ipynb",
     r"(?:causal mask|peeking\)): (?:100%.*?\[|\d+/\d+ steps in )(\d+):(\d+)"),
    ("search", "search_8", "notebooks/07_vqgan_clip.ipynb", r"steps for 8 prompts in (\d+) s"),
    ("search", "search_32", "benchmarks/results/vqgan_clip.json", "seconds"),
    ("sampling", "dalle_draw_1", "benchmarks/results/dalle.json", "1 / images_per_s"),
)


def recipes_fingerprint(preset: str = "cpu") -> str:
    """A short hash of every recipe of ``preset``: what the calibration was measured with."""
    from .presets import RECIPES
    blob = json.dumps({name: recipe_record(name, preset) for name in RECIPES}, sort_keys=True,
                      default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


# The cpu recipes the committed runs above were made with (recipes_fingerprint("cpu")): once the
# recipes change, the runs must be made again before the calibration can be checked against them.
CALIBRATED_WITH = "dc25585a5471"


def _outputs_text(path: Path) -> str:
    nb = json.loads(path.read_text())
    texts = []
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []):
            text = out.get("text") or out.get("data", {}).get("text/plain", "")
            texts.append("".join(text) if isinstance(text, list) else str(text))
    return "\n".join(texts)


def measured_seconds(source: str, how: str, root: Path | None = None) -> float:
    """Seconds recorded in a repository file: a JSON key path, or a pattern in a notebook's
    outputs (matches summed), scaled to the laptop's by the file's ``matmul_gflops`` reading
    (see ``laptop_seconds``); a clear error when the file or the figure is missing."""
    path = (root or _repo()) / source
    if not path.is_file():
        raise FileNotFoundError(f"calibration source {source} is missing")
    if path.suffix == ".json":
        invert = how.startswith("1 / ")
        record = value = json.loads(path.read_text())
        for key in how.removeprefix("1 / ").split("."):
            value = value[key]
        seconds = 1 / float(value) if invert else float(value)
        if how.split(".")[0].endswith("laptop_seconds"):
            return seconds                       # scaled already, part by part, where written
        return laptop_seconds(seconds, record.get("matmul_gflops"))
    total, found = 0.0, False
    for match in re.finditer(how, _outputs_text(path)):
        groups = [int(g) for g in match.groups()]
        total += groups[0] * 60 + groups[1] if len(groups) == 2 else groups[0]
        found = True
    if not found:
        raise ValueError(f"no figure matching {how!r} in the outputs of {source}")
    return laptop_seconds(total, notebook_record(path).get("matmul_gflops"))


def calibration_work(what: str) -> Work:
    """The counted work of a calibration entry, in the cpu preset."""
    if what in ("shapes_gan", "vqvae", "vqgan", "clip", "dalle"):
        return model_work(what, "cpu")
    if what.startswith("search_"):
        return search(what, "cpu", int(what.split("_")[1]))
    if what == "dalle_draw_1":
        return dalle_drawing(what, "cpu", 1)
    return experiment_work(what, "cpu")


def calibrate(root: Path | None = None) -> dict:
    """Fit each kind's laptop rate to the committed runs (FLOPs over the seconds left after
    host work, pooled over the kind's runs), then each chapter's other cells (``REST_S``)."""
    runs = []
    for kind, what, source, how in CALIBRATION:
        w = calibration_work(what)
        seconds = measured_seconds(source, how, root)
        host = w.host_s + w.noise / MACHINES["laptop"].noise_per_s
        runs.append({"kind": kind, "what": what, "source": source, "seconds": seconds,
                     "tflop": w.flops / 1e12, "host_s": host,
                     "gflop_per_s": w.flops / max(seconds - host, 1e-9) / 1e9})
    rates = {}
    for kind in KINDS:
        mine = [r for r in runs if r["kind"] == kind]
        flops = sum(r["tflop"] * 1e12 for r in mine)
        seconds = sum(r["seconds"] - r["host_s"] for r in mine)
        rates[kind] = flops / seconds if mine else None
    laptop = dataclasses.replace(MACHINES["laptop"],
                                 rates={k: v or MACHINES["laptop"].rates[k]
                                        for k, v in rates.items()})
    rest = {}
    for chapter in CHAPTERS:
        path = (root or _repo()) / "notebooks" / f"{CHAPTERS[chapter]}.ipynb"
        measured = measured_minutes(chapter, root)
        if not measured or measured[0] != "cpu":
            continue
        text = _outputs_text(path)
        # what that run trained: what it says it trained, and the chapter's own models unless
        # it says it loaded them (chapter 1 trains quietly)
        trained = list(dict.fromkeys(re.findall(r"training (\w+) with the cpu recipe", text)))
        trained += [n for n in CHAPTER_NEEDS[chapter].trains
                    if n not in trained and f"loaded {n} (cpu)" not in text]
        works = ([model_work(n, "cpu") for n in trained]
                 + [experiment_work(n, "cpu") for n in CHAPTER_NEEDS[chapter].experiments])
        counted = sum(w.seconds(laptop) for w in works)
        rest[chapter] = {"measured_s": measured[1] * 60, "counted_s": counted, "trained": trained,
                         "rest_s": max(REST_FLOOR_S, measured[1] * 60 - counted)}
    return {"runs": runs, "rates": rates, "rest": rest}


# ---------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m minit2i.budget",
        description="Each chapter's counted cost from an empty cache, against its budget.")
    parser.add_argument("--preset", action="append", choices=PRESETS,
                        help="preset(s) to show (default: cpu and full)")
    parser.add_argument("--chapter", type=int, help="one chapter's line, as its first cell says")
    parser.add_argument("--markdown", action="store_true", help="the status page's table")
    parser.add_argument("--calibrate", action="store_true",
                        help="refit the laptop's rates and REST_S from the committed runs")
    args = parser.parse_args(argv)
    presets = tuple(args.preset or ("cpu", "full"))
    if args.calibrate:
        result = calibrate()
        for r in result["runs"]:
            print(f"{r['kind']:>17} {r['what']:>16}: {r['tflop']:8.2f} TFLOP in "
                  f"{r['seconds']:7.1f} s -> {r['gflop_per_s']:6.1f} GFLOP/s  ({r['source']})")
        print("rates (GFLOP/s):", {k: round(v / 1e9, 1) for k, v in result["rates"].items() if v})
        print("REST_S:", {c: round(v["rest_s"]) for c, v in result["rest"].items()})
        print("CALIBRATED_WITH:", repr(recipes_fingerprint("cpu")))
        return 0
    if args.chapter is not None:
        for preset in presets:
            print(describe(args.chapter, preset))
        return 0
    if args.markdown:
        print("\n".join(markdown(presets)))
        return 0
    for row in budget_rows(presets):
        machine = BUDGETS[row["preset"]][0]
        flag = " OVER" if row["budget"] and row[machine] > row["budget"] else ""
        print(f"{row['preset']:>5} ch{row['chapter']}: {row['tflop']:9.2f} TFLOP, peak "
              f"{row['peak_gib']:5.2f} GiB | laptop {_minutes(row['laptop']):>6} | T4 "
              f"{_minutes(row['t4']):>6} | H100 {_minutes(row['h100']):>6} min | measured "
              f"{row['measured_text']:>5} | budget {row['budget']} on {machine}{flag} | "
              f"trains {', '.join(row['trains']) or '-'}; loads {', '.join(row['loads']) or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
