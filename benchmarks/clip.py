"""Chapter 4's CLIP: zero-shot accuracy and retrieval, written to benchmarks/results/clip.json.

    python benchmarks/clip.py [--preset smoke|cpu|full] [--model clip|clip_b]

Trains the model with the preset's recipe (or loads it from the cache), then measures zero-shot
colour / shape / size / position accuracy on 500 one-object ``val`` images (prompt ensembles) and
text->image / image->text R@1 and R@5 among 100 distinct scenes of ``val`` and of ``heldout``.
Targets for ``full``: colour and shape >= 0.98, val text->image R@1 >= 0.9.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import write_record

from minit2i.clip import evaluate
from minit2i.config import device_name, preset_name
from minit2i.zoo import load_or_train

TARGETS = {"zero_shot_color": 0.98, "zero_shot_shape": 0.98, "val_t2i_R@1": 0.9}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default=None, help="smoke, cpu or full (default: as minit2i)")
    parser.add_argument("--model", default="clip", choices=("clip", "clip_b"))
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "clip.json"))
    args = parser.parse_args()
    preset = preset_name(args.preset)

    start = time.perf_counter()
    model = load_or_train(args.model, preset)
    load_or_train_s = time.perf_counter() - start
    start = time.perf_counter()
    scores = evaluate(model)
    eval_s = time.perf_counter() - start

    result = {
        "model": args.model, "preset": preset, "device": device_name(),
        "train_seconds": round(float(model.metrics.get("seconds", 0.0)), 1),
        "load_or_train_seconds": round(load_or_train_s, 1), "eval_seconds": round(eval_s, 1),
        "scale": round(float(model.scale().detach()), 2),
        **{k: round(v, 4) for k, v in scores.items()},
        "targets_full": TARGETS,
        "meets_targets": all(scores[k] >= v for k, v in TARGETS.items()),
    }
    print(json.dumps(result, indent=2))
    write_record(result, args.out)


if __name__ == "__main__":
    main()
