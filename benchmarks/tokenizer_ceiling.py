"""The judge's scores on an image tokenizer's reconstructions: the ceiling of chapters 6-7.

A text-to-image model that writes a tokenizer's codes can draw no better than the tokenizer's
decoder draws the codes of real images. This script encodes and decodes validation scenes with
the zoo's VQ-VAE (chapter 3) and VQGAN (chapter 5) of a preset, and lets the judge score the
reconstructions against the scenes' own captions. With ``--variant``, it also trains a VQ-VAE
with the preset's recipe changed as given (e.g. ``fg_weight=0`` for the plain MSE) and scores that.
Writes benchmarks/results/tokenizer_ceiling.json.

    python benchmarks/tokenizer_ceiling.py --preset cpu [--variant fg_weight=0]
"""

from __future__ import annotations

import argparse
import ast
import platform
import time
from pathlib import Path

import torch
from common import write_record

from minit2i.config import device_name, get_device, preset_name
from minit2i.dalle import encode_images
from minit2i.eval import shapes_eval
from minit2i.presets import recipe
from minit2i.shapes import ShapesDataset
from minit2i.vq import VQVAE, VQVAEConfig, evaluate_vqvae, train_vqvae
from minit2i.zoo import load_or_train


@torch.no_grad()
def ceiling(model, device, n: int = 256) -> dict:
    """PSNR on val and the judge's scores on reconstructions of n one- and n two-object scenes."""
    out = {"psnr": evaluate_vqvae(model, device)["psnr"]}
    for n_objects, tasks in ((1, ("single_object", "colour")),
                             (2, ("two_objects", "colour_attribution"))):
        ds = ShapesDataset("val", n, seed=5, n_objects=n_objects)
        images, _, _ = ds.tensors()
        prompts = [ds.scene_and_caption(i)[1] for i in range(n)]
        rec = model.decode_indices(encode_images(model, images, device).to(device))
        scores = shapes_eval(rec.float().clamp(-1, 1).cpu(), prompts)
        out.update({task: scores[task] for task in tasks})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None)
    parser.add_argument("--variant", nargs="*", default=[],
                        help="train-recipe overrides key=value for an extra VQ-VAE")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"
                                             / "tokenizer_ceiling.json"))
    args = parser.parse_args()
    preset, device = preset_name(args.preset), get_device()
    rows = {}
    for name in ("vqvae", "vqgan"):
        rows[name] = ceiling(load_or_train(name, preset, device=device), device)
        print(name, {k: round(v, 3) for k, v in rows[name].items()}, flush=True)
    if args.variant:
        r = recipe("vqvae", preset)
        changes = {k: ast.literal_eval(v) for k, v in (item.split("=", 1) for item in args.variant)}
        r["train"].update(changes)
        torch.manual_seed(0)
        model = VQVAE(VQVAEConfig(**r["model"])).to(device)
        start = time.perf_counter()
        train_vqvae(model, r["train"], device, progress=False)
        key = "vqvae " + " ".join(args.variant)
        rows[key] = ceiling(model, device) | {"train_seconds": time.perf_counter() - start}
        print(key, {k: round(v, 3) for k, v in rows[key].items()}, flush=True)
    result = {"benchmark": "tokenizer_ceiling", "preset": preset, "device": device_name(),
              "cpu": platform.processor() or platform.machine(),
              "note": "judge scores of reconstructions of real val scenes (256 per task)",
              "results": rows}
    write_record(result, args.out)


if __name__ == "__main__":
    main()
