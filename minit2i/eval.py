"""The judge: what is in a generated image, told by a detector independent of every model.

It finds objects as connected components against the black background, then names each one's
colour (nearest palette colour of its core pixels), shape (best intersection-over-union with
templates of the five shapes, both scaled to the object's bounding box), size (bounding box
against the midpoint of the two sizes) and grid position (the cell of its centroid). Nothing in it
is learned, so no model can learn to fool it. ``shapes_eval`` scores a batch of images against
their prompts in the style of GenEval (Ghosh et al., 2023); see chapter 6 and chapter 8.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .shapes import (
    COLORS,
    HALF_EXTENT,
    POSITIONS,
    SHAPES,
    Obj,
    Scene,
    _shape_alpha,
    as_uint8,
    parse,
    relation_holds,
)

FOREGROUND = 70          # max channel (0..255) above which a pixel belongs to an object
TEMPLATE = 16            # shapes are compared on a TEMPLATE x TEMPLATE grid
_PALETTE = np.array(list(COLORS.values()), np.float32)        # (8, 3)
_COLOR_NAMES = list(COLORS)


@dataclass(frozen=True)
class Detection:
    """One object found in an image, with the measurements its attributes came from."""

    obj: Obj
    centroid: tuple[float, float]       # (x, y) in pixels
    area: int
    shape_iou: float


@dataclass(frozen=True)
class Judgement:
    """Everything the judge found in one image, objects ordered left to right, top to bottom."""

    detections: tuple[Detection, ...]

    @property
    def objects(self) -> tuple[Obj, ...]:
        return tuple(d.obj for d in self.detections)

    @property
    def count(self) -> int:
        return len(self.detections)

    def to_scene(self) -> Scene:
        """The image as a Scene (one or two objects; for two, the relation of the first to the
        second, horizontal when their columns differ)."""
        if self.count not in (1, 2):
            raise ValueError(f"the judge found {self.count} objects; a Scene has 1 or 2")
        if self.count == 1:
            return Scene(self.objects)
        a, b = self.objects
        for relation in ("left of", "right of", "above", "below"):
            if relation_holds(a.position, b.position, relation):
                return Scene((a, b), relation)
        raise ValueError("the two objects share a grid cell, so no relation can be named")


def _as_uint8(image) -> np.ndarray:
    """np.uint8 (H, W, 3) from one uint8 (H, W, 3) or float (3, H, W) [-1, 1] image."""
    x = image.detach().cpu() if isinstance(image, torch.Tensor) else np.asarray(image)
    if x.ndim != 3 or 3 not in (x.shape[0], x.shape[-1]):
        raise ValueError(f"expected one image (H, W, 3) uint8 or (3, H, W) float in [-1, 1], "
                         f"got shape {tuple(x.shape)}")
    x = as_uint8(x)[0]
    if x.shape[0] < 16 or x.shape[0] != x.shape[1]:
        raise ValueError(f"expected a square image of at least 16x16 pixels, got {x.shape[:2]}")
    return x


def connected_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Label 4-connected regions of a boolean mask (H, W): labels 1..n, background 0.

    Label propagation: every foreground pixel starts with its own index and repeatedly takes the
    smallest label among its foreground neighbours until nothing changes.
    """
    h, w = mask.shape
    big = h * w + 1
    labels = np.where(mask, np.arange(1, h * w + 1).reshape(h, w), big)
    while True:
        padded = np.pad(labels, 1, constant_values=big)
        nb = np.minimum.reduce([padded[1:-1, 1:-1], padded[:-2, 1:-1], padded[2:, 1:-1],
                                padded[1:-1, :-2], padded[1:-1, 2:]])
        nb = np.where(mask, nb, big)
        if np.array_equal(nb, labels):
            break
        labels = nb
    _, inverse = np.unique(np.where(mask, labels, 0), return_inverse=True)
    inverse = inverse.reshape(h, w)
    return inverse, int(inverse.max())


def _normalise(mask: torch.Tensor) -> torch.Tensor:
    """A mask cropped to its bounding box and resized to TEMPLATE x TEMPLATE, values in [0, 1]."""
    ys, xs = torch.nonzero(mask > 0.5, as_tuple=True)
    crop = mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1].float()
    return F.interpolate(crop[None, None], size=(TEMPLATE, TEMPLATE), mode="bilinear",
                         align_corners=False)[0, 0]


@functools.cache
def _templates() -> torch.Tensor:
    """(len(SHAPES), TEMPLATE, TEMPLATE) normalised masks of the shapes, rendered large."""
    return torch.stack([_normalise(torch.from_numpy(_shape_alpha(s, 64))) for s in SHAPES])


