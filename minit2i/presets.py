"""The one place that says how big each model is and how long it trains, per preset.

``RECIPES[name][preset]`` is a dict with ``model`` (the model's config fields) and ``train``
(steps, batch size, learning rate, ...). ``smoke`` must run in seconds on a CPU (CI), ``cpu`` in a
few minutes on a laptop, ``full`` in minutes on one GPU. Read it with ``recipe(name, preset)``.
"""

from __future__ import annotations

import copy

from .config import PRESETS, preset_name

RECIPES: dict[str, dict[str, dict]] = {
    # A tiny model used by the tests of train-or-load.
    "toy": {
        "smoke": {"model": {"width": 8}, "train": {"steps": 5, "lr": 1e-2}},
        "cpu": {"model": {"width": 16}, "train": {"steps": 50, "lr": 1e-2}},
        "full": {"model": {"width": 32}, "train": {"steps": 500, "lr": 1e-2}},
    },
    # --- chapter 1: gan.py ---------------------------------------------------------------
    # --- chapter 2: transformer.py ------------------------------------------------------
    # --- chapter 3: vq.py ----------------------------------------------------------------
    # --- chapter 4: clip.py --------------------------------------------------------------
    # --- chapter 5: vqgan.py -------------------------------------------------------------
    # --- chapter 6: dalle.py -------------------------------------------------------------
    # --- chapter 7: vqgan_clip.py --------------------------------------------------------
}


def recipe(name: str, preset: str | None = None) -> dict:
    """A copy of ``RECIPES[name][preset]`` (preset as in ``config.preset_name``)."""
    if name not in RECIPES:
        raise ValueError(f"no recipe for model {name!r}; known models: {', '.join(RECIPES)}")
    preset = preset_name(preset)
    missing = [p for p in PRESETS if p not in RECIPES[name]]
    if missing:
        raise ValueError(f"recipe {name!r} lacks presets {missing}")
    return copy.deepcopy(RECIPES[name][preset])
