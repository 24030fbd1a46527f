"""The Shapes world: captions and their parser, rendering, splits, and the dataset."""

import dataclasses
import time

import numpy as np
import pytest
import torch

from minit2i.data import ShapesDataset, collate
from minit2i.shapes import (
    COLORS,
    HELDOUT_PAIRS,
    POSITIONS,
    RELATIONS,
    SHAPES,
    SIZES,
    SPLITS,
    Obj,
    Scene,
    as_uint8,
    caption,
    check_prompts,
    corrupt,
    parse,
    relation_holds,
    render,
    sample_scene,
    to_float_image,
    to_uint8_image,
)
from minit2i.text import Tokenizer


def test_vocabulary_sizes():
    assert len(COLORS) >= 8 and len(SHAPES) >= 4 and len(SIZES) == 2 and len(POSITIONS) == 9
    assert {"circle", "square", "triangle"} <= set(SHAPES)
    assert set(RELATIONS) == {"left of", "right of", "above", "below"}
    assert len(HELDOUT_PAIRS) >= 4


def test_round_trip_over_ten_thousand_scenes():
    rng = np.random.default_rng(0)
    for i in range(10_000):
        scene = sample_scene(rng, 1 + i % 2, SPLITS[i % 3])
        text = caption(scene, rng)
        assert parse(text) == scene.described(), text
        assert parse(caption(scene)) == scene.described()


def test_canonical_captions():
    one = Scene((Obj("circle", "red", "large", "top left"),))
    assert caption(one) == "a large red circle in the top left"
    two = Scene((Obj("square", "blue", "small", "left"), Obj("cross", "green", "large", "right")),
                "left of")
    assert caption(two) == "a small blue square to the left of a large green cross"


def test_phrasings_vary_with_an_rng():
    rng = np.random.default_rng(1)
    scene = Scene((Obj("circle", "red", "large", "center"),))
    texts = {caption(scene, rng) for _ in range(200)}
    assert len(texts) >= 6
    assert any("big" in t for t in texts) and any("middle" in t for t in texts)


def test_prompts_may_leave_size_and_position_open():
    assert parse("a red circle") == Scene((Obj("circle", "red", None, None),))
    assert parse("A big, blue Square!") == Scene((Obj("square", "blue", "large", None),))
    assert parse("red triangle above a green circle").relation == "above"


@pytest.mark.parametrize("prompt, message", [
    ("a purpel circle", r"unknown word 'purpel'.*known colours: red, green"),
    ("a big red", "no shape"),
    ("a big circle", "no colour"),
    ("a red circle above a blue square above a green cross", "more than two objects"),
    ("a red circle and a blue square", "'and'"),
    ("above a red circle", "misplaced relation"),
    ("a red circle a blue square", "no relation"),
    ("a red circle in the top left above a blue square", "not grid positions"),
    ("in the center", "misplaced position"),
    ("", "empty prompt"),
    ("a red big large circle", "unexpected word"),
])
def test_parse_errors_name_the_problem(prompt, message):
    with pytest.raises(ValueError, match=message):
        parse(prompt)


def test_scene_and_obj_validation():
    with pytest.raises(ValueError, match="unknown colour 'teal'"):
        Obj("circle", "teal")
    with pytest.raises(ValueError, match="unknown shape"):
        Obj("hexagon", "red")
    with pytest.raises(ValueError, match="offset"):
        Obj("circle", "red", "large", "center", (0.5, 0.0))
    a, b = Obj("circle", "red", "large", "left"), Obj("square", "blue", "large", "right")
    with pytest.raises(ValueError, match="1 or 2 objects"):
        Scene((a, b, a), "left of")
    with pytest.raises(ValueError, match="needs a relation"):
        Scene((a, b))
    with pytest.raises(ValueError, match="is not 'right of'"):
        Scene((a, b), "right of")
    with pytest.raises(ValueError, match="no relation"):
        Scene((a,), "above")
    with pytest.raises(ValueError, match="n_objects"):
        sample_scene(np.random.default_rng(0), 3)
    with pytest.raises(ValueError, match="unknown split"):
        sample_scene(np.random.default_rng(0), 1, "test")