def _detect(img: np.ndarray, labels: np.ndarray, k: int) -> Detection:
    size = img.shape[0]
    region = labels == k
    ys, xs = np.nonzero(region)
    # Colour: the median of the object's brighter half, away from blurred or anti-aliased edges.
    pixels = img[region].astype(np.float32)
    bright = pixels.max(axis=1)
    rgb = np.median(pixels[bright >= np.median(bright)], axis=0)
    color = _COLOR_NAMES[int(np.argmin(((_PALETTE - rgb) ** 2).sum(axis=1)))]
    # Shape: soft IoU with each template on the normalised bounding box.
    m = _normalise(torch.from_numpy(region.astype(np.float32)))
    t = _templates()
    iou = (torch.minimum(m, t).sum((1, 2)) / torch.maximum(m, t).sum((1, 2)))
    best = int(iou.argmax())
    # Size: the bounding box against the midpoint of the small and large boxes.
    extent = max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)
    midpoint = (HALF_EXTENT["small"] + HALF_EXTENT["large"]) * size
    cx, cy = float(xs.mean()), float(ys.mean())
    col, row = min(int(cx * 3 / size), 2), min(int(cy * 3 / size), 2)
    obj = Obj(SHAPES[best], color, "large" if extent > midpoint else "small",
              POSITIONS[3 * row + col])
    return Detection(obj, (cx, cy), int(region.sum()), float(iou[best]))


def judge(image) -> Judgement:
    """Find and name every object in one image (uint8 (H, W, 3) or float (3, H, W) in [-1, 1])."""
    img = _as_uint8(image)
    size = img.shape[0]
    labels, n = connected_components(img.max(axis=2) > FOREGROUND)
    min_area = max(3, int(0.003 * size * size))          # specks of noise are not objects
    areas = np.bincount(labels.ravel(), minlength=n + 1)
    found = [_detect(img, labels, k) for k in range(1, n + 1) if areas[k] >= min_area]
    found.sort(key=lambda d: (d.centroid[0], d.centroid[1]))
    return Judgement(tuple(found))


# ---------------------------------------------------------------------------------------------
# Scoring a batch against prompts
# ---------------------------------------------------------------------------------------------

TASKS = ("single_object", "two_objects", "colour", "position", "colour_attribution")


def _matches(prompt: tuple[Obj, Obj], found: tuple[Obj, Obj], colour: bool) -> list:
    """The orders of ``found`` that match the prompt's objects (by shape, and colour)."""
    pairs = [(found[0], found[1]), (found[1], found[0])]
    return [pair for pair in pairs
            if all(p.shape == f.shape and (not colour or p.color == f.color)
                   for p, f in zip(prompt, pair))]


def score(prompt: Scene | str, judgement: Judgement) -> dict[str, bool]:
    """Which tasks one image passes for its prompt (only the tasks the prompt takes part in).

    One object: ``single_object`` exactly one object, of the right shape; ``colour`` and of the
    right colour; ``position`` (when the prompt names one) and in the right grid cell; ``size``
    (when named) and of the right size. Two objects: ``two_objects`` exactly two, shapes right;
    ``colour_attribution`` and each shape with its own colour; ``position`` the two matched (by
    shape and colour, else by shape) and the stated relation holding between their cells.
    """
    scene = parse(prompt) if isinstance(prompt, str) else prompt
    found = judgement.objects
    if len(scene.objects) == 1:
        p = scene.objects[0]
        one = len(found) == 1 and found[0].shape == p.shape
        out = {"single_object": one, "colour": one and found[0].color == p.color}
        if p.position is not None:
            out["position"] = one and found[0].position == p.position
        if p.size is not None:
            out["size"] = one and found[0].size == p.size
        return out
    if len(found) != 2:
        return {"two_objects": False, "colour_attribution": False, "position": False}
    exact = _matches(scene.objects, found, colour=True)
    # Twins (same shape and colour) match in both orders: the relation may hold in either.
    candidates = exact or _matches(scene.objects, found, colour=False)
    return {"two_objects": bool(candidates), "colour_attribution": bool(exact),
            "position": any(relation_holds(a.position, b.position, scene.relation)
                            for a, b in candidates)}


def shapes_eval(images, prompts) -> dict:
    """Score generated images against their prompts: the fraction passing each task.

    ``images``: uint8 (N, H, W, 3) or float (N, 3, H, W) in [-1, 1]; ``prompts``: N strings or
    Scenes. Returns the tasks that some prompt takes part in (see ``score``), ``overall`` (the
    mean of single_object, two_objects, colour, position and colour_attribution present), and
    ``counts``: how many prompts each task was scored on. ``size`` is reported but not in overall.
    """
    if len(images) != len(prompts):
        raise ValueError(f"{len(images)} images but {len(prompts)} prompts; give one prompt "
                         "per image")
    passed: dict[str, list[bool]] = {}
    for image, prompt in zip(images, prompts):
        for task, ok in score(prompt, judge(image)).items():
            passed.setdefault(task, []).append(ok)
    result = {task: float(np.mean(v)) for task, v in passed.items()}
    main = [result[t] for t in TASKS if t in result]
    result["overall"] = float(np.mean(main)) if main else float("nan")
    result["counts"] = {task: len(v) for task, v in passed.items()}
    return result
