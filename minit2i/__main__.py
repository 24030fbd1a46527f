"""The command line: ``python -m minit2i generate "a large red circle in the top left"``.

    python -m minit2i generate PROMPT [--method dalle|vqgan_clip] [--out out.png] [--n 4]
                                      [--seed 0]

saves the image (a grid when --n > 1) as a PNG. A prompt the Shapes world cannot express
("a purple dog") is refused before any model loads, with exit code 2 and a message naming the
problem. The first run trains the models the method needs (see ``minit2i.zoo``), so it takes
minutes; later runs load them from the cache. See the book's page "How to run this book".
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .generation import METHODS, check_prompts


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minit2i", description="Text-to-image generation in the Shapes world.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    gen = commands.add_parser(
        "generate", help="draw images for a prompt and save them as a PNG",
        description="Draw images for a Shapes prompt, e.g. 'a large red circle in the top "
                    "left' or 'a small blue square to the left of a green cross'.")
    gen.add_argument("prompt", help="what to draw, in the Shapes world's words")
    gen.add_argument("--method", choices=METHODS, default="dalle",
                     help="dalle (chapter 6, fast) or vqgan_clip (chapter 7, slow)")
    gen.add_argument("--out", default="out.png", help="the PNG to write (default: out.png)")
    gen.add_argument("--n", type=int, default=1, help="how many images (a grid when > 1)")
    gen.add_argument("--seed", type=int, default=0, help="random seed (same seed, same images)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)                     # bad options: usage, exit code 2
    try:
        check_prompts([args.prompt])
    except ValueError as e:
        print(f"minit2i generate: error: {e}", file=sys.stderr)
        return 2
    if args.n < 1:
        print(f"minit2i generate: error: --n must be at least 1, got {args.n}", file=sys.stderr)
        return 2
    out = Path(args.out)
    if not out.parent.is_dir():
        print(f"minit2i generate: error: the folder {out.parent} does not exist", file=sys.stderr)
        return 2

    import matplotlib.pyplot as plt

    from .generation import generate, tile

    images = generate([args.prompt], method=args.method, seed=args.seed, n_per_prompt=args.n)
    plt.imsave(out, tile(images) if len(images) > 1 else images[0])
    print(f"saved {len(images)} image{'s' * (len(images) > 1)} of {args.prompt!r} "
          f"({args.method}) to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
