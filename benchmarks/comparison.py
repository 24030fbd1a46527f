"""Chapter 8: DALL-E and VQGAN+CLIP on the same prompts; writes results/comparison.json.

    python benchmarks/comparison.py [--preset smoke|cpu|full] [--n 64] [--per-prompt 4]

For ``n`` val captions (half one object, half two), each system draws ``per-prompt`` images
through ``minit2i.generate``. Recorded per system: the independent judge's GenEval-style scores
(``minit2i.eval.shapes_eval``), diversity (mean pairwise pixel distance among a prompt's images,
and the fraction of distinct scenes the judge reads in them), and seconds per image after a
warm-up call that trains or loads the models.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from common import write_record

from minit2i.config import device_name, preset_name
from minit2i.eval import judge, shapes_eval
from minit2i.generation import METHODS, generate
from minit2i.shapes import ShapesDataset, caption


def pixel_diversity(group: np.ndarray) -> float:
    """Mean over pairs of a prompt's images of the mean absolute pixel difference (in [0, 1])."""
    x = group.astype(np.float32) / 255
    return float(np.mean([np.abs(x[i] - x[j]).mean()
                          for i in range(len(x)) for j in range(i + 1, len(x))]))


def scene_key(image) -> tuple:
    return tuple(sorted((o.shape, o.color, o.size, o.position) for o in judge(image).objects))


def compare(method: str, prompts: list[str], per_prompt: int) -> dict:
    generate(prompts[:1], method=method, seed=123)                  # train or load, untimed
    start = time.perf_counter()
    images = generate(prompts, method=method, seed=0, n_per_prompt=per_prompt)
    seconds = time.perf_counter() - start
    asked = [p for p in prompts for _ in range(per_prompt)]
    groups = images.reshape(len(prompts), per_prompt, *images.shape[1:])
    scores = shapes_eval(images, asked)
    return {"seconds_per_image": seconds / len(images), "images": len(images),
            "scores": {k: v for k, v in scores.items() if k != "counts"},
            "counts": scores["counts"],
            "pixel_diversity": float(np.mean([pixel_diversity(g) for g in groups]))
            if per_prompt > 1 else None,
            "distinct_scenes": float(np.mean([len({scene_key(im) for im in g}) / per_prompt
                                              for g in groups]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None, help="smoke, cpu or full (default: as minit2i)")
    parser.add_argument("--n", type=int, default=64, help="number of prompts")
    parser.add_argument("--per-prompt", type=int, default=4, help="images per prompt")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" /
                                             "comparison.json"))
    args = parser.parse_args()
    preset = preset_name(args.preset)
    os.environ["MINIT2I_PRESET"] = preset           # generate() reads the preset from here

    data = ShapesDataset("val", n=args.n, n_objects=(1, 2), seed=8)
    prompts = [caption(data.scene_and_caption(i)[0].described()) for i in range(args.n)]
    result = {"benchmark": "comparison", "preset": preset, "device": device_name(),
              "prompts": args.n, "per_prompt": args.per_prompt,
              "methods": {m: compare(m, prompts, args.per_prompt) for m in METHODS}}
    for m, r in result["methods"].items():
        print(f"{m:11s}: overall {r['scores']['overall']:.2f}, "
              f"{r['seconds_per_image'] * 1000:.1f} ms/image, distinct {r['distinct_scenes']:.2f}")
    write_record(result, args.out)


if __name__ == "__main__":
    main()
