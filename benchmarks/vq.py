"""Chapters 3 and 5: the image tokenizers, measured on the val split.

    MINIT2I_PRESET=full python benchmarks/vq.py

Trains (or loads from the cache) the VQ-VAE and the VQGAN of the preset and writes
benchmarks/results/vq.json: PSNR, codebook usage, perplexity, sharpness relative to the
originals, training seconds, and training throughput. The VQGAN is the VQ-VAE fine-tuned with a
discriminator, so its seconds are the fine-tuning's; ``tokenizer_seconds`` adds the two. Targets
(full preset): VQ-VAE usage >= 90 % and PSNR >= 32 dB at an 8x8 grid; the VQGAN both sharper
and of higher PSNR than the VQ-VAE at the same grid.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

from common import write_record

from minit2i.config import device_name, get_device, preset_name
from minit2i.presets import recipe
from minit2i.vqgan import val_sharpness
from minit2i.zoo import load_or_train


def main() -> None:
    device, preset = get_device(), preset_name()
    out = {"benchmark": "vq", "preset": preset,
           "device": device_name(),
           "cpu": platform.processor() or platform.machine(), "models": {}}
    for name in ("vqvae", "vqgan"):
        start = time.perf_counter()
        model = load_or_train(name, device=device)
        r = recipe(name)["train"]
        m = dict(model.metrics)
        m["sharpness"] = val_sharpness(model, device)        # recomputed: same definition for both
        m["train_images_per_s"] = r["steps"] * r["batch_size"] / m["seconds"] if m.get(
            "seconds") else None
        m["wall_seconds_this_run"] = time.perf_counter() - start
        m["grid"], m["num_codes"] = model.grid, model.num_codes
        out["models"][name] = m
        print(f"{name}: " + ", ".join(f"{k} {v:.3g}" for k, v in m.items()
                                      if isinstance(v, float)))
    v, g = out["models"]["vqvae"], out["models"]["vqgan"]
    out["tokenizer_seconds"] = v["seconds"] + g["seconds"]
    out["targets"] = {"vqvae_usage_ge_0.9": v["usage"] >= 0.9, "vqvae_psnr_ge_32": v["psnr"] >= 32,
                      "vqgan_sharper_than_vqvae": g["sharpness"] > v["sharpness"],
                      "vqgan_psnr_above_vqvae": g["psnr"] > v["psnr"]}
    write_record(out, Path(__file__).parent / "results" / "vq.json")


if __name__ == "__main__":
    main()
