"""The judge, audited on generated images labelled by eye: benchmarks/results/judge_audit.json.

    python benchmarks/judge_audit.py

The fixture ``tests/fixtures/judge_audit/`` holds generated images of both systems (the mini
DALL-E and VQGAN+CLIP, one- and two-object prompts; the DALL-E's twice: an early model's,
``dalle``, and chapter 6's current one's, ``dalle_vqgan``) and, for each, the objects a person
saw in it: one ``"colour shape"`` per object, with ``?`` for an attribute the eye could not tell
(a blob between a circle and a square, a colour between cyan and green), or ``nothing``. Only
solid objects count as objects: the thin, speckled fragments of a VQGAN+CLIP image do not. The
judge
(``minit2i.eval.judge``) reads the same images, and this script reports how often the two agree:

- **count**: the judge finds as many objects as the person;
- **shape** and **colour**: over the images where the counts agree, the fraction of the
  person's readable shapes (colours) that the judge also reads, matched as multisets (the order of
  objects does not matter).

Images the eye found ambiguous are counted separately, so the agreement is measured only where
a person could say what is there. The judge's accuracy on clean and noisy *renders* is
benchmarks/judge_accuracy.py's.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np
from common import write_record

from minit2i.eval import judge

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "judge_audit"
OUT = Path(__file__).parent / "results" / "judge_audit.json"


def load(fixture: Path = FIXTURE) -> tuple[np.ndarray, list[dict]]:
    """The images (N, 64, 64, 3) uint8 and one record per image (system, prompt, seen)."""
    images = np.load(fixture / "images.npz")["images"]
    records = json.loads((fixture / "labels.json").read_text())["images"]
    if len(images) != len(records):
        raise ValueError(f"{len(images)} images but {len(records)} labels in {fixture}")
    return images, records


def parse_seen(seen: str) -> list[tuple[str | None, str | None]]:
    """"red circle; ? square" -> [("red", "circle"), (None, "square")]; "nothing" -> []."""
    if seen.strip() == "nothing":
        return []
    objects = []
    for part in seen.split(";"):
        colour, shape = part.split()
        objects.append((None if colour == "?" else colour, None if shape == "?" else shape))
    return objects


def agreement(images: np.ndarray, records: list[dict]) -> dict:
    """Counts of agreement per attribute, overall and per system."""
    tally: dict[str, Counter] = {}
    for image, record in zip(images, records, strict=True):
        seen = parse_seen(record["seen"])
        found = judge(image).objects
        for group in ("all", record["system"], f"{len(seen)} object(s) seen"):
            t = tally.setdefault(group, Counter())
            t["images"] += 1
            t["count_agree"] += len(found) == len(seen)
            if len(found) != len(seen):
                continue
            for attr, index in (("colour", 0), ("shape", 1)):
                want = Counter(o[index] for o in seen if o[index] is not None)
                got = Counter(getattr(o, "color" if attr == "colour" else "shape") for o in found)
                t[f"{attr}_labelled"] += sum(want.values())
                t[f"{attr}_agree"] += sum((want & got).values())
            t["ambiguous_objects"] += sum(None in o for o in seen)
            t["objects"] += len(seen)
    out = {}
    for group, t in tally.items():
        out[group] = {
            "images": t["images"],
            "count": round(t["count_agree"] / t["images"], 4),
            "shape": round(t["shape_agree"] / max(t["shape_labelled"], 1), 4),
            "colour": round(t["colour_agree"] / max(t["colour_labelled"], 1), 4),
            "readable shapes": t["shape_labelled"], "readable colours": t["colour_labelled"],
            "objects with an attribute the eye could not tell": t["ambiguous_objects"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    images, records = load()
    groups = agreement(images, records)
    meta = json.loads((FIXTURE / "labels.json").read_text())
    result = {"benchmark": "judge_audit", "device": "cpu", "labelled_by": meta["labelled_by"],
              "sources": meta["sources"], "groups": groups,
              "summary": [{"set": name, **row} for name, row in groups.items()],
              "commentary": ("How often the judge agrees with a person who labelled generated "
                             "images by eye: the same number of objects (count), and, where the "
                             "counts agree, the shapes and colours the eye could read. The "
                             "sets are the systems' images at two times: 'dalle' an early mini "
                             "DALL-E's (on VQ-VAE tokens, blurrier), 'dalle_vqgan' chapter 6's "
                             "current model's (labelled later, blind to prompts and verdicts as "
                             "before), 'vqgan_clip' chapter 7's search's. On VQGAN+CLIP's "
                             "speckled images the judge counts fragments that the eye does not "
                             "call objects.")}
    print(json.dumps(groups, indent=2))
    write_record(result, args.out)


if __name__ == "__main__":
    main()
