"""The judge's scores on an image tokenizer's reconstructions: the ceiling of chapters 6-7.

A text-to-image model that writes a tokenizer's codes can draw no better than the tokenizer's
decoder draws the codes of real images. This script encodes and decodes validation scenes with
the zoo's VQ-VAE (chapter 3) and VQGAN (chapter 5) of a preset and lets the judge score the
reconstructions against the scenes' own captions, with a breakdown of what it read instead
("large diamond -> circle"). With ``--variant NAME key=value ...`` (repeatable) it also trains a
VQ-VAE with the preset's recipe changed (``m.num_codes=128`` changes the model, ``loss='l1'`` the
training, ``steps=1200`` its length) and scores that. Beside each score stands the same decoder's
score on the encoder's latent before quantisation (``unquantised_...``): what the autoencoder
draws without the codebook, so that a ceiling can be split between the autoencoder and the
quantiser. Results accumulate in benchmarks/results/tokenizer_ceiling.json.

    python benchmarks/tokenizer_ceiling.py --preset cpu [--variant k128 m.num_codes=128] ...
    python benchmarks/tokenizer_ceiling.py --preset cpu --skip-zoo \
        --variant "wide 8x8, 1200 steps" "m.channel_mults=(1, 1, 4, 8)" steps=1200
"""

from __future__ import annotations

import argparse
import ast
import collections
import json
import platform
import time
from pathlib import Path

import torch
from common import write_record

from minit2i.config import device_name, get_device, preset_name, seeded
from minit2i.dalle import encode_images
from minit2i.data import ShapesDataset
from minit2i.eval import judge, score, shapes_eval
from minit2i.presets import recipe
from minit2i.shapes import to_float_image
from minit2i.vq import VQVAE, evaluate_vqvae, train_vqvae
from minit2i.zoo import load_or_train

OUT = Path(__file__).parent / "results" / "tokenizer_ceiling.json"


@torch.no_grad()
def ceiling(model, device, n: int = 256) -> dict:
    """PSNR on val; the judge on reconstructions of n one- and n two-object scenes; what it
    read instead when it disagreed."""
    out = {"psnr": round(evaluate_vqvae(model, device)["psnr"], 3)}
    for n_objects, task in ((1, "single_object"), (2, "two_objects")):
        ds = ShapesDataset("val", n, seed=5, n_objects=n_objects)
        images, _, captions = ds.tensors()
        rec = model.decode_indices(encode_images(model, images, device).to(device))
        rec = rec.float().clamp(-1, 1).cpu()
        # the same decoder on the encoder's latent before quantisation: what the autoencoder
        # draws without the codebook, so the gap between the two is the quantiser's share
        x = to_float_image(images.to(device))
        unquantised = model.decoder(model.encoder(x)).float().clamp(-1, 1).cpu()
        attribute = "colour" if n_objects == 1 else "colour_attribution"
        out[f"unquantised_{attribute}"] = shapes_eval(unquantised, captions)[attribute]
        passed = {task: 0, attribute: 0}
        misread = collections.Counter()
        for i in range(n):
            scene, j = ds.scene_and_caption(i)[0], judge(rec[i])
            s = score(captions[i], j)
            for k in passed:
                passed[k] += bool(s[k])
            if j.count != n_objects:
                misread[f"{j.count} objects found"] += 1
                continue
            for o in scene.objects:
                if not any(f.shape == o.shape and f.color == o.color for f in j.objects):
                    same = [f for f in j.objects if f.color == o.color]
                    misread[f"{o.size} {o.shape} -> {same[0].shape if same else 'other colour'}"] \
                        += 1
        out.update({k: v / n for k, v in passed.items()})
        out[f"misread_{n_objects}"] = dict(misread.most_common(6))
    return out


def parse_variant(items: list[str]) -> tuple[str, dict, dict]:
    name, model, train = items[0], {}, {}
    for item in items[1:]:
        key, value = item.split("=", 1)
        target, key = (model, key[2:]) if key.startswith("m.") else (train, key)
        target[key] = ast.literal_eval(value)
    return name, model, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None)
    parser.add_argument("--variant", nargs="+", action="append", default=[],
                        metavar="NAME key=value", help="a VQ-VAE variant to train and score")
    parser.add_argument("--skip-zoo", action="store_true", help="only the variants")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    preset, device = preset_name(args.preset), get_device()
    out_path = Path(args.out)
    result = json.loads(out_path.read_text()) if out_path.exists() else {}
    if result.get("preset") not in (None, preset):
        result = {}
    result.update({"benchmark": "tokenizer_ceiling", "preset": preset, "device": device_name(),
                   "cpu": platform.processor() or platform.machine(),
                   "note": "judge scores of reconstructions of real val scenes (256 per task)"})
    rows = result.setdefault("results", {})
    if not args.skip_zoo:
        for name in ("vqvae", "vqgan"):
            m = load_or_train(name, preset, device=device)
            rows[name] = ceiling(m, device) | {"train_seconds": m.metrics.get("seconds")}
            print(name, rows[name], flush=True)
    for items in args.variant:
        name, model_changes, train_changes = parse_variant(items)
        r = recipe("vqvae", preset)
        config, train = r.model.replace(**model_changes), r.train.replace(**train_changes)
        with seeded(train.seed):
            model = VQVAE(config).to(device)
            start = time.perf_counter()
            train_vqvae(model, train, device, preset, progress=False)
            seconds = time.perf_counter() - start
        rows[name] = ceiling(model, device) | {"train_seconds": round(seconds, 1),
                                               "model_changes": model_changes,
                                               "train_changes": train_changes}
        print(name, rows[name], flush=True)
        write_record(result, out_path)
    write_record(result, out_path)


if __name__ == "__main__":
    main()
