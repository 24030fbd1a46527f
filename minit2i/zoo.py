"""Train or load: every chapter's trained models, by name.

``load_or_train("vqgan")`` returns the chapter-5 VQGAN for the preset's recipe
(``minit2i.presets``), from the first of:

1. **the cache** (``$MINIT2I_CACHE``, default ``~/.cache/minit2i``): a model trained here before;
2. **the shipped checkpoint** of this very recipe: the package ships the models later chapters
   import (``minit2i/checkpoints``), so a chapter that needs chapter 5's VQGAN starts its own
   work at once, in Colab too. A preset whose recipe equals the shipped one (and was trained
   from the same models) uses it as well;
3. **training** with the recipe, seeded, then saved to the cache.

A chapter that *introduces* a model trains it, so the reader sees training: its first cell
declares the models it introduces (``introduce``, which ``minit2i.budget.start_chapter``
calls), or a call passes ``shipped=False``. ``shipped=True`` takes a shipped model even for a
model being introduced (for a reader in a hurry). ``retrain=True`` (or ``MINIT2I_RETRAIN=1``)
trains afresh whatever exists; ``MINIT2I_NO_SHIPPED=1`` never uses a shipped checkpoint.

Training is seeded before the model is built (with the recipe's ``seed``), so the same recipe
gives the same weights whatever ran before, and the caller's random streams are left as they
were. A checkpoint is a plain dict loaded with ``weights_only=True``: the state dict, the model
config, the train settings and the recipes of the models it was trained from (all as plain
data), its metrics, the package version and a sha256 of the state. Loading checks all of them
against the recipe and says what differs and how to retrain.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .config import PRESETS, get_device, matmul_gflops, preset_name, seeded
from .presets import recipe

SHIPPED_DIR = Path(__file__).resolve().parent / "checkpoints"


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
_INTRODUCED: set[str] = set()


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


def introduce(*names: str) -> None:
    """Declare the models this chapter introduces: ``load_or_train`` trains them (or takes them
    from the cache) rather than loading a shipped checkpoint. Replaces the earlier declaration."""
    _INTRODUCED.clear()
    _INTRODUCED.update(names)


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


# ---------------------------------------------------------------------------------------------
# Recipes as data, and where checkpoints live
# ---------------------------------------------------------------------------------------------

def depends_on(name: str, preset: str | None = None) -> tuple[str, ...]:
    """The zoo models that training ``name`` loads first: the VQGAN's start (``init_from``),
    the DALL-E's image tokenizer."""
    t = recipe(name, preset).train
    if getattr(t, "init_from", None):
        return (t.init_from,)
    if name == "dalle":
        return (t.tokenizer,)
    return ()


def recipe_record(name: str, preset: str | None = None) -> dict:
    """The recipe of ``name`` as plain data: model config, train settings, and the records of
    the models it is trained from. Two presets share a model when their records are equal."""
    r = recipe(name, preset)
    return {"config": dataclasses.asdict(r.model) if r.model is not None else None,
            "train": dataclasses.asdict(r.train),
            "needs": {dep: recipe_record(dep, preset) for dep in depends_on(name, preset)}}


def cache_dir() -> Path:
    """Where checkpoints live: $MINIT2I_CACHE, else ~/.cache/minit2i."""
    root = os.environ.get("MINIT2I_CACHE") or Path.home() / ".cache" / "minit2i"
    return Path(root)


def checkpoint_path(name: str, preset: str | None = None) -> Path:
    return cache_dir() / f"{name}-{preset_name(preset)}.pt"


def shipped_path(name: str, preset: str | None = None) -> Path | None:
    """The shipped checkpoint for this recipe: ``checkpoints/NAME-P.pt`` of this preset, else of
    a preset whose recipe record is the same; None when the package ships none."""
    preset = preset_name(preset)
    own = SHIPPED_DIR / f"{name}-{preset}.pt"
    if own.is_file():
        return own
    if name not in WHERE and name not in _SPECS:
        return None
    record = recipe_record(name, preset)
    for other in PRESETS:
        path = SHIPPED_DIR / f"{name}-{other}.pt"
        if other != preset and path.is_file() and recipe_record(name, other) == record:
            return path
    return None


# ---------------------------------------------------------------------------------------------
# Checkpoints: save, check, load
# ---------------------------------------------------------------------------------------------

def state_hash(state_dict: dict) -> str:
    """sha256 over the state's names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for key in sorted(state_dict):
        t = state_dict[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save(model: nn.Module, config, path: Path, metrics: dict | None = None,
         record: dict | None = None) -> None:
    """Write a checkpoint that ``torch.load(weights_only=True)`` can read: the state, the
    config, the recipe ``record`` (train settings and what it was trained from), the metrics,
    the version and the state's sha256."""
    from . import __version__

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    record = record or {}
    torch.save({"state_dict": state, "config": dataclasses.asdict(config),
                "train": record.get("train"), "needs": record.get("needs", {}),
                "metrics": dict(metrics or {}), "version": __version__,
                "sha256": state_hash(state)}, tmp)
    tmp.replace(path)            # never leave a half-written checkpoint behind


