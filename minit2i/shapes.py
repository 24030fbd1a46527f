"""The Shapes world: procedurally generated, captioned images (no downloads, ever).

A scene is one or two solid shapes on a black background. Each object has a shape, a colour, a
size and a position on a 3x3 grid; two objects also have a relation ("a red circle to the left of
a blue square") that the rendering honours. Objects never touch, so a judge can tell them apart.

    scene = sample_scene(rng)            # Scene(objects=(Obj(...),), relation=None)
    image = render(scene, size=64)       # np.uint8 (H, W, 3)
    text = caption(scene, rng)           # "a large red circle in the top left"
    parse(text) == scene.described()     # True for every phrasing caption() produces

Some colour x shape pairs (HELDOUT_PAIRS) never appear in the train split, so chapter 6 can ask
whether a model draws a combination it never saw. See the book's introduction, "The Shapes world".
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass

import numpy as np
import torch

# ---------------------------------------------------------------------------------------------
# The vocabulary of the world
# ---------------------------------------------------------------------------------------------

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 90, 240),
    "yellow": (245, 225, 40),
    "purple": (150, 50, 210),
    "orange": (250, 140, 20),
    "cyan": (40, 220, 230),
    "pink": (250, 130, 200),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "cross")
SIZES: tuple[str, ...] = ("small", "large")
# Row-major 3x3 grid; POSITIONS[3 * row + col].
POSITIONS: tuple[str, ...] = (
    "top left", "top", "top right",
    "left", "center", "right",
    "bottom left", "bottom", "bottom right",
)
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
BACKGROUND: tuple[int, int, int] = (0, 0, 0)

# Never in the train split: each shape once, five different colours.
HELDOUT_PAIRS: frozenset[tuple[str, str]] = frozenset({
    ("red", "triangle"), ("green", "circle"), ("blue", "diamond"),
    ("yellow", "square"), ("purple", "cross"),
})
SPLITS: tuple[str, ...] = ("train", "val", "heldout")

# Geometry as fractions of the image side. Grid cells are 1/3 wide; a large object's half-extent
# (0.125) plus the jitter (0.025) stays below half a cell (0.167), so neighbours never touch.
HALF_EXTENT = {"small": 0.075, "large": 0.125}
JITTER = 0.025


@dataclass(frozen=True)
class Obj:
    """One object; ``size`` and ``position`` are None in a parsed prompt that leaves them open."""

    shape: str
    color: str
    size: str | None = "large"
    position: str | None = None
    offset: tuple[float, float] = (0.0, 0.0)   # (dx, dy) jitter, fractions of the image side

    def __post_init__(self):
        _check("shape", self.shape, SHAPES)
        _check("colour", self.color, COLORS)
        if self.size is not None:
            _check("size", self.size, SIZES)
        if self.position is not None:
            _check("position", self.position, POSITIONS)
        if len(self.offset) != 2 or max(abs(float(v)) for v in self.offset) > JITTER + 1e-9:
            raise ValueError(f"offset must be (dx, dy) with |dx|, |dy| <= {JITTER}, "
                             f"got {self.offset}")

    @property
    def row_col(self) -> tuple[int, int]:
        if self.position is None:
            raise ValueError("this object has no position")
        return divmod(POSITIONS.index(self.position), 3)


@dataclass(frozen=True)
class Scene:
    """One or two objects; for two, ``relation`` says where objects[0] is relative to objects[1]."""

    objects: tuple[Obj, ...]
    relation: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "objects", tuple(self.objects))
        if len(self.objects) not in (1, 2):
            raise ValueError(
                f"a Shapes scene has 1 or 2 objects, got {len(self.objects)}")
        if len(self.objects) == 2:
            if self.relation is None:
                raise ValueError("a two-object scene needs a relation: one of "
                                 + ", ".join(RELATIONS))
            _check("relation", self.relation, RELATIONS)
            a, b = self.objects
            if a.position is not None and b.position is not None:
                if a.position == b.position:
                    raise ValueError("two objects cannot share a grid position")
                if not relation_holds(a.position, b.position, self.relation):
                    raise ValueError(
                        f"a {a.position} object is not '{self.relation}' a {b.position} object")
        elif self.relation is not None:
            raise ValueError("a one-object scene has no relation")

    def described(self) -> Scene:
        """The scene as a caption states it: no jitter, and no grid positions for two objects."""
        two = len(self.objects) == 2
        objs = tuple(dataclasses.replace(o, offset=(0.0, 0.0),
                                         position=None if two else o.position)
                     for o in self.objects)
        return Scene(objs, self.relation)


def _check(what: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; known: {', '.join(allowed)}")


def relation_holds(pos_a: str, pos_b: str, relation: str) -> bool:
    """Whether an object at grid position ``pos_a`` is ``relation`` one at ``pos_b``."""
    (ra, ca), (rb, cb) = divmod(POSITIONS.index(pos_a), 3), divmod(POSITIONS.index(pos_b), 3)
    return {"left of": ca < cb, "right of": ca > cb, "above": ra < rb, "below": ra > rb}[relation]


# ---------------------------------------------------------------------------------------------
# Sampling
# ---------------------------------------------------------------------------------------------

def _allowed_pairs(split: str) -> list[tuple[str, str]]:
    _check("split", split, SPLITS)
    pairs = [(c, s) for c in COLORS for s in SHAPES]
    if split == "heldout":
        return sorted(HELDOUT_PAIRS)
    return [p for p in pairs if p not in HELDOUT_PAIRS]


def sample_scene(rng: np.random.Generator, n_objects: int = 1, split: str = "train") -> Scene:
    """A random scene. ``train`` and ``val`` avoid HELDOUT_PAIRS; ``heldout`` uses only them."""
    if n_objects not in (1, 2):
        raise ValueError(f"n_objects must be 1 or 2, got {n_objects}")
    pairs = _allowed_pairs(split)

    def obj(position: str) -> Obj:
        color, shape = pairs[rng.integers(len(pairs))]
        offset = tuple(float(v) for v in rng.uniform(-JITTER, JITTER, size=2))
        return Obj(shape, color, SIZES[rng.integers(2)], position, offset)

    if n_objects == 1:
        return Scene((obj(POSITIONS[rng.integers(9)]),))
    relation = RELATIONS[rng.integers(4)]
    # All ordered position pairs that honour the relation: 18 for each relation.
    options = [(a, b) for a in POSITIONS for b in POSITIONS
               if a != b and relation_holds(a, b, relation)]
    pa, pb = options[rng.integers(len(options))]
    return Scene((obj(pa), obj(pb)), relation)


OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
CORRUPTIONS = {1: ("colour", "shape", "size", "position"),
               2: ("swap colours", "swap shapes", "reverse relation", "colour", "shape")}


def corrupt(scene: Scene, rng: np.random.Generator, how: str | None = None) -> Scene:
    """The described scene with exactly one thing changed, so that its caption is false of the
    image: a hard negative. One object: its colour, shape, size or position; two objects: the
    colours or the shapes swapped, the relation reversed, or one object's colour or shape
    replaced. ``how`` picks one of ``CORRUPTIONS[n]`` (default: at random, among the ones that
    change the caption)."""
    d = scene.described()
    kinds = CORRUPTIONS[len(d.objects)]
    if how is not None:
        _check("corruption", how, kinds)
    objs = list(d.objects)
    for kind in [how] if how else list(rng.permutation(kinds)):
        new = list(objs)
        k = int(rng.integers(len(objs)))
        if kind == "swap colours":
            new = [dataclasses.replace(objs[0], color=objs[1].color),
                   dataclasses.replace(objs[1], color=objs[0].color)]
        elif kind == "swap shapes":
            new = [dataclasses.replace(objs[0], shape=objs[1].shape),
                   dataclasses.replace(objs[1], shape=objs[0].shape)]
        elif kind == "colour":
            new[k] = dataclasses.replace(objs[k], color=str(rng.choice(
                [c for c in COLORS if c != objs[k].color])))
        elif kind == "shape":
            new[k] = dataclasses.replace(objs[k], shape=str(rng.choice(
                [x for x in SHAPES if x != objs[k].shape])))
        elif kind == "size":
            new[0] = dataclasses.replace(objs[0], size="small" if objs[0].size == "large"
                                         else "large")
        elif kind == "position":
            new[0] = dataclasses.replace(objs[0], position=str(rng.choice(
                [p for p in POSITIONS if p != objs[0].position])))
        relation = OPPOSITE[d.relation] if kind == "reverse relation" else d.relation
        out = Scene(tuple(new), relation)
        if out != d:
            return out
    raise ValueError(f"no corruption changes {caption(d)!r} (identical objects?)")


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------

def _shape_alpha(shape: str, n: int, supersample: int = 4) -> np.ndarray:
    """Coverage (n, n) in [0, 1] of ``shape`` in an n x n box, anti-aliased by supersampling."""
    m = n * supersample
    c = (np.arange(m) + 0.5) / m * 2 - 1                 # pixel centres in [-1, 1]
    x, y = np.meshgrid(c, c)                             # y grows downwards
    if shape == "circle":
        inside = x**2 + y**2 <= 1
    elif shape == "square":
        inside = (np.abs(x) <= 0.92) & (np.abs(y) <= 0.92)
    elif shape == "diamond":
        inside = np.abs(x) + np.abs(y) <= 1
    elif shape == "triangle":                            # apex up, base at the bottom
        inside = (y <= 0.9) & (y >= -0.9) & (np.abs(x) <= (y + 0.9) / 1.8)
    elif shape == "cross":
        inside = ((np.abs(x) <= 0.33) | (np.abs(y) <= 0.33)) & (np.abs(x) <= 1) & (np.abs(y) <= 1)
    else:
        _check("shape", shape, SHAPES)
    return inside.reshape(n, supersample, n, supersample).mean(axis=(1, 3))


@functools.cache
def _stamp(shape: str, size: str, image_size: int) -> np.ndarray:
    """Alpha stamp (n, n, 1) float32 for one object; cached, so rendering is a blend."""
    n = max(3, round(2 * HALF_EXTENT[size] * image_size))
    return _shape_alpha(shape, n).astype(np.float32)[:, :, None]


def render(scene: Scene, size: int = 64) -> np.ndarray:
    """Draw a scene as an np.uint8 image (size, size, 3) on the black background."""
    if size < 16:
        raise ValueError(f"image size must be at least 16 pixels, got {size}")
    img = np.zeros((size, size, 3), dtype=np.float32)
    img[:] = BACKGROUND
    for obj in scene.objects:
        if obj.position is None or obj.size is None:
            raise ValueError("render needs every object's size and position; "
                             "sample_scene() gives complete scenes")
        row, col = obj.row_col
        alpha = _stamp(obj.shape, obj.size, size)
        n = alpha.shape[0]
        cx = (col + 0.5 + 3 * obj.offset[0]) * size / 3
        cy = (row + 0.5 + 3 * obj.offset[1]) * size / 3
        x0, y0 = int(round(cx - n / 2)), int(round(cy - n / 2))
        x0, y0 = min(max(x0, 0), size - n), min(max(y0, 0), size - n)
        patch = img[y0:y0 + n, x0:x0 + n]
        patch += alpha * (np.asarray(COLORS[obj.color], np.float32) - patch)
    return img.round().astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Captions and their parser
# ---------------------------------------------------------------------------------------------

SIZE_WORDS = {"small": ("small", "little", "tiny"), "large": ("large", "big")}
POSITION_PHRASES = {
    "top left": ("in the top left", "at the top left"),
    "top": ("at the top", "in the top middle"),
    "top right": ("in the top right", "at the top right"),
    "left": ("on the left", "in the middle left"),
    "center": ("in the center", "in the middle"),
    "right": ("on the right", "in the middle right"),
    "bottom left": ("in the bottom left", "at the bottom left"),
    "bottom": ("at the bottom", "in the bottom middle"),
    "bottom right": ("in the bottom right", "at the bottom right"),
}
RELATION_PHRASES = {
    "left of": ("to the left of", "left of"),
    "right of": ("to the right of", "right of"),
    "above": ("above",),
    "below": ("below", "beneath"),
}
PREFIXES = ("", "a picture of ", "an image of ", "there is ")


def caption(scene: Scene, rng: np.random.Generator | None = None) -> str:
    """Describe a scene in English; with an rng, pick among synonyms and templates.

    Without an rng the phrasing is canonical: "a large red circle in the top left",
    "a small blue square to the left of a large green cross".
    """
    def pick(options):
        return options[0] if rng is None else options[rng.integers(len(options))]

    def noun_phrase(o: Obj) -> str:
        words = ([pick(SIZE_WORDS[o.size])] if o.size else []) + [o.color, o.shape]
        return "a " + " ".join(words)

    if len(scene.objects) == 1:
        o = scene.objects[0]
        text = noun_phrase(o)
        if o.position is not None:
            text += " " + pick(POSITION_PHRASES[o.position])
    else:
        a, b = scene.objects
        text = f"{noun_phrase(a)} {pick(RELATION_PHRASES[scene.relation])} {noun_phrase(b)}"
    return pick(PREFIXES) + text


def _lookup(phrases: dict[str, tuple[str, ...]]) -> dict[tuple[str, ...], str]:
    return {tuple(p.split()): name for name, ps in phrases.items() for p in ps}


_SIZE_OF = {w: s for s, ws in SIZE_WORDS.items() for w in ws}
_POSITION_OF = _lookup(POSITION_PHRASES)
_RELATION_OF = _lookup(RELATION_PHRASES)
_PREFIX_OF = {tuple(p.split()) for p in PREFIXES if p}
_FILLER = {"a", "an", "the", "one"}

#: Every word a caption or a prompt may use (the tokenizer's vocabulary).
VOCABULARY: tuple[str, ...] = tuple(sorted(
    set(COLORS) | set(SHAPES) | set(_SIZE_OF) | _FILLER
    | {w for table in (_POSITION_OF, _RELATION_OF) for phrase in table for w in phrase}
    | {w for p in _PREFIX_OF for w in p} | {"and"}))


def words(text: str) -> list[str]:
    """Lower-case words of a prompt, punctuation dropped: "A red circle." -> [a, red, circle]."""
    return re.findall(r"[a-z]+", text.lower())


def _match(ws: list[str], i: int, table: dict[tuple[str, ...], str]) -> tuple[str, int] | None:
    for phrase in sorted(table, key=len, reverse=True):
        if tuple(ws[i:i + len(phrase)]) == phrase:
            return table[phrase], i + len(phrase)
    return None


def parse(text: str) -> Scene:
    """Turn a caption (or a prompt a reader types) back into a Scene.

    Size and position may be left out ("a red circle"); a shape and a colour are required.
    Anything the Shapes world cannot express raises ValueError naming the problem.
    """
    ws = words(text)
    unknown = [w for w in ws if w not in VOCABULARY]
    if unknown:
        raise ValueError(
            f"unknown word {unknown[0]!r} in prompt {text!r}; known colours: {', '.join(COLORS)}; "
            f"shapes: {', '.join(SHAPES)}; sizes: {', '.join(_SIZE_OF)}; positions: "
            f"{', '.join(POSITIONS)}; relations: {', '.join(RELATIONS)}")
    if not ws:
        raise ValueError("empty prompt; try 'a large red circle in the top left'")
    for prefix in sorted(_PREFIX_OF, key=len, reverse=True):
        if tuple(ws[:len(prefix)]) == prefix:
            ws = ws[len(prefix):]
            break

    objects, relation, i = [], None, 0
    while i < len(ws):
        if ws[i] in _FILLER:
            i += 1
            continue
        rel = _match(ws, i, _RELATION_OF)
        if rel is not None:
            if len(objects) == 2:
                raise ValueError(f"{text!r} has more than two objects; "
                                 "a Shapes scene has one or two")
            if relation is not None or len(objects) != 1:
                raise ValueError(f"misplaced relation in {text!r}; write "
                                 "'a red circle to the left of a blue square'")
            relation, i = rel
            continue
        pos = _match(ws, i, _POSITION_OF)
        if pos is not None:
            if not objects or objects[-1].get("position"):
                raise ValueError(f"misplaced position in {text!r}; a position follows its "
                                 "object: 'a red circle in the top left'")
            objects[-1]["position"], i = pos
            continue
        if ws[i] == "and":
            raise ValueError(f"'and' in {text!r}: two objects are joined by a relation "
                             f"({', '.join(RELATIONS)}), e.g. 'a red circle above a blue square'")
        # A noun phrase: [size] [colour] shape
        obj: dict = {}
        while i < len(ws) and ws[i] not in SHAPES:
            w = ws[i]
            if w in _SIZE_OF and "size" not in obj:
                obj["size"] = _SIZE_OF[w]
            elif w in COLORS and "color" not in obj:
                obj["color"] = w
            else:
                raise ValueError(f"unexpected word {w!r} in {text!r}; an object is written "
                                 "[size] colour shape, e.g. 'a small blue square'")
            i += 1
        if i == len(ws):
            raise ValueError(f"no shape in {text!r}; known shapes: {', '.join(SHAPES)}")
        obj["shape"] = ws[i]
        i += 1
        if "color" not in obj:
            raise ValueError(f"no colour for the {obj['shape']} in {text!r}; "
                             f"known colours: {', '.join(COLORS)}")
        objects.append(obj)
        if len(objects) > 2:
            raise ValueError(f"{text!r} has more than two objects; a Shapes scene has one or two")
    if not objects:
        raise ValueError(f"no shape in {text!r}; known shapes: {', '.join(SHAPES)}")
    if len(objects) == 2 and relation is None:
        raise ValueError(f"two objects but no relation in {text!r}; "
                         f"use one of: {', '.join(RELATIONS)}")
    if len(objects) == 2 and any(o.get("position") for o in objects):
        raise ValueError(f"{text!r}: with two objects give their relation, not grid positions")
    return Scene(tuple(Obj(o["shape"], o["color"], o.get("size"), o.get("position"))
                       for o in objects), relation)


def check_prompts(prompts: str | list[str]) -> list[str]:
    """Prompts as a list, each parsed (a ValueError names the first problem), before any model
    is loaded: a prompt the models could never have learned fails at once, and clearly."""
    if isinstance(prompts, str):
        prompts = [prompts]
    prompts = list(prompts)
    if not prompts:
        raise ValueError("no prompts given; try ['a large red circle in the top left']")
    for p in prompts:
        if not isinstance(p, str):
            raise ValueError(f"a prompt is a string, got {type(p).__name__}: {p!r}")
        parse(p)                    # raises ValueError("unknown word 'dog' in prompt ...")
    return prompts

# ---------------------------------------------------------------------------------------------
# Images as arrays and tensors
# ---------------------------------------------------------------------------------------------

def to_float_image(x: torch.Tensor) -> torch.Tensor:
    """uint8 images (…, 3, H, W) in [0, 255] -> float in [-1, 1], the models' input."""
    return x.float() / 127.5 - 1


def to_uint8_image(x: torch.Tensor) -> torch.Tensor:
    """float images in [-1, 1] -> uint8 in [0, 255] (same layout)."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def as_uint8(images) -> np.ndarray:
    """Images as np.uint8 (N, H, W, 3), the Shapes world's format, from uint8 or [-1, 1] float
    arrays or tensors, channels first or last; one image (3 dimensions) becomes N = 1."""
    x = images.detach().cpu() if isinstance(images, torch.Tensor) else torch.as_tensor(
        np.asarray(images))
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or 3 not in (x.shape[1], x.shape[-1]):
        raise ValueError(f"expected images (N, H, W, 3) or (N, 3, H, W), got {tuple(x.shape)}")
    if x.shape[-1] != 3:
        x = x.permute(0, 2, 3, 1)
    if x.dtype != torch.uint8:
        x = to_uint8_image(x)
    return x.numpy()
