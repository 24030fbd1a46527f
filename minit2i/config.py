"""Devices, mixed precision, seeds and presets: the machinery every chapter shares.

``MINIT2I_PRESET`` picks how big and how long: ``smoke`` (CI, seconds on a CPU), ``cpu`` (a laptop,
minutes, results still meaningful) or ``full`` (one CUDA GPU: the book's results). Without it the
preset is ``full`` when CUDA is present, else ``cpu``. Every model's sizes and steps per preset
live in one table, ``minit2i.presets.RECIPES``. See the book's page "How to run this book".
"""

from __future__ import annotations

import contextlib
import os
import random

import numpy as np
import torch

PRESETS = ("smoke", "cpu", "full")


def get_device() -> torch.device:
    """The best device here: CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device_name() -> str:
    """What a record calls this machine: "cpu", "mps" or the GPU's name (e.g. "Tesla T4")."""
    device = get_device()
    if device.type == "cuda":
        return torch.cuda.get_device_name()
    return device.type


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
    """bf16 where the GPU supports it, else fp16 on CUDA (e.g. Colab's T4), None (fp32) on CPU."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device | str):
    """A context that runs the forward pass in the device's mixed precision (or does nothing)."""
    device = torch.device(device)
    dtype = amp_dtype(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device | str) -> torch.amp.GradScaler:
    """A gradient scaler, enabled only for fp16 (bf16 and fp32 need none)."""
    device = torch.device(device)
    return torch.amp.GradScaler(device.type if device.type == "cuda" else "cpu",
                                enabled=amp_dtype(device) == torch.float16)


def seed_everything(seed: int = 0) -> None:
    """Seed Python, numpy and torch (all devices) so a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def describe(preset: str | None = None) -> str:
    """One line for a notebook's setup cell: device, precision and preset."""
    device = get_device()
    dtype = amp_dtype(device)
    gpu = f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else ""
    precision = str(dtype).replace("torch.", "") if dtype else "float32"
    return (f"device: {device.type}{gpu}, precision: {precision}, "
            f"preset: {preset_name(preset)}")
