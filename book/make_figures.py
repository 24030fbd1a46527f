"""Make the figures of the book's front matter (run from the repository root):

    python book/make_figures.py

figures/shapes_world.png: a dozen scenes of the Shapes world with their captions, the data every
model in the book is trained on; figures/favicon.png: the browser tab's icon, one Shapes scene.
Seeded, so the figures are the same on every run.

figures/dalle_samples.png: the first figure of images that chapter 6's mini DALL-E drew for the
prompts (the first cell calling ``draw(`` that has an image), taken from the notebook's stored
outputs: run the chapter first (python -m minit2i.tools.execute notebooks/06_mini_dalle.ipynb).
"""

import base64
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402

from minit2i.shapes import Obj, Scene, caption, render, sample_scene  # noqa: E402
from minit2i.viz import image_grid  # noqa: E402

FIGURES = Path(__file__).resolve().parent / "figures"


def shapes_world(n: int = 12, seed: int = 0):
    """Scenes with one and two objects, each rendered at 64x64 and captioned canonically."""
    rng = np.random.default_rng(seed)
    scenes = [sample_scene(rng, n_objects=1 + k % 2) for k in range(n)]
    images = np.stack([render(s, size=64) for s in scenes])
    return image_grid(images, [caption(s) for s in scenes], ncols=6, scale=1.6, wrap=26,
                      title="The Shapes world: 64x64 images and their captions")


def favicon() -> np.ndarray:
    """A 32x32 red circle to the left of a blue square."""
    scene = Scene((Obj("circle", "red", "large", "left"), Obj("square", "blue", "large", "right")),
                  relation="left of")
    return render(scene, size=32)


def stored_figure(notebook: Path, contains: str) -> bytes | None:
    """The PNG shown by the first code cell whose source contains ``contains`` (or None)."""
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["cell_type"] == "code" and contains in "".join(cell["source"]):
            for output in cell.get("outputs", []):
                png = output.get("data", {}).get("image/png")
                if png:
                    return base64.b64decode("".join(png))
    return None


if __name__ == "__main__":
    FIGURES.mkdir(exist_ok=True)
    shapes_world().savefig(FIGURES / "shapes_world.png", dpi=120, bbox_inches="tight")
    matplotlib.image.imsave(FIGURES / "favicon.png", favicon())
    print(f"wrote shapes_world.png and favicon.png in {FIGURES}")
    chapter6 = FIGURES.parents[1] / "notebooks" / "06_mini_dalle.ipynb"
    png = stored_figure(chapter6, "draw(") if chapter6.exists() else None
    if png:
        (FIGURES / "dalle_samples.png").write_bytes(png)
        print(f"wrote dalle_samples.png from {chapter6.name}")
    else:
        print(f"no stored samples in {chapter6.name} yet: dalle_samples.png not written")
