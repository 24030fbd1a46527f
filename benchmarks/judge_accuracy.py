"""How often the judge names each attribute right, on clean and on degraded renders.

Degraded = a slight Gaussian blur (sigma 0.6 px) then Gaussian noise (sigma 0.1 on [-1, 1]), since
generated images are never clean. Writes benchmarks/results/judge_accuracy.json.

    python benchmarks/judge_accuracy.py [--n 1000]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from common import write_record

from minit2i.eval import judge
from minit2i.shapes import SPLITS, render, sample_scene

ATTRIBUTES = ("shape", "color", "size", "position")


def degrade(image: np.ndarray, sigma: float = 0.1, blur: float = 0.6,
            seed: int = 0) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (3, H, W) in [-1, 1], blurred and noisy."""
    x = torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1
    t = torch.arange(-1, 2).float()
    k = torch.exp(-t**2 / (2 * blur**2))
    k = (k[:, None] * k[None]) / k.sum() ** 2
    x = F.conv2d(F.pad(x[:, None], (1, 1, 1, 1), mode="replicate"), k[None, None])[:, 0]
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(-1, 1)


def true_centroid(obj, size: int) -> tuple[float, float]:
    row, col = obj.row_col
    return ((col + 0.5 + 3 * obj.offset[0]) * size / 3, (row + 0.5 + 3 * obj.offset[1]) * size / 3)


def accuracy(n: int, size: int, noisy: bool, seed: int = 0) -> dict:
    """Per-attribute accuracy over n scenes (half one object, half two, all splits).

    Each true object is compared with the detection nearest its centre; a wrong object count
    counts every attribute of that scene as wrong.
    """
    rng = np.random.default_rng(seed)
    right = dict.fromkeys(ATTRIBUTES, 0)
    total, count_ok = 0, 0
    for i in range(n):
        scene = sample_scene(rng, 1 + i % 2, SPLITS[i % 3])
        image = render(scene, size)
        found = judge(degrade(image, seed=i) if noisy else image)
        total += len(scene.objects)
        if found.count != len(scene.objects):
            continue
        count_ok += 1
        for obj in scene.objects:
            cx, cy = true_centroid(obj, size)
            det = min(found.detections,
                      key=lambda d: (d.centroid[0] - cx) ** 2 + (d.centroid[1] - cy) ** 2)
            for a in ATTRIBUTES:
                right[a] += getattr(obj, a) == getattr(det.obj, a)
    per = {a: right[a] / total for a in ATTRIBUTES}
    return {"attributes": per, "all_attributes": float(np.mean(list(per.values()))),
            "object_count": count_ok / n}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"
                                             / "judge_accuracy.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = {}
    start = time.perf_counter()
    for size in (64, 32):
        for noisy in (False, True):
            key = f"{size}px_{'noisy' if noisy else 'clean'}"
            rows[key] = accuracy(args.n, size, noisy)
            print(f"{key:>12}: all attributes {rows[key]['all_attributes']:.4f}  "
                  + "  ".join(f"{a} {v:.4f}" for a, v in rows[key]["attributes"].items()))
    result = {"benchmark": "judge_accuracy", "device": "cpu", "cpu": platform.processor() or
              platform.machine(), "n_scenes": args.n, "seconds": time.perf_counter() - start,
              "degradation": "gaussian blur sigma 0.6 px, then noise sigma 0.1 on [-1, 1]",
              "results": rows}
    write_record(result, args.out)


if __name__ == "__main__":
    main()
