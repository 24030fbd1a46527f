"""Training's one home: the optimiser step, parameter groups, schedules and the loop.

``OptimizerStep`` does everything that follows a loss, in one place: backward (scaled when fp16
needs it), unscale, gradient clipping, the optimiser step, the scaler's update and the learning
rate schedule. Every trainer in the package calls it; none writes those lines itself.

``fit`` knows nothing of models: it calls ``step(batch, i) -> dict of loss tensors`` for each
batch, shows a tqdm progress bar with the losses and the speed, calls callbacks (a callback that
returns True stops training), and keeps a history. It never calls ``.item()`` inside the inner
loop (that would make the CPU wait for the GPU each step); losses are gathered on the device and
read every ``log_every`` steps. Ctrl-C (or the notebook's stop button) ends training early and
leaves the model as it is, usable.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from .config import grad_scaler


def cosine_lr(step: int, total: int, warmup: int = 0, min_ratio: float = 0.1) -> float:
    """Learning-rate multiplier: linear warmup to 1, then cosine down to ``min_ratio``."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: weight decay on the weights of linear and convolutional layers only.

    Biases, norms, embedding tables and free parameters (positions, CLIP's temperature) are not
    decayed: shrinking them towards zero has no regularising meaning, and decaying CLIP's
    log-temperature would pull its scale towards 1 against what the loss learns.
    """
    decay: list[nn.Parameter] = []
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)) and module.weight.requires_grad:
            decay.append(module.weight)
    ids = {id(p) for p in decay}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": rest, "weight_decay": 0.0}]


class OptimizerStep:
    """Everything after the loss: ``update(loss)`` backpropagates and takes one optimiser step.

    ``params`` are parameters or parameter groups (see ``param_groups``). ``optimizer`` is
    ``"adamw"`` or ``"adam"``; the learning rate follows ``cosine_lr(i, steps, warmup)`` when
    ``steps`` is given, else stays constant; ``clip`` is the gradient-norm limit (None: none).
    On fp16 the loss is scaled before backward and the gradients unscaled before clipping, so
    small gradients do not underflow; a step whose gradients overflowed is skipped by the scaler.
    """

    def __init__(self, params, lr: float, *, device: torch.device | str = "cpu",
                 optimizer: str = "adamw", betas: tuple[float, float] = (0.9, 0.999),
                 weight_decay: float = 0.0, eps: float = 1e-8, steps: int | None = None,
                 warmup: int = 0, min_ratio: float = 0.1, clip: float | None = 1.0):
        kinds = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}
        if optimizer not in kinds:
            raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(kinds)}")
        params = list(params)
        if not params:
            raise ValueError("no parameters to optimise")
        extra = {"weight_decay": weight_decay} if optimizer == "adamw" else {}
        self.optimizer = kinds[optimizer](params, lr=lr, betas=betas, eps=eps, **extra)
        self.scaler = grad_scaler(device)
        self.schedule = (torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda i: cosine_lr(i, steps, warmup, min_ratio)) if steps else None)
        self.clip = clip

    @property
    def params(self) -> list[nn.Parameter]:
        return [p for g in self.optimizer.param_groups for p in g["params"]]

    def loss_scale(self) -> float:
        """The factor backward multiplies the loss by: the fp16 scaler's scale, else 1."""
        return float(self.scaler.get_scale()) if self.scaler.is_enabled() else 1.0

    def update(self, loss: torch.Tensor) -> torch.Tensor | None:
        """zero_grad, backward, unscale, clip, step, scaler update, schedule step.

        Returns the gradient norm before clipping (None without clipping)."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        norm = None
        if self.clip is not None:
            self.scaler.unscale_(self.optimizer)
            norm = nn.utils.clip_grad_norm_(self.params, self.clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.schedule is not None:
            self.schedule.step()
        return norm

    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]


@dataclass
class History:
    """Losses averaged over each logging window, with the step at which each was taken."""

    steps: list[int] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    interrupted: bool = False
    stopped_early: bool = False
    steps_done: int = 0

    def log(self, step: int, means: dict[str, float]) -> None:
        self.steps.append(step)
        for k, v in means.items():
            self.values.setdefault(k, []).append(v)

    def __getitem__(self, key: str) -> list[float]:
        return self.values[key]

    def last(self, key: str) -> float:
        return self.values[key][-1]


def fit(step: Callable[[object, int], dict[str, torch.Tensor]], batches: Iterable, steps: int,
        *, log_every: int = 25, callbacks: Iterable[Callable[[int, History], bool | None]] = (),
        desc: str = "training", progress: bool = True) -> History:
    """Run up to ``steps`` training steps, each ``step(batch, i)``; return the History.

    ``step`` does the forward pass and an ``OptimizerStep.update`` and returns detached scalars.
    Each callback is called as ``cb(i, history)`` after every logging window; when one returns
    True, training stops there (``history.stopped_early``) and the bar shows where.
    """
    if steps < 1 or log_every < 1:
        raise ValueError(f"steps and log_every must be >= 1, got {steps} and {log_every}")
    history = History()
    sums: dict[str, torch.Tensor] = {}
    window = 0
    start = time.perf_counter()
    it: Iterator = iter(batches)
    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=True)
    try:
        for i in bar:
            out = step(next(it), i)
            history.steps_done = i + 1
            for k, v in out.items():
                v = v.detach() if isinstance(v, torch.Tensor) else torch.tensor(float(v))
                sums[k] = sums[k] + v if k in sums else v.clone()
            window += 1
            if window == log_every or i == steps - 1:
                means = {k: float(v) / window for k, v in sums.items()}   # one sync per window
                history.log(i + 1, means)
                bar.set_postfix({k: f"{v:.4g}" for k, v in list(means.items())[:4]})
                sums, window = {}, 0
                stop = [cb(i + 1, history) for cb in callbacks]
                if any(stop) and i + 1 < steps:
                    history.stopped_early = True
                    bar.set_description(f"{desc} (stopped early at step {i + 1})")
                    break
    except KeyboardInterrupt:
        history.interrupted = True
        print(f"Interrupted at step {history.steps_done}: "
              "the model keeps the weights it has; carry on with the next cell.")
    finally:
        bar.close()
        history.seconds = time.perf_counter() - start
    return history


def batches_from(*tensors: torch.Tensor, batch_size: int, device: torch.device | str = "cpu",
                 seed: int = 0, transform: Callable | None = None) -> Iterator[tuple]:
    """Endless random batches from tensors that share their first dimension.

    The tensors are moved to ``device`` once; each batch is an index into them, so training on
    the GPU never waits for the host. uint8 images can be turned to floats by ``transform``.
    """
    n = tensors[0].shape[0]
    if any(t.shape[0] != n for t in tensors):
        raise ValueError(f"tensors differ in length: {[t.shape[0] for t in tensors]}")
    if batch_size > n:
        raise ValueError(f"batch_size {batch_size} is larger than the data ({n} items)")
    tensors = tuple(t.to(device) for t in tensors)
    g = torch.Generator(device="cpu").manual_seed(seed)
    while True:
        perm = torch.randperm(n, generator=g).to(device)
        for j in range(0, n - batch_size + 1, batch_size):
            idx = perm[j:j + batch_size]
            batch = tuple(t[idx] for t in tensors)
            yield transform(*batch) if transform else batch