def _differences(saved: dict | None, expected: dict, prefix: str = "") -> list[str]:
    out = []
    saved = saved or {}
    for key in sorted(set(saved) | set(expected)):
        a, b = saved.get(key), expected.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b and not (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple))
                             and list(a) == list(b)):
            out.append(f"{prefix}{key}: {a!r} in the file, {b!r} in the recipe")
    return out


RETRAIN_HINT = ("pass retrain=True (or set MINIT2I_RETRAIN=1) to train this recipe afresh, "
                "or shipped=False (MINIT2I_NO_SHIPPED=1) to never use a shipped checkpoint")


def load(path: Path, build: Callable[[object], nn.Module], config,
         record: dict | None = None, check_hash: bool = False) -> tuple[nn.Module, dict]:
    """Build a model from ``config`` and load ``path`` into it.

    A config that differs is an error; so are train settings or trained-from recipes that
    differ from ``record`` (older checkpoints without them are not checked); with
    ``check_hash`` the state must match its sha256. Each error says what differs and how to
    retrain."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    expected = dataclasses.asdict(config)
    saved = ckpt.get("config", {})
    if saved != expected:
        diff = {k: (saved.get(k), v) for k, v in expected.items() if saved.get(k) != v}
        raise ValueError(
            f"checkpoint {path} was saved with another config: {diff} (saved, expected). "
            "Delete the file or pass retrain=True to train this config afresh.")
    if record is not None and ckpt.get("train") is not None:
        diff = (_differences(ckpt.get("train"), record["train"], "train.")
                + _differences(ckpt.get("needs"), record["needs"], "needs."))
        if diff:
            raise ValueError(f"checkpoint {path} was made with another recipe: "
                             + "; ".join(diff) + f". To use this recipe, {RETRAIN_HINT}.")
    if check_hash:
        digest = state_hash(ckpt["state_dict"])
        if digest != ckpt.get("sha256"):
            raise ValueError(f"checkpoint {path} is damaged: its weights hash to {digest[:12]}..., "
                             f"it records {str(ckpt.get('sha256'))[:12]}...; reinstall minit2i, "
                             f"or {RETRAIN_HINT}.")
    model = build(config)
    model.load_state_dict(ckpt["state_dict"])
    return model, ckpt.get("metrics", {})


def load_or_train(name: str, preset: str | None = None, *, device: torch.device | str | None = None,
                  retrain: bool = False, shipped: bool | None = None,
                  verbose: bool = True) -> nn.Module:
    """The trained model ``name`` for ``preset``: from the cache, else the shipped checkpoint of
    this recipe, else trained now and saved to the cache.

    ``shipped``: None (the default) uses a shipped checkpoint unless this chapter introduces
    ``name`` (see ``introduce``); False never does; True does even then. ``retrain`` (or
    ``MINIT2I_RETRAIN=1``) trains afresh; ``MINIT2I_NO_SHIPPED=1`` turns shipped ones off.
    The model comes back in eval mode on ``device``; its metrics are in ``model.metrics``.
    """
    s, preset = spec(name), preset_name(preset)
    device = torch.device(device) if device is not None else get_device()
    r = recipe(name, preset)
    record = recipe_record(name, preset)
    retrain = retrain or _flag("MINIT2I_RETRAIN")
    if shipped is None:
        shipped = name not in _INTRODUCED
    shipped = shipped and not retrain and not _flag("MINIT2I_NO_SHIPPED")
    path = checkpoint_path(name, preset)
    ship = shipped_path(name, preset) if shipped else None
    if path.exists() and not retrain:
        model, metrics = load(path, s.build, r.model, record)
        if verbose:
            print(f"loaded {name} ({preset}) from the cache: {path.name}")
    elif ship is not None:
        model, metrics = load(ship, s.build, r.model, record, check_hash=True)
        if verbose:
            print(f"loaded {name} ({preset}) from the checkpoint minit2i ships: {ship.name} "
                  "(load_or_train(..., shipped=False) trains it here)")
    else:
        if verbose:
            print(f"training {name} with the {preset} recipe (cached as {path.name} for next time)")
        with seeded(r.train.seed):               # same recipe, same weights, whatever ran before
            model = s.build(r.model).to(device)
            metrics = s.train(model, r.train, device, preset) or {}
        if preset != "smoke" and next(model.parameters()).device.type == "cpu":
            # the machine's speed beside the training seconds (minit2i.budget.laptop_seconds)
            metrics["matmul_gflops"] = matmul_gflops()
        save(model, r.model, path, metrics, record)
    model = model.to(device)
    model.metrics = metrics
    return model.eval()
