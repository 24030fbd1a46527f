"""Chapter 7's levers, measured: what each choice of the search buys, and where it stalls.

    python benchmarks/vqgan_clip_levers.py --preset cpu [--variants recipe,empty,...] [--n 32]

Each *variant* is the preset's ``vqgan_clip`` search with one thing changed: where it starts
(random codes, an empty canvas: every position the background's code, or a grey blob: the codes
of a grey disk in the middle), the cutouts (none, smaller crops, more of them), the number of
steps, a regulariser of the latent (a pull towards the empty canvas, or towards what chapter 6's
caption-free DALL-E expects), or the CLIP it climbs (an *ensemble* of
chapter 4's two CLIPs, whose cosine is the mean of theirs; or a CLIP trained on random crops,
and on hard negatives: captions that differ from the true one in one attribute). For every
variant it records, on ``n`` one-object ``val`` prompts, one image each:

- the independent judge's scores (``minit2i.eval``);
- the cosine similarity of the results with their prompts under the CLIP(s) optimised against,
  beside the same CLIP's similarity for *real renders* of the same prompts: where the search
  stands against what a right answer scores;
- the same pair under a CLIP that took no part. That is ``clip_b`` when only ``clip`` guides;
  when both guide, a third CLIP, ``clip_c`` (the same recipe, seed 2), trained here.

An optimised score near the real renders' while the independent CLIP's stays far below theirs
means the search found images that fool the CLIP it climbs (adversarial images), not the prompt.
Results accumulate in benchmarks/results/vqgan_clip_levers.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import common
import torch
import torch.nn.functional as F
from common import write_record
from torch import nn

from minit2i import presets, zoo
from minit2i.clip import CLIP, distinct_scenes, train_clip
from minit2i.config import device_name, get_device, preset_name
from minit2i.eval import shapes_eval
from minit2i.shapes import caption, render, to_float_image
from minit2i.text import Tokenizer
from minit2i.vqgan_clip import background_latent, codebook, optimise, random_latent

OUT = Path(__file__).parent / "results" / "vqgan_clip_levers.json"

# name -> changes: "search" (SearchSettings fields), "start" ("random" or "empty"), "guide"
VARIANTS: dict[str, dict] = {
    "recipe": {},
    "empty canvas start": {"start": "empty"},
    # a start that looks like *an* object, but no particular one: a grey disk in the middle
    "grey blob start": {"start": "blob"},
    "ensemble + grey blob start": {"guide": ("clip", "clip_b"), "start": "blob"},
    "no cutouts": {"search": {"augment": False}},
    "smaller crops (min_scale 0.5)": {"search": {"min_scale": 0.5}},
    "32 cutouts": {"search": {"n_cutouts": 32}},
    "2x steps": {"search": {"steps_factor": 2}},
    "ensemble clip + clip_b": {"guide": ("clip", "clip_b")},
    "ensemble + empty canvas start": {"guide": ("clip", "clip_b"), "start": "empty"},
    # a regulariser of the latent: a pull towards the empty canvas, so that only the positions
    # CLIP needs leave the background (SearchSettings.prior)
    "background prior 0.02": {"search": {"prior": 0.02}},
    "background prior 0.1": {"search": {"prior": 0.1}},
    # a prior over whole code grids, learnt from real scenes: a pull towards what chapter 6's
    # DALL-E, without a caption, expects at each position given the codes before it
    # (SearchSettings.dalle_prior). It knows what Shapes scenes look like, not the prompt.
    "DALL-E prior 0.1": {"search": {"dalle_prior": 0.1}},
    "DALL-E prior 0.5": {"search": {"dalle_prior": 0.5}},
    "DALL-E prior 2": {"search": {"dalle_prior": 2.0}},
    # the CLIP climbed, trained otherwise (the "clip" recipe with the changes in DERIVED): on
    # random crops, so that a cutout of the answer still scores; with hard negatives, so that a
    # blob of the right colour but the wrong shape, size or place no longer does
    "guide trained on crops": {"guide": ("clip_crops",)},
    "guide trained on crops and hard negatives": {"guide": ("clip_crops_hn",)},
    # the same with three times the steps: crops make CLIP's task harder, and at the recipe's
    # steps the guide reads shapes worse than chapter 4's (the guide_zero_shot column)
    "guide trained on crops and hard negatives (3x steps)": {"guide": ("clip_crops_hn_3x",)},
}

# CLIPs made here from the "clip" recipe: name -> the CLIPTrain fields changed ("model": the
# CLIPConfig fields changed; "steps_factor": the steps multiplied). benchmarks/dalle_rerank.py
# adds its re-ranking CLIPs here.
DERIVED: dict[str, dict] = {
    "clip_c": {"seed": 2},                     # scores the searches that climb clip and clip_b
    "clip_crops": {"augment": True},
    "clip_crops_hn": {"augment": True, "hard_negatives": True},
    "clip_crops_hn_3x": {"augment": True, "hard_negatives": True, "steps_factor": 3},
}


class Ensemble(nn.Module):
    """Several CLIPs as one: the concatenation of their unit embeddings, divided by sqrt(k), is
    a unit vector whose cosine with another such vector is the mean of the members' cosines."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def _join(self, parts: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([F.normalize(p, dim=-1) for p in parts], -1) / len(parts) ** 0.5

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return self._join([m.encode_image(x) for m in self.members])

    def encode_text(self, t: torch.Tensor) -> torch.Tensor:
        return self._join([m.encode_text(t) for m in self.members])


