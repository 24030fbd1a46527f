"""Devices, mixed precision, seeds, presets and checked settings: what every chapter shares.

``MINIT2I_PRESET`` picks how big and how long: ``smoke`` (CI, seconds on a CPU), ``cpu`` (a laptop,
minutes, results still meaningful) or ``full`` (one CUDA GPU). Without it the preset is ``full``
when CUDA is present, else ``cpu``. Every model's sizes and steps per preset live in one table,
``minit2i.presets.RECIPES``, written with the ``settings`` dataclasses defined here. See the
book's page "How to run this book".

Mixed precision follows the device: bfloat16 on GPUs of compute capability 8.0 and newer (A100,
H100, RTX 30xx), float16 with a gradient scaler below it (Colab's T4, V100), float32 on the CPU
and on Apple's MPS. ``MINIT2I_AMP`` (``fp32``, ``bf16`` or ``fp16``) overrides the choice, which
the tests use to run every trainer under each precision on a CPU.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import os
import random
import time

import numpy as np
import torch

PRESETS = ("smoke", "cpu", "full")
AMP_CHOICES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


# ---------------------------------------------------------------------------------------------
# Settings: dataclasses that refuse a misspelt name
# ---------------------------------------------------------------------------------------------

def settings(cls):
    """Make ``cls`` a frozen dataclass whose constructor (and ``replace``) rejects unknown names.

    ``VQVAETrain(stpes=10)`` raises ``ValueError: VQVAETrain has no setting 'stpes' (did you
    mean 'steps'?); its settings are: steps, batch_size, ...`` instead of a bare TypeError, and
    ``r.replace(steps=10)`` returns a changed copy (the original cannot be changed by accident).
    """
    cls = dataclasses.dataclass(frozen=True)(cls)
    init = cls.__init__
    names = [f.name for f in dataclasses.fields(cls)]

    @functools.wraps(init)
    def checked_init(self, *args, **kwargs):
        for key in kwargs:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(f"{cls.__name__} has no setting {key!r}{hint}; its settings "
                                 f"are: {', '.join(names)}")
        init(self, *args, **kwargs)

    def replace(self, **changes):
        """A copy with some settings changed (unknown names are an error)."""
        return dataclasses.replace(self, **changes)

    cls.__init__ = checked_init
    cls.replace = replace
    return cls


# ---------------------------------------------------------------------------------------------
# Devices and precision
# ---------------------------------------------------------------------------------------------

def get_device() -> torch.device:
    """The best device here: CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device_name() -> str:
    """What a record calls this machine: "cpu", "mps" or the GPU's name."""
    device = get_device()
    return torch.cuda.get_device_name() if device.type == "cuda" else device.type


def preset_name(preset: str | None = None) -> str:
    """The preset in force: the argument, else $MINIT2I_PRESET, else full on CUDA / cpu."""
    name = preset or os.environ.get("MINIT2I_PRESET") or (
        "full" if torch.cuda.is_available() else "cpu")
    name = name.strip().lower()
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)} "
                         "(set MINIT2I_PRESET or pass preset=...)")
    return name


def amp_dtype(device: torch.device | str) -> torch.dtype | None:
    """The autocast dtype for ``device`` (None = float32).

    CUDA: bfloat16 from compute capability 8.0, else float16 (``torch.cuda.is_bf16_supported``
    is no guide: it says True on a T4, which only emulates bf16, several times slower).
    CPU and MPS: float32. ``$MINIT2I_AMP`` = fp32, bf16 or fp16 overrides.
    """
    device = torch.device(device)
    forced = os.environ.get("MINIT2I_AMP", "").strip().lower()
    if forced and forced != "auto":
        if forced not in AMP_CHOICES:
            raise ValueError(f"unknown MINIT2I_AMP {forced!r}; choose one of auto, "
                             f"{', '.join(AMP_CHOICES)}")
        return AMP_CHOICES[forced]
    if device.type != "cuda":
        return None
    major, _ = torch.cuda.get_device_capability(device)
    return torch.bfloat16 if major >= 8 else torch.float16


def autocast(device: torch.device | str):
    """A context that runs the forward pass in the device's mixed precision (or does nothing)."""
    device = torch.device(device)
    dtype = amp_dtype(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def full_precision(device: torch.device | str):
    """A context in which autocast is off: for the few computations that must stay fp32."""
    return torch.autocast(device_type=torch.device(device).type, enabled=False)


def grad_scaler(device: torch.device | str) -> torch.amp.GradScaler:
    """A gradient scaler, enabled only for fp16 (bf16 and fp32 need none)."""
    device = torch.device(device)
    return torch.amp.GradScaler(device.type if device.type in ("cuda", "cpu") else "cpu",
                                enabled=amp_dtype(device) == torch.float16)


# ---------------------------------------------------------------------------------------------
# Seeds
# ---------------------------------------------------------------------------------------------

def seed_everything(seed: int = 0) -> None:
    """Seed Python, numpy and torch (all devices) so a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def seeded(seed: int):
    """Run a block with every random generator seeded, then give the caller's states back.

    Whatever ran before, the block draws the same numbers; and whatever the block draws, the
    caller's random streams continue as if it had not run.
    """
    py, np_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        seed_everything(seed)
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(np_state)


def describe(preset: str | None = None) -> str:
    """One line for a notebook's setup cell: device, precision and preset."""
    device = get_device()
    dtype = amp_dtype(device)
    gpu = f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else ""
    precision = str(dtype).replace("torch.", "") if dtype else "float32"
    return (f"device: {device.type}{gpu}, precision: {precision}, "
            f"preset: {preset_name(preset)}")


def matmul_gflops(seconds: float = 2.0, n: int = 1024) -> float:
    """This machine's speed on the threads in force: GFLOP/s of fp32 (n x n) @ (n x n) products
    for about ``seconds`` (a reading to set beside a run's seconds, not a benchmark)."""
    g = torch.Generator().manual_seed(0)             # leaves the global random state alone
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    for _ in range(2):
        a @ b                                              # warm-up
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return round(2 * n**3 * count / (time.perf_counter() - start) / 1e9, 1)
