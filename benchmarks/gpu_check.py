"""One command for a GPU: the GPU preset's speed, memory and chapter minutes, measured.

    python benchmarks/gpu_check.py [--preset full] [--steps 30] [--out PATH]

On one CUDA GPU, in a few minutes (8 at most: it stops timing new recipes after --limit-s), for
each recipe of the preset: --steps real training steps through the package's own step
functions (the GAN's, the VQ-VAE's, the VQGAN's with its discriminator on, the CLIP's, the
DALL-E's; chapter 2's patch classifier as minit2i.budget counts it), on batches of the
recipe's size already on the device, after a few warm-up steps, with the GPU synchronised
around them; then a VQGAN+CLIP search step of one full chunk and a batch of DALL-E drawings.
Each is timed at the recipe's batch and at a batch of two, which separates a fixed cost per
step from the FLOP rate. It reports steps/s, peak memory, the AMP dtype, the counted TFLOP per
step and the achieved TFLOP/s, and, with these measured rates in place of the assumed ones
(minit2i.budget.MACHINES), the minutes of every chapter from an empty cache beside the
budget. Writes benchmarks/results/gpu_check.json.

It runs on a CPU too (``--preset smoke --steps 2``, as the tests do); then the file says that it
is not a GPU run, and the book's GPU figures stay "not measured".
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import write_record

from minit2i import __version__, budget
from minit2i.config import amp_dtype, device_name, get_device, preset_name, seeded
from minit2i.presets import recipe

RESULT = Path(__file__).resolve().parent / "results" / "gpu_check.json"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step, batch, steps: int, device: torch.device, start: int = 0, warmup: int = 3
          ) -> tuple[float, float | None]:
    """Seconds per step of ``step(batch, i)``, and the peak GiB allocated while timing."""
    for i in range(start, start + warmup):
        step(batch, i)
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t = time.perf_counter()
    for i in range(start + warmup, start + warmup + steps):
        step(batch, i)
    sync(device)
    seconds = (time.perf_counter() - t) / steps
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return seconds, peak


def images(n: int, device, size: int = 64, uint8: bool = False) -> torch.Tensor:
    x = torch.rand(n, 3, size, size, device=device)
    return (x * 255).to(torch.uint8) if uint8 else x * 2 - 1


def benchmarks(preset: str, device: torch.device):
    """(name, kind, batch, FLOPs per sample, make(batch) -> (step, example batch, first step))."""
    from minit2i.clip import CLIP, make_train_step
    from minit2i.dalle import MiniDALLE, make_dalle_step
    from minit2i.gan import ShapesGAN
    from minit2i.gan import make_train_step as gan_step
    from minit2i.text import Tokenizer
    from minit2i.vq import VQVAE, make_vqvae_step
    from minit2i.vqgan import PatchDiscriminator, make_vqgan_step

    def per_sample(work, steps, batch):
        return work.flops / (steps * batch)

    r = recipe("shapes_gan", preset)

    def gan(b):
        model = ShapesGAN(r.model).to(device).train()
        step = gan_step(model, lr=r.train.lr, kind=r.train.kind, device=device)
        return step, (images(b, device, r.model.image_size),), 0

    yield ("shapes_gan", "gan", r.train.batch_size,
           per_sample(budget.model_work("shapes_gan", preset), r.train.steps, r.train.batch_size),
           gan)

    rv = recipe("vqvae", preset)

    def vqvae(b):
        model = VQVAE(rv.model).to(device).train()
        return make_vqvae_step(model, rv.train.replace(restart_every=0), device), \
            images(b, device), 0

    yield ("vqvae", "conv", rv.train.batch_size,
           per_sample(budget.model_work("vqvae", preset), rv.train.steps, rv.train.batch_size),
           vqvae)

    rg = recipe("vqgan", preset)
    on = rg.train.replace(disc_start=0, disc_warmup=0, restart_every=0)

    def vqgan(b):
        model = VQVAE(rg.model).to(device).train()
        disc = PatchDiscriminator(rg.train.disc_channels).to(device)
        return make_vqgan_step(model, disc, on, device), images(b, device), 0

    gan_on = budget._vqgan_run("vqgan", rg.model, on, 1)
    yield "vqgan", "conv", rg.train.batch_size, gan_on.flops / on.steps, vqgan

    rc = recipe("clip", preset)

    def clip(b):
        model = CLIP(rc.model).to(device).train()
        step = make_train_step(model, rc.train.lr, rc.train.steps, device=device,
                               augment=rc.train.augment)
        tokens = Tokenizer().encode_batch(["a large red circle in the top left"] * b,
                                          rc.model.max_length).to(device)
        return step, (images(b, device, uint8=True), tokens, torch.arange(b, device=device)), 0

    yield ("clip", "clip", rc.train.batch_size,
           per_sample(budget.model_work("clip", preset), rc.train.steps, rc.train.batch_size),
           clip)

    rd = recipe("dalle", preset)

    def dalle(b):
        model = MiniDALLE(rd.model).to(device)
        text = Tokenizer().encode_batch(["a red circle to the left of a blue square"] * b,
                                        rd.model.text_len).to(device)
        codes = torch.randint(rd.model.num_codes, (b, rd.model.grid, rd.model.grid),
                              device=device)
        return make_dalle_step(model, rd.train, device), (text, codes), 0

    yield "dalle", "transformer", rd.train.batch_size, budget._dalle_counts(preset)[1].flops, dalle

    rt = recipe("shapes_vit", preset)

    def vit(b):
        model = budget.PatchClassifier(rt.model.dim, rt.model.depth, rt.model.n_heads,
                                       rt.model.patch).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=rt.train.lr, weight_decay=0.01)
        labels = torch.zeros(b, dtype=torch.long, device=device)

        def step(x, i):                       # as chapter 2's cell: fp32, AdamW
            loss = sum(F.cross_entropy(lg, labels) for lg in model(x))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return {"loss": loss.detach()}

        return step, images(b, device), 0

    yield ("shapes_vit", "small_transformer", rt.train.batch_size,
           per_sample(budget.experiment_work("shapes_vit", preset), rt.train.steps,
                      rt.train.batch_size), vit)


def search_benchmark(preset: str, device: torch.device, steps: int, n_images: int | None = None
                     ) -> dict:
    """Seconds per search step of one full chunk (chapter 8's case; ``n_images`` fewer), fp32
    as the search runs."""
    from minit2i.clip import CLIP
    from minit2i.vq import VQVAE
    from minit2i.vqgan_clip import chunk_size, optimise, random_latent
    s = recipe("vqgan_clip", preset).train
    vq = VQVAE(recipe("vqgan", preset).model).to(device).eval()
    clip = CLIP(recipe("clip", preset).model).to(device).eval()
    b = min(chunk_size(s.n_cutouts), n_images or chunk_size(s.n_cutouts))
    text = F.normalize(torch.randn(b, clip.cfg.embed_dim, device=device), dim=-1)
    z0 = random_latent(vq, b)

    def run(n):
        sync(device)
        t = time.perf_counter()
        optimise(vq, clip, text, z0, steps=n, lr=s.lr, n_cutouts=s.n_cutouts,
                 generator=torch.Generator().manual_seed(0))
        sync(device)
        return time.perf_counter() - t

    run(1)                                                    # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = (run(steps + 1) - run(1)) / steps
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    decode, view = budget.search_counts(preset)
    flops = b * (decode + view * s.n_cutouts).flops
    return {"kind": "search", "batch_size": b, "views": b * s.n_cutouts,
            "s_per_step": seconds, "peak_gib": peak, "counted_tflop_per_step": flops / 1e12,
            "achieved_tflop_per_s": flops / seconds / 1e12,
            "estimated_peak_gib": b * (decode + view * s.n_cutouts).saved_bytes / 2**30}


def sampling_benchmark(preset: str, device: torch.device) -> dict:
    """Seconds to draw a batch of 64 images with the DALL-E (KV cache) and decode them."""
    from minit2i.dalle import MiniDALLE, sample_codes
    from minit2i.text import Tokenizer
    from minit2i.vq import VQVAE
    rd = recipe("dalle", preset)
    model = MiniDALLE(rd.model).to(device).eval()
    vq = VQVAE(recipe(rd.train.tokenizer, preset).model).to(device).eval()
    text = Tokenizer().encode_batch(["a small blue square"] * 64, rd.model.text_len).to(device)

    def draw():
        with torch.no_grad():
            return vq.decode_indices(sample_codes(model, text))

    draw()
    sync(device)
    t = time.perf_counter()
    draw()
    sync(device)
    seconds = time.perf_counter() - t
    flops = budget.dalle_drawing("x", preset, 64).flops
    return {"kind": "sampling", "batch_size": 64, "s_per_step": seconds, "peak_gib": None,
            "counted_tflop_per_step": flops / 1e12, "achieved_tflop_per_s": flops / seconds / 1e12}


def measured_machine(label: str, results: dict, device: torch.device) -> budget.Machine:
    """The budget's machine with this run's rates: per kind, FLOP/s from the recipe-size step
    less the fixed cost per step seen at a batch of two; kinds not timed keep the T4's rate."""
    rates, fixed = dict(budget.MACHINES["t4"].rates), []
    by_kind: dict[str, list[dict]] = {}
    for r in results.values():
        by_kind.setdefault(r["kind"], []).append(r)
    for kind, rs in by_kind.items():
        flops = sum(r["counted_tflop_per_step"] * 1e12 for r in rs)
        seconds = sum(r["s_per_step"] - r.get("s_per_tiny_step", 0.0) for r in rs)
        rates[kind] = flops / max(seconds, 1e-9)
        fixed += [r["s_per_tiny_step"] for r in rs if "s_per_tiny_step" in r]
    step_s = sorted(fixed)[len(fixed) // 2] if fixed else 0.0
    return budget.Machine(label, rates, fp32_rate=None, step_s=step_s, token_s=0.0,
                          noise_per_s=20e9 if device.type == "cuda" else 150e6)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python benchmarks/gpu_check.py", description=__doc__
                                     .split("\n\n")[0])
    parser.add_argument("--preset", default="full", help="the preset to time (default full)")
    parser.add_argument("--steps", type=int, default=30, help="timed steps per recipe")
    parser.add_argument("--limit-s", type=float, default=420.0,
                        help="stop starting new recipes after this many seconds")
    parser.add_argument("--search-images", type=int, default=None,
                        help="images in the timed search step (default: one full chunk)")
    parser.add_argument("--out", type=Path, default=RESULT, help="where the JSON goes")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    device, preset = get_device(), preset_name(args.preset)
    gpu = device.type == "cuda"
    if gpu:
        torch.backends.cudnn.benchmark = True
    dtype = amp_dtype(device)
    results, skipped = {}, []
    with seeded(0):
        for name, kind, batch, flops_per_sample, make in benchmarks(preset, device):
            if time.perf_counter() - start > args.limit_s:
                skipped.append(name)
                continue
            step, example, first = make(batch)
            seconds, peak = timed(step, example, args.steps, device, first)
            tiny_step, tiny_batch, _ = make(2)
            tiny, _ = timed(tiny_step, tiny_batch, args.steps, device, first)
            flops = flops_per_sample * batch
            results[name] = {"kind": kind, "batch_size": batch, "steps_per_s": 1 / seconds,
                             "s_per_step": seconds, "s_per_tiny_step": tiny, "peak_gib": peak,
                             "counted_tflop_per_step": flops / 1e12,
                             "achieved_tflop_per_s": flops / seconds / 1e12}
            print(f"{name:>11}: {1 / seconds:7.2f} steps/s at batch {batch}, "
                  f"{flops / seconds / 1e12:6.2f} TFLOP/s"
                  + (f", peak {peak:.2f} GiB" if peak is not None else ""), flush=True)
            del step, example, tiny_step, tiny_batch
            if gpu:
                torch.cuda.empty_cache()
        if time.perf_counter() - start <= args.limit_s:
            results["search"] = search_benchmark(preset, device, max(1, args.steps // 3),
                                                 args.search_images)
            results["sampling"] = sampling_benchmark(preset, device)
        else:
            skipped += ["search", "sampling"]
    machine = measured_machine(device_name(), results, device)
    chapters = {}
    for chapter in budget.CHAPTERS:
        limit = budget.BUDGETS.get(preset, (None, None))[1]
        minutes = budget.chapter_seconds(chapter, preset, machine) / 60
        chapters[str(chapter)] = {
            "minutes_here": round(minutes, 2), "budget_minutes": limit,
            "assumed_t4_minutes": round(budget.chapter_seconds(chapter, preset, "t4") / 60, 2),
            "trains": ", ".join(budget.chapter_plan(chapter, preset)["trains"]) or "-"}
    record = {
        "benchmark": "gpu_check", "title": f"GPU check ({preset} preset)", "preset": preset,
        "device": device_name(), "gpu": gpu, "torch": torch.__version__, "version": __version__,
        "amp_dtype": str(dtype).replace("torch.", "") if dtype else "float32",
        "steps_timed": args.steps, "seconds": round(time.perf_counter() - start, 1),
        "note": ("measured on a GPU: minutes_here use this run's rates" if gpu else
                 "not a GPU run: this file only shows that the check runs; the GPU figures of "
                 "the budget stay not measured"),
        "skipped": skipped, "recipes": results, "chapters": chapters,
    }
    write_record(record, args.out)
    return record


if __name__ == "__main__":
    main()
