"""Chapter 7's VQGAN+CLIP: quality and speed, written to benchmarks/results/vqgan_clip.json.

    python benchmarks/vqgan_clip.py [--preset smoke|cpu|full] [--n 32] [--batch 16]

Generates one image for each of ``n`` distinct one-object ``val`` captions (optimised against
"clip"), then scores them with judges that took no part in the optimisation: the independent
Shapes judge (``minit2i.eval``) and the second CLIP "clip_b" (image->prompt R@1 among the
prompts, and mean cosine similarity). Target for ``full``: single object >= 0.80 at <= 30 s per
image.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from common import write_record

from minit2i.clip import distinct_scenes, embed_images, embed_texts, recall_at_k
from minit2i.config import device_name, preset_name
from minit2i.shapes import caption
from minit2i.train import to_float_image
from minit2i.vqgan_clip import generate_images, image_tokenizer_name
from minit2i.zoo import load_or_train


def judge(images, prompts) -> dict:
    """The independent Shapes judge's scores, or a note when chapter 8's module is missing."""
    try:
        from minit2i.eval import shapes_eval
    except ImportError:
        return {"judge": "minit2i.eval.shapes_eval not available"}
    scores = shapes_eval(images, prompts)
    return {f"judge_{k}": float(v) for k, v in scores.items()
            if isinstance(v, (int, float))} if isinstance(scores, dict) else {"judge": scores}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None, help="smoke, cpu or full (default: as minit2i)")
    parser.add_argument("--n", type=int, default=32, help="number of prompts")
    parser.add_argument("--batch", type=int, default=16, help="prompts optimised together")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" /
                                             "vqgan_clip.json"))
    args = parser.parse_args()
    preset = preset_name(args.preset)

    for name in (image_tokenizer_name(), "clip", "clip_b"):      # train or load before timing
        load_or_train(name, preset, verbose=False)
    _, _, scenes = distinct_scenes("val", args.n, n_objects=1, seed=7)
    prompts = [caption(s.described()) for s in scenes]
    start = time.perf_counter()
    images = [generate_images(prompts[i:i + args.batch], seed=i, preset=preset)
              for i in range(0, len(prompts), args.batch)]
    seconds = time.perf_counter() - start
    images = torch.cat([torch.from_numpy(x) for x in images]).permute(0, 3, 1, 2)  # uint8

    clip_b = load_or_train("clip_b", preset, verbose=False)
    img_f, txt_f = embed_images(clip_b, to_float_image(images)), embed_texts(clip_b, prompts)
    result = {
        "method": "vqgan_clip", "preset": preset, "device": device_name(),
        "image_model": image_tokenizer_name(), "n_images": len(prompts),
        "seconds": round(seconds, 1), "seconds_per_image": round(seconds / len(prompts), 2),
        "clip_b_R@1_among_prompts": recall_at_k(img_f, txt_f, ks=(1,))["i2t_R@1"],
        "clip_b_cosine": round(float((img_f * txt_f).sum(1).mean()), 4),
        **judge(images.permute(0, 2, 3, 1).numpy(), prompts),
        "target_full": {"single_object": 0.8, "seconds_per_image": 30},
    }
    print(json.dumps(result, indent=2))
    write_record(result, args.out)


if __name__ == "__main__":
    main()
