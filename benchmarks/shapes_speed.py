"""How fast the Shapes world renders, on one CPU core.

    python benchmarks/shapes_speed.py [--n 20000]

Writes benchmarks/results/shapes_speed.json. The target is >= 5,000 images/s at 64x64.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch
from common import write_record

from minit2i.shapes import ShapesDataset, render, sample_scene

TARGET = 5000


def best_rate(fn, n: int, repeats: int = 3) -> float:
    """Items per second of the fastest of ``repeats`` runs (the machine may be busy)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"
                                             / "shapes_speed.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    scenes = [sample_scene(rng, 1 + i % 2) for i in range(args.n)]
    m = args.n // 4
    ds = ShapesDataset("train", m)
    rates = {
        "render_64_images_per_s": best_rate(lambda: [render(s, 64) for s in scenes], args.n),
        "sample_and_render_64_per_s": best_rate(
            lambda: [render(sample_scene(rng, 1 + i % 2), 64) for i in range(args.n)], args.n),
        "dataset_items_per_s": best_rate(lambda: [ds[i] for i in range(m)], m),
        "dataset_tensors_items_per_s": best_rate(ds.tensors, m),
    }
    for name, rate in rates.items():
        print(f"{name:>30}: {rate:10,.0f}")
    result = {"benchmark": "shapes_speed", "device": "cpu (1 thread)",
              "cpu": platform.processor() or platform.machine(),
              "python": platform.python_version(), "torch": torch.__version__, "n": args.n,
              "target_images_per_s": TARGET,
              "meets_target": rates["render_64_images_per_s"] >= TARGET, **rates}
    write_record(result, args.out)


if __name__ == "__main__":
    main()