def _components(mask):
    """Number of 4-connected regions and each region's pixel set (a plain flood fill)."""
    seen = np.zeros_like(mask)
    regions = []
    for y, x in zip(*np.nonzero(mask)):
        if seen[y, x]:
            continue
        stack, pixels = [(y, x)], []
        seen[y, x] = True
        while stack:
            a, b = stack.pop()
            pixels.append((a, b))
            for c, d in ((a + 1, b), (a - 1, b), (a, b + 1), (a, b - 1)):
                inside = 0 <= c < mask.shape[0] and 0 <= d < mask.shape[1]
                if inside and mask[c, d] and not seen[c, d]:
                    seen[c, d] = True
                    stack.append((c, d))
        regions.append(np.array(pixels))
    return regions


@pytest.mark.parametrize("size", [32, 64, 128])
def test_objects_never_touch_and_relations_hold(size):
    rng = np.random.default_rng(size)
    for _ in range(150):
        scene = sample_scene(rng, 2)
        img = render(scene, size)
        assert img.dtype == np.uint8 and img.shape == (size, size, 3)
        regions = _components(img.max(axis=2) > 0)
        assert len(regions) == 2
        # at least one background pixel between the two objects, in every direction
        gap = np.abs(regions[0][:, None, :] - regions[1][None, :, :]).max(axis=2).min()
        assert gap >= 2
        centroids = [r.mean(0) for r in regions]           # (row, col)
        a_cell, b_cell = scene.objects[0].row_col, scene.objects[1].row_col
        # each rendered object sits in its own grid cell
        cells = [tuple(int(v * 3 / size) for v in c) for c in centroids]
        assert sorted(cells) == sorted([a_cell, b_cell])
        assert relation_holds(scene.objects[0].position, scene.objects[1].position, scene.relation)


def test_render_is_a_pure_function_with_black_background():
    scene = sample_scene(np.random.default_rng(3), 1)
    img = render(scene)
    assert np.array_equal(img, render(scene))
    assert (img[0, 0] == 0).all() and (img[-1, -1] == 0).all()
    assert render(scene, 32).shape == (32, 32, 3)
    with pytest.raises(ValueError, match="at least 16"):
        render(scene, 8)
    with pytest.raises(ValueError, match="size and position"):
        render(parse("a red circle"))


def test_colours_are_drawn_as_named():
    img = render(Scene((Obj("square", "green", "large", "center"),)))
    assert tuple(img[32, 32]) == COLORS["green"]


def test_heldout_pairs_only_in_heldout_split():
    rng = np.random.default_rng(4)
    for split in SPLITS:
        pairs = set()
        for _ in range(5000 if split != "heldout" else 1000):
            scene = sample_scene(rng, 1 + int(rng.integers(2)), split)
            pairs |= {(o.color, o.shape) for o in scene.objects}
        if split == "heldout":
            assert pairs == set(HELDOUT_PAIRS)
        else:
            assert not pairs & HELDOUT_PAIRS
            assert len(pairs) == len(COLORS) * len(SHAPES) - len(HELDOUT_PAIRS)


def test_dataset_items_are_deterministic_by_index():
    a, b = ShapesDataset("train", 50, seed=3), ShapesDataset("train", 50, seed=3)
    for i in (0, 17, 49, 17):
        x, y = a[i], b[i]
        assert torch.equal(x["image"], y["image"]) and x["caption"] == y["caption"]
    assert ShapesDataset("train", 50, seed=4)[0]["caption"] != a[0]["caption"] or \
        not torch.equal(ShapesDataset("train", 50, seed=4)[0]["image"], a[0]["image"])
    with pytest.raises(IndexError):
        a[50]


def test_dataset_is_the_same_in_dataloader_workers():
    ds = ShapesDataset("val", 24, seed=1)
    loader = torch.utils.data.DataLoader(ds, batch_size=6, num_workers=2, collate_fn=collate)
    batches = list(loader)
    images = torch.cat([b["image"] for b in batches])
    assert torch.equal(images, torch.stack([ds[i]["image"] for i in range(24)]))
    assert sum((b["caption"] for b in batches), []) == [ds[i]["caption"] for i in range(24)]


