"""Rebuild the checkpoints minit2i ships, from nothing::

    python -m minit2i.tools.ship [--preset cpu] [--out minit2i/checkpoints] [--cache DIR]

Trains every model of ``minit2i.budget.SHIPPED`` (the ones later chapters import: the
tokenizers, the two CLIPs, the DALL-E) with the preset's real recipes into a fresh, empty cache,
never starting from a shipped checkpoint (``MINIT2I_NO_SHIPPED=1``), so each is trained from what
was trained before it in this run; then checks each file (recipe and sha256, loaded with
``weights_only=True``) and copies it to ``--out`` as ``NAME-PRESET.pt``, printing the sizes.
``minit2i.zoo.load_or_train`` loads them from there whenever its cache has no model for the
recipe. On two CPU cores the cpu preset takes about 35 minutes. See the book's page "How these
pages were made".
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from .. import zoo
from ..budget import SHIPPED, SHIPPED_PRESET
from ..config import PRESETS, preset_name
from ..presets import recipe

MAX_MB = 60.0      # what the repository should carry in all


def ship(preset: str = SHIPPED_PRESET, out: Path | None = None, cache: Path | None = None,
         names: tuple[str, ...] = SHIPPED, device=None) -> dict[str, int]:
    """Train ``names`` afresh in an empty cache and copy them to ``out``; returns their sizes."""
    preset = preset_name(preset)
    out = Path(out) if out is not None else zoo.SHIPPED_DIR
    cache = Path(cache) if cache is not None else Path(tempfile.mkdtemp(prefix="minit2i-ship-"))
    if cache.exists() and any(cache.iterdir()):
        raise ValueError(f"the cache {cache} is not empty: the shipped models are trained from "
                         "nothing, so give an empty or new folder")
    saved = {k: os.environ.get(k) for k in ("MINIT2I_CACHE", "MINIT2I_NO_SHIPPED")}
    os.environ.update(MINIT2I_CACHE=str(cache), MINIT2I_NO_SHIPPED="1")
    sizes = {}
    try:
        for name in names:
            start = time.perf_counter()
            zoo.load_or_train(name, preset, device=device)
            source = zoo.checkpoint_path(name, preset)
            target = out / f"{name}-{preset}.pt"
            out.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            zoo.load(target, zoo.spec(name).build, recipe(name, preset).model,
                     zoo.recipe_record(name, preset), check_hash=True)
            sizes[name] = target.stat().st_size
            print(f"shipped {target} ({sizes[name] / 1e6:.1f} MB, "
                  f"{time.perf_counter() - start:.0f} s)", flush=True)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m minit2i.tools.ship",
        description="Train the shipped models from nothing and copy them into the package.")
    parser.add_argument("--preset", choices=PRESETS, default=SHIPPED_PRESET,
                        help=f"whose recipes (default {SHIPPED_PRESET}, the ones the book ships)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"where the files go (default {zoo.SHIPPED_DIR})")
    parser.add_argument("--cache", type=Path, default=None,
                        help="an empty folder to train in (default: a new temporary one)")
    args = parser.parse_args(argv)
    sizes = ship(args.preset, args.out, args.cache)
    total = sum(sizes.values()) / 1e6
    print(f"{len(sizes)} checkpoints, {total:.1f} MB in all")
    if total > MAX_MB:
        print(f"that is more than the {MAX_MB:g} MB the repository should carry", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
