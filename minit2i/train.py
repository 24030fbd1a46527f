"""A generic training loop and the schedules the chapters share.

The loop knows nothing of models: it calls ``step(batch, i) -> dict of loss tensors`` for each
batch, shows a tqdm progress bar with the losses and the speed, calls callbacks, and keeps a
history. It never calls ``.item()`` inside the inner loop (that would make the CPU wait for the
GPU each step); losses are gathered on the device and read every ``log_every`` steps. Ctrl-C (or
the notebook's stop button) ends training early and leaves the model as it is, usable.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm


@dataclass
class History:
    """Losses averaged over each logging window, with the step at which each was taken."""

    steps: list[int] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    interrupted: bool = False

    def log(self, step: int, means: dict[str, float]) -> None:
        self.steps.append(step)
        for k, v in means.items():
            self.values.setdefault(k, []).append(v)

    def __getitem__(self, key: str) -> list[float]:
        return self.values[key]

    def last(self, key: str) -> float:
        return self.values[key][-1]


def fit(step: Callable[[object, int], dict[str, torch.Tensor]], batches: Iterable, steps: int,
        *, log_every: int = 25, callbacks: Iterable[Callable[[int, History], None]] = (),
        desc: str = "training", progress: bool = True) -> History:
    """Run ``steps`` training steps, each ``step(batch, i)``; return the History.

    ``step`` does the forward, backward and optimiser update and returns detached scalars.
    Each callback is called as ``cb(i, history)`` after every logging window.
    """
    history = History()
    sums: dict[str, torch.Tensor] = {}
    window = 0
    start = time.perf_counter()
    it: Iterator = iter(batches)
    bar = tqdm(range(steps), desc=desc, disable=not progress, leave=True)
    try:
        for i in bar:
            out = step(next(it), i)
            for k, v in out.items():
                v = v.detach() if isinstance(v, torch.Tensor) else torch.tensor(float(v))
                sums[k] = sums[k] + v if k in sums else v.clone()
            window += 1
            if window == log_every or i == steps - 1:
                means = {k: float(v) / window for k, v in sums.items()}   # one sync per window
                history.log(i + 1, means)
                bar.set_postfix({k: f"{v:.4g}" for k, v in list(means.items())[:4]})
                sums, window = {}, 0
                for cb in callbacks:
                    cb(i + 1, history)
    except KeyboardInterrupt:
        history.interrupted = True
        print(f"Interrupted at step {len(history.steps) and history.steps[-1]}: "
              "the model keeps the weights it has; carry on with the next cell.")
    finally:
        bar.close()
        history.seconds = time.perf_counter() - start
    return history


def cosine_lr(step: int, total: int, warmup: int = 0, min_ratio: float = 0.1) -> float:
    """Learning-rate multiplier: linear warmup to 1, then cosine down to ``min_ratio``."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


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


def to_float_image(x: torch.Tensor) -> torch.Tensor:
    """uint8 images (…, 3, H, W) in [0, 255] -> float in [-1, 1]."""
    return x.float() / 127.5 - 1


def to_uint8_image(x: torch.Tensor) -> torch.Tensor:
    """float images in [-1, 1] -> uint8 in [0, 255]."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
