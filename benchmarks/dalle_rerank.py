"""Best of 8, re-ranked by whom? The same eight samples of chapter 6's DALL-E, chosen by each
candidate re-ranker, judged; written to benchmarks/results/dalle_rerank.json.

    python benchmarks/dalle_rerank.py [--preset cpu] [--n 256] [--rerankers clip,clip_b,...]

The zoo's ``dalle`` draws 8 samples for each of ``n`` one-object and ``n`` two-object ``val``
prompts (the prompts of benchmarks/dalle.py, the recipe's sampling, seed 1: the very samples its
"best of 8 by CLIP" figure chose among). The independent judge marks every sample right or wrong.
Then each re-ranker keeps one sample per prompt, and the judge's verdict on the kept one is
counted. Two bounds frame the re-rankers: the first sample (no re-ranking) and the *oracle*, a
prompt counted right when any of its 8 samples is right, the most any re-ranker could keep.

Re-rankers: chapter 4's CLIP (the recipe's), its independent twin ``clip_b``, the two together,
CLIPs trained here from chapter 4's recipe with one change (hard-negative captions; a wider image
encoder), and the DALL-E's own scores (the likelihood of the codes given the caption, and that
likelihood over the caption-free one: the pointwise mutual information that classifier-free
guidance also climbs).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import common
import torch
from common import write_record
from dalle import prompts_of  # the prompts benchmarks/dalle.py draws
from vqgan_clip_levers import DERIVED, register_derived

from minit2i import presets, zoo
from minit2i.config import autocast, device_name, get_device, preset_name
from minit2i.dalle import clip_scores, sample_codes
from minit2i.eval import judge, score
from minit2i.shapes import parse
from minit2i.text import Tokenizer

OUT = Path(__file__).parent / "results" / "dalle_rerank.json"
K = 8

# CLIPs made here from chapter 4's "clip" recipe, registered as vqgan_clip_levers registers its
# guides: name -> the CLIPTrain fields changed ("model": the CLIPConfig fields)
CLIPS: dict[str, dict] = {
    "clip_hn": {"hard_negatives": True},
    "clip_wide": {"model": {"image_width": 32}},
    # trained on what it will judge: the VQGAN's reconstructions of the scenes, not the renders
    "clip_vqgan": {"images_through": "vqgan"},
}
DERIVED.update(CLIPS)
# re-ranker name -> what scores a (caption, sample): CLIPs (summed when several), or the DALL-E
RERANKERS: dict[str, tuple[str, ...]] = {
    "chapter 4's CLIP": ("clip",),
    "clip_b (its twin from another seed)": ("clip_b",),
    "clip + clip_b": ("clip", "clip_b"),
    "CLIP trained with hard negatives": ("clip_hn",),
    "CLIP with a wider image encoder (32 channels)": ("clip_wide",),
    "CLIP trained on the VQGAN's reconstructions": ("clip_vqgan",),
    "the DALL-E's likelihood log p(codes | caption)": ("dalle:likelihood",),
    "the DALL-E's PMI log p(codes | caption) - log p(codes)": ("dalle:pmi",),
}


@torch.no_grad()
def code_log_likelihood(model, text: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """log p(codes | text) (B,) under the DALL-E: the sum over the image's codes."""
    seq = model.joint(text, codes)
    L = model.config.text_len
    logits = model(seq[:, :-1]).float()[:, L - 1:]          # the outputs that predict codes
    return torch.log_softmax(logits, -1).gather(-1, seq[:, L:, None]).sum((1, 2))


@torch.no_grad()
def samples(model, vq, prompts: list[str], sampling, device) -> tuple[torch.Tensor, ...]:
    """K samples per prompt, grouped by prompt, exactly as ``dalle.draw`` with candidates=K
    draws them: (tokens, codes, images)."""
    text = Tokenizer().encode_batch(prompts, model.config.text_len).to(device)
    text = text.repeat_interleave(K, dim=0)
    g = torch.Generator(device=device).manual_seed(1)
    codes, images = [], []
    for t in text.split(64):
        with autocast(device):
            c = sample_codes(model, t, sampling.temperature, sampling.top_k, generator=g,
                             guidance=sampling.guidance, plausible=sampling.plausible)
            images.append(vq.decode_indices(c).float().clamp(-1, 1))
        codes.append(c)
    return text, torch.cat(codes), torch.cat(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None)
    parser.add_argument("--n", type=int, default=256, help="prompts of each kind")
    parser.add_argument("--rerankers", default=",".join(RERANKERS),
                        help="comma-separated names (default: all)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    preset, device = preset_name(args.preset), get_device()
    names = common.chosen_variants(args.rerankers, RERANKERS)
    model = zoo.load_or_train("dalle", preset, device=device, verbose=False).eval()
    vq = zoo.load_or_train(model.metrics["image_tokenizer"], preset, device=device,
                           verbose=False)
    sampling = presets.recipe("dalle", preset).sample
    clips, clip_info = {}, {}
    for name in sorted({m for n in names for m in RERANKERS[n] if not m.startswith("dalle:")}):
        register_derived(name)
        clips[name] = zoo.load_or_train(name, preset, device=device, verbose=False).eval()
        m = clips[name].metrics
        changes = dict(CLIPS.get(name, {}))
        clip_info[name] = {"changes": {**changes.pop("model", {}), **changes},
                           "seconds": round(m.get("seconds", 0.0), 1),
                           "zero_shot_shape": round(m.get("zero_shot_shape", 0.0), 4),
                           "parameters": sum(p.numel() for p in clips[name].parameters())}
    result = {"benchmark": "dalle_rerank", "preset": preset, "device": device_name(),
              "n_prompts_each": args.n, "candidates": K, "sampling": vars(sampling),
              "clips": clip_info, "tasks": {}}
    for kind, n_objects, task in (("one_object", 1, "single_object"),
                                  ("two_objects", 2, "two_objects")):
        prompts = prompts_of("val", n_objects, args.n)
        start = time.perf_counter()
        text, codes, images = samples(model, vq, prompts, sampling, device)
        right = torch.tensor([score(parse(p), judge(im))[task] for im, p in
                              zip(images, [p for p in prompts for _ in range(K)])]).view(-1, K)
        per = {"first sample": right[:, 0], "oracle (any of the 8 right)": right.any(1)}
        for name in names:
            total = torch.zeros(len(text), device=device)
            for member in RERANKERS[name]:
                if member.startswith("dalle:"):
                    with autocast(device):
                        s = torch.cat([code_log_likelihood(model, t, c) for t, c in
                                       zip(text.split(256), codes.split(256))])
                        if member == "dalle:pmi":
                            s = s - torch.cat([code_log_likelihood(
                                model, model.empty_text(len(c), device), c)
                                for c in codes.split(256)])
                    total += s.float()
                else:
                    total += clip_scores(clips[member], images, text)
            kept = total.view(-1, K).argmax(1).cpu()
            per[name] = right[torch.arange(len(right)), kept]
        result["tasks"][kind] = {k: round(float(v.float().mean()), 4) for k, v in per.items()}
        result["tasks"][kind]["seconds"] = round(time.perf_counter() - start, 1)
        print(kind, result["tasks"][kind], flush=True)
    write_record(result, args.out)


if __name__ == "__main__":
    main()
