"""Train or load: every chapter's trained models, by name.

``load_or_train("vqgan")`` returns the chapter-5 VQGAN: from the cache (``$MINIT2I_CACHE``, default
``~/.cache/minit2i``) when a checkpoint for this preset is there, otherwise trained with the
preset's recipe (``minit2i.presets``) and saved. So every notebook runs on its own, as it must in
Colab, and a later chapter reuses an earlier chapter's model without training it twice.

Training is seeded before the model is built (with the recipe's ``seed``), so the same recipe
gives the same weights whatever ran before, and the caller's random streams are left as they
were. A checkpoint is a plain dict (state dict, config, metrics, version) loaded with
``weights_only=True``; one whose config differs from the recipe's gives a clear error.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .config import get_device, preset_name, seeded
from .presets import recipe


@dataclass(frozen=True)
class ModelSpec:
    """How to make a named model from its recipe: a builder and a trainer.

    ``build(model_config) -> nn.Module``; ``train(model, train_settings, device, preset) ->
    dict`` trains in place and returns metrics (floats and lists of floats).
    """

    build: Callable[[object], nn.Module]
    train: Callable[[nn.Module, object, torch.device, str], dict]


# name -> (module, model class, trainer), imported only when the model is asked for.
WHERE: dict[str, tuple[str, str, str]] = {
    "shapes_gan": ("minit2i.gan", "ShapesGAN", "train_shapes_gan"),
    "vqvae": ("minit2i.vq", "VQVAE", "train_vqvae"),
    "clip": ("minit2i.clip", "CLIP", "train_clip"),
    "clip_b": ("minit2i.clip", "CLIP", "train_clip"),
    "vqgan": ("minit2i.vqgan", "VQVAE", "train_vqgan"),
    "dalle": ("minit2i.dalle", "MiniDALLE", "train_dalle"),
}
_SPECS: dict[str, ModelSpec] = {}


def register(name: str, spec: ModelSpec) -> None:
    """Make ``name`` known to ``load_or_train`` (its recipe must be in ``presets.RECIPES``)."""
    _SPECS[name] = spec


def spec(name: str) -> ModelSpec:
    if name not in _SPECS and name in WHERE:
        module_name, cls, trainer = WHERE[name]
        module = importlib.import_module(module_name)
        _SPECS[name] = ModelSpec(getattr(module, cls), getattr(module, trainer))
    if name not in _SPECS:
        known = sorted(set(_SPECS) | set(WHERE))
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(known)}")
    return _SPECS[name]


def cache_dir() -> Path:
    """Where checkpoints live: $MINIT2I_CACHE, else ~/.cache/minit2i."""
    root = os.environ.get("MINIT2I_CACHE") or Path.home() / ".cache" / "minit2i"
    return Path(root)


def checkpoint_path(name: str, preset: str | None = None) -> Path:
    return cache_dir() / f"{name}-{preset_name(preset)}.pt"


def save(model: nn.Module, config, path: Path, metrics: dict | None = None) -> None:
    """Write a checkpoint that ``torch.load(weights_only=True)`` can read."""
    from . import __version__

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "config": dataclasses.asdict(config), "metrics": dict(metrics or {}),
                "version": __version__}, tmp)
    tmp.replace(path)            # never leave a half-written checkpoint behind


def load(path: Path, build: Callable[[object], nn.Module], config) -> tuple[nn.Module, dict]:
    """Build a model from ``config`` and load ``path`` into it; a config mismatch is an error."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    expected = dataclasses.asdict(config)
    saved = ckpt.get("config", {})
    if saved != expected:
        diff = {k: (saved.get(k), v) for k, v in expected.items() if saved.get(k) != v}
        raise ValueError(
            f"checkpoint {path} was saved with another config: {diff} (saved, expected). "
            "Delete the file or pass retrain=True to train this config afresh.")
    model = build(config)
    model.load_state_dict(ckpt["state_dict"])
    return model, ckpt.get("metrics", {})


def load_or_train(name: str, preset: str | None = None, *, device: torch.device | str | None = None,
                  retrain: bool = False, verbose: bool = True) -> nn.Module:
    """The trained model ``name`` for ``preset``: loaded from the cache, else trained and saved.

    The model comes back in eval mode on ``device``; its metrics are in ``model.metrics``.
    """
    s, preset = spec(name), preset_name(preset)
    device = torch.device(device) if device is not None else get_device()
    r = recipe(name, preset)
    path = checkpoint_path(name, preset)
    if path.exists() and not retrain:
        model, metrics = load(path, s.build, r.model)
        if verbose:
            print(f"loaded {name} ({preset}) from the cache: {path.name}")
        model = model.to(device)
    else:
        if verbose:
            print(f"training {name} with the {preset} recipe (cached as {path.name} for next time)")
        with seeded(r.train.seed):               # same recipe, same weights, whatever ran before
            model = s.build(r.model).to(device)
            metrics = s.train(model, r.train, device, preset) or {}
        save(model, r.model, path, metrics)
    model.metrics = metrics
    return model.eval()