def test_dataset_item_contents():
    ds = ShapesDataset("heldout", 10, size=32, n_objects=1)
    item = ds[3]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    assert item["image"].min() >= -1 and item["image"].max() <= 1
    assert Tokenizer().decode(item["tokens"]) == " ".join(item["caption"].split())
    assert parse(item["caption"]) == item["scene"].described()
    assert len(item["scene"].objects) == 1


def test_tensors_equal_the_items():
    ds = ShapesDataset("train", 12, seed=5)
    images, tokens, captions = ds.tensors()
    assert images.dtype == torch.uint8 and images.shape == (12, 3, 64, 64)
    for i in range(12):
        assert torch.equal(images[i].float() / 127.5 - 1, ds[i]["image"])
        assert torch.equal(tokens[i], ds[i]["tokens"]) and captions[i] == ds[i]["caption"]


def test_both_object_counts_are_mixed_by_default():
    counts = {len(ShapesDataset("train", 200)[i]["scene"].objects) for i in range(200)}
    assert counts == {1, 2}


def test_rendering_speed_sanity():
    rng = np.random.default_rng(0)
    scenes = [sample_scene(rng, 1 + i % 2) for i in range(500)]
    start = time.perf_counter()
    for s in scenes:
        render(s)
    assert time.perf_counter() - start < 5.0


def test_described_drops_what_captions_do_not_say():
    scene = sample_scene(np.random.default_rng(9), 2)
    d = scene.described()
    assert all(o.position is None and o.offset == (0.0, 0.0) for o in d.objects)
    assert d.relation == scene.relation
    one = sample_scene(np.random.default_rng(9), 1)
    assert one.described() == dataclasses.replace(
        one, objects=(dataclasses.replace(one.objects[0], offset=(0.0, 0.0)),))


def test_image_conversions():
    u = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    f = to_float_image(u)
    assert f.min() >= -1 and f.max() <= 1
    assert torch.equal(to_uint8_image(f), u)
    hwc = as_uint8(f)                                   # channels last, numpy
    assert hwc.shape == (2, 4, 4, 3) and hwc.dtype == np.uint8
    assert np.array_equal(hwc, u.permute(0, 2, 3, 1).numpy())
    assert np.array_equal(as_uint8(hwc), hwc) and as_uint8(f[0]).shape == (1, 4, 4, 3)
    with pytest.raises(ValueError, match="expected images"):
        as_uint8(torch.zeros(2, 5, 4, 4))


def test_check_prompts_names_the_problem():
    assert check_prompts("a red circle") == ["a red circle"]
    with pytest.raises(ValueError, match="unknown word 'dog'"):
        check_prompts(["a red circle", "a purple dog"])
    with pytest.raises(ValueError, match="no prompts"):
        check_prompts([])
    with pytest.raises(ValueError, match="a prompt is a string"):
        check_prompts([3])


@pytest.mark.parametrize("n_objects", [1, 2])
def test_corrupt_changes_exactly_what_it_says(n_objects):
    rng = np.random.default_rng(0)
    for _ in range(200):
        scene = sample_scene(rng, n_objects)
        bad = corrupt(scene, rng)
        assert bad != scene.described() and parse(caption(bad)) == bad     # a different caption
        if n_objects == 1:
            a, b = scene.described().objects[0], bad.objects[0]
            changed = [f for f in ("shape", "color", "size", "position")
                       if getattr(a, f) != getattr(b, f)]
            assert len(changed) == 1, changed
    two = Scene((Obj("circle", "red", "large", "left"), Obj("square", "blue", "small", "right")),
                "left of")
    assert caption(corrupt(two, rng, "swap colours")) == \
        "a large blue circle to the left of a small red square"
    assert corrupt(two, rng, "reverse relation").relation == "right of"
    with pytest.raises(ValueError, match="unknown corruption 'size'"):
        corrupt(two, rng, "size")