def register_derived(name: str) -> None:
    """Register one of DERIVED as a zoo model, so that it trains once and is cached."""
    if name in DERIVED and name not in presets.RECIPES:
        changes = dict(DERIVED[name])
        factor = changes.pop("steps_factor", 1)
        model = changes.pop("model", {})
        presets.RECIPES[name] = {
            p: presets.Recipe(r.model.replace(**model),
                              r.train.replace(steps=r.train.steps * factor, **changes))
            for p, r in presets.RECIPES["clip"].items()}
        zoo.register(name, zoo.ModelSpec(CLIP, train_clip))


def jittered(vq: nn.Module, z: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """z plus a little noise (1 % of the codebook's spread), to break ties between prompts."""
    noise = torch.randn(z.shape, generator=generator).to(z.device)
    return z + 0.01 * codebook(vq).detach().std() * noise


def empty_latent(vq: nn.Module, batch: int, generator: torch.Generator) -> torch.Tensor:
    """Every position the code of a black image (plus a little noise to break ties)."""
    z = background_latent(vq).view(1, -1, 1, 1).expand(batch, -1, vq.grid, vq.grid).clone()
    return jittered(vq, z, generator)


@torch.no_grad()
def blob_latent(vq: nn.Module, batch: int, generator: torch.Generator) -> torch.Tensor:
    """The codes of a mid-grey disk of radius 14 px in the middle of a black canvas (between the
    Shapes world's small and large sizes; no colour, shape or place of any prompt), plus a
    little noise to break ties."""
    size = vq.config.image_size
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    disk = ((yy - size / 2 + 0.5) ** 2 + (xx - size / 2 + 0.5) ** 2 <= 14 ** 2).float()
    image = (disk * 1.0 - 1.0).expand(1, 3, size, size)         # black -1, grey 0
    p = next(vq.parameters())
    codes = vq.encode(image.to(p.device))                        # (1, h, w)
    z = codebook(vq).detach()[codes].permute(0, 3, 1, 2).expand(batch, -1, -1, -1).clone()
    return jittered(vq, z, generator)


@torch.no_grad()
def cosine(model: nn.Module, images: torch.Tensor, tokens: torch.Tensor) -> float:
    return float((F.normalize(model.encode_image(images), dim=-1)
                  * F.normalize(model.encode_text(tokens), dim=-1)).sum(-1).mean())


def run_variant(variant: dict, preset: str, device, n: int, batch: int) -> dict:
    base = presets.recipe("vqgan_clip", preset).train
    changes = dict(variant.get("search", {}))
    steps = base.steps * changes.pop("steps_factor", 1)
    search = base.replace(steps=steps, **changes)
    guide_names = variant.get("guide", ("clip",))
    vq = zoo.load_or_train("vqgan", preset, device=device, verbose=False)
    for g in guide_names:
        register_derived(g)
    guides = [zoo.load_or_train(g, preset, device=device, verbose=False) for g in guide_names]
    guide = guides[0] if len(guides) == 1 else Ensemble(guides)
    code_model = None
    if search.dalle_prior:
        code_model = zoo.load_or_train("dalle", preset, device=device, verbose=False)
        if code_model.metrics.get("image_tokenizer") != "vqgan":
            raise ValueError("the DALL-E prior must draw the search's VQGAN codes")
    independent = "clip_b" if "clip_b" not in guide_names else "clip_c"
    register_derived(independent)
    judge_clip = zoo.load_or_train(independent, preset, device=device, verbose=False)

    _, _, scenes = distinct_scenes("val", n, n_objects=1, seed=7)
    prompts = [caption(s.described()) for s in scenes]
    tokens = Tokenizer().encode_batch(prompts).to(device)
    real = to_float_image(torch.stack([torch.from_numpy(render(s)).permute(2, 0, 1)
                                       for s in scenes])).to(device)
    g = torch.Generator().manual_seed(0)
    images = []
    start = time.perf_counter()
    for a in range(0, n, batch):
        with torch.no_grad():
            text = guide.encode_text(tokens[a:a + batch])
        b = len(text)
        starts = {"empty": empty_latent, "blob": blob_latent}
        z0 = starts.get(variant.get("start"), random_latent)(vq, b, g)
        images.append(optimise(vq, guide, text, z0, generator=g, code_model=code_model,
                               **vars(search))["images"])
    seconds = time.perf_counter() - start
    images = torch.cat(images).to(device)
    sc = shapes_eval(images, prompts)
    return {"search": vars(search), "start": variant.get("start", "random"),
            "guide": "+".join(guide_names), "independent_clip": independent,
            "seconds_per_image": round(seconds / n, 2),
            # how well the climbed CLIP itself reads one-object scenes (chapter 4's zero-shot)
            "guide_zero_shot": {k: round(float(v), 3) for g in guides[:1] if len(guides) == 1
                                for k, v in g.metrics.items() if k.startswith("zero_shot")},
            "judge": {k: round(float(sc[k]), 4) for k in ("single_object", "colour", "position")},
            "guide_cosine": {"results": round(cosine(guide, images, tokens), 4),
                             "real_renders": round(cosine(guide, real, tokens), 4)},
            "independent_cosine": {"results": round(cosine(judge_clip, images, tokens), 4),
                                   "real_renders": round(cosine(judge_clip, real, tokens), 4)}}


def summarise(result: dict) -> None:
    """The short table the book's results page shows, one row per variant."""
    result["summary"] = [
        {"variant": name, "judge: single object": v["judge"]["single_object"],
         "judge: colour": v["judge"]["colour"],
         "guided CLIP: results": v["guide_cosine"]["results"],
         "guided CLIP: real renders": v["guide_cosine"]["real_renders"],
         "independent CLIP: results": v["independent_cosine"]["results"],
         "independent CLIP: real renders": v["independent_cosine"]["real_renders"],
         "guided CLIP's zero-shot shape": v.get("guide_zero_shot", {}).get("zero_shot_shape"),
         "s per image": v["seconds_per_image"]}
        for name, v in result["variants"].items()]
    result["commentary"] = (
        f"{result['n_prompts']} one-object prompts, one search each. The CLIP columns are mean "
        "cosine similarities with the prompts: of the CLIP(s) the search climbed, and of one that "
        "took no part (clip_b, or clip_c when both guide), for the results and for real renders "
        "of the same prompts. Seconds per image are wall-clock on the machine named, which may "
        "have been shared with other jobs: compare them loosely.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None)
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated names (default: all)")
    parser.add_argument("--n", type=int, default=32, help="one-object prompts")
    parser.add_argument("--batch", type=int, default=16, help="prompts searched together")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    preset, device = preset_name(args.preset), get_device()
    names = common.chosen_variants(args.variants, VARIANTS)
    out_path = Path(args.out)
    result = common.previous_record(out_path, preset=preset, n_prompts=args.n)
    # A note that the kept rows were measured on an earlier VQGAN holds only until they are
    # measured again: re-run every variant after the tokenizer changes.
    result.pop("tokenizer_note", None)
    result.update({"benchmark": "vqgan_clip_levers", "preset": preset, "device": device_name(),
                   "n_prompts": args.n})
    result.setdefault("variants", {})
    for name in names:
        print(f"variant {name!r}", flush=True)
        result["variants"][name] = row = run_variant(VARIANTS[name], preset, device, args.n,
                                                     args.batch)
        print(f"  {json.dumps(row)}", flush=True)
        summarise(result)
        write_record(result, out_path)


if __name__ == "__main__":
    main()
