"""The judge: accuracy on clean and degraded renders, detection edge cases, and scoring."""

import numpy as np
import pytest
import torch

from benchmarks.judge_accuracy import accuracy
from minit2i.eval import connected_components, judge, score, shapes_eval
from minit2i.shapes import SPLITS, Obj, Scene, caption, render, sample_scene


@pytest.mark.parametrize("noisy, floor", [(False, 0.995), (True, 0.97)])
def test_attribute_accuracy_on_renders(noisy, floor):
    result = accuracy(n=300, size=64, noisy=noisy, seed=1)
    assert result["object_count"] >= 0.99
    for attribute, acc in result["attributes"].items():
        assert acc >= floor, f"{attribute}: {acc:.4f} < {floor}"


def test_connected_components_against_flood_fill():
    rng = np.random.default_rng(0)
    for _ in range(20):
        mask = rng.random((12, 15)) < 0.45
        labels, n = connected_components(mask)
        # Reference: a plain flood fill.
        ref = np.zeros(mask.shape, int)
        m = 0
        for y, x in zip(*np.nonzero(mask)):
            if ref[y, x]:
                continue
            m += 1
            stack = [(y, x)]
            while stack:
                a, b = stack.pop()
                if 0 <= a < 12 and 0 <= b < 15 and mask[a, b] and not ref[a, b]:
                    ref[a, b] = m
                    stack += [(a + 1, b), (a - 1, b), (a, b + 1), (a, b - 1)]
        assert n == m
        # Same partition: each of our labels maps to exactly one reference label.
        pairs = {(int(a), int(b)) for a, b in zip(labels[mask], ref[mask])}
        assert len(pairs) == n and (labels[~mask] == 0).all()


def test_blank_image_has_no_objects():
    assert judge(np.zeros((64, 64, 3), np.uint8)).count == 0
    assert judge(-torch.ones(3, 64, 64)).count == 0


def test_specks_of_noise_are_ignored():
    img = render(Scene((Obj("circle", "red", "large", "center"),)))
    img[2, 2] = 255          # one bright pixel is noise, not an object
    j = judge(img)
    assert j.count == 1 and j.objects[0] == Obj("circle", "red", "large", "center")


def test_float_and_uint8_inputs_agree():
    scene = sample_scene(np.random.default_rng(3), 2)
    img = render(scene)
    as_float = torch.from_numpy(img).permute(2, 0, 1).float() / 127.5 - 1
    assert judge(img).objects == judge(as_float).objects


def test_two_object_relation_is_recovered():
    rng = np.random.default_rng(5)
    for _ in range(100):
        scene = sample_scene(rng, 2)
        found = judge(render(scene)).to_scene()
        a, b = scene.objects
        fa = next(o for o in found.objects if o.position == a.position)
        fb = next(o for o in found.objects if o.position == b.position)
        assert (fa.shape, fa.color) == (a.shape, a.color)
        assert (fb.shape, fb.color) == (b.shape, b.color)


def test_counts_objects_at_32_pixels():
    rng = np.random.default_rng(2)
    for i in range(100):
        scene = sample_scene(rng, 1 + i % 2)
        assert judge(render(scene, 32)).count == len(scene.objects)


def test_shapes_eval_is_perfect_on_renders_of_the_prompts():
    rng = np.random.default_rng(7)
    scenes = [sample_scene(rng, 1 + i % 2, SPLITS[i % 3]) for i in range(60)]
    prompts = [caption(s, rng) for s in scenes]
    result = shapes_eval(np.stack([render(s) for s in scenes]), prompts)
    for task in ("single_object", "two_objects", "colour", "position", "colour_attribution",
                 "overall"):
        assert result[task] == 1.0, (task, result)
    assert result["counts"]["single_object"] == 30 and result["counts"]["two_objects"] == 30


def test_shapes_eval_is_low_on_mismatched_images():
    rng = np.random.default_rng(8)
    scenes = [sample_scene(rng, 1 + i % 2) for i in range(60)]
    images = np.stack([render(s) for s in scenes])
    prompts = [caption(s) for s in scenes[1:] + scenes[:1]]      # every image with another prompt
    assert shapes_eval(images, prompts)["overall"] < 0.4


def test_score_tells_apart_each_task():
    img = render(Scene((Obj("circle", "red", "large", "top left"),
                        Obj("square", "blue", "small", "bottom right")), "left of"))
    j = judge(img)
    assert score("a red circle left of a blue square", j) == {
        "two_objects": True, "colour_attribution": True, "position": True}
    assert score("a blue circle left of a red square", j)["colour_attribution"] is False
    assert score("a red circle right of a blue square", j)["position"] is False
    assert score("a red circle", j) == {"single_object": False, "colour": False}
    one = judge(render(Scene((Obj("circle", "red", "small", "top left"),))))
    assert score("a small red circle in the top left", one) == {
        "single_object": True, "colour": True, "position": True, "size": True}
    assert score("a large green circle in the center", one) == {
        "single_object": True, "colour": False, "position": False, "size": False}


def test_bad_input_gives_clear_errors():
    with pytest.raises(ValueError, match="expected one image"):
        judge(np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError, match="square image"):
        judge(np.zeros((64, 32, 3), np.uint8))
    with pytest.raises(ValueError, match="one prompt per image"):
        shapes_eval(np.zeros((2, 64, 64, 3), np.uint8), ["a red circle"])
    with pytest.raises(ValueError, match="unknown word"):
        shapes_eval(np.zeros((1, 64, 64, 3), np.uint8), ["a purpel circle"])


def test_the_judge_agrees_with_eye_labels_of_generated_images():
    """tests/fixtures/judge_audit: generated images labelled by eye (benchmarks/judge_audit.py).
    The floors sit just under what the judge measured on the 120 early mini-DALL-E images
    (count 0.98, colour 0.97, shape 0.69) and on the 80 of chapter 6's current model (count
    0.99, colour 1.0, shape 0.93): a change to the judge that reads generated images worse
    fails here. (On VQGAN+CLIP's speckled images it counts fragments the eye does not: count
    agreement 0.22 there, recorded by the benchmark, not asserted.)"""
    from judge_audit import agreement, load, parse_seen

    from minit2i.shapes import COLORS, SHAPES

    images, records = load()
    assert len(images) >= 230 and {r["system"] for r in records} == {"dalle", "dalle_vqgan",
                                                                      "vqgan_clip"}
    for r in records:                                    # every label names real attributes
        for colour, shape in parse_seen(r["seen"]):
            assert colour in (None, *COLORS) and shape in (None, *SHAPES), r
    groups = agreement(images, records)
    result = groups["dalle"]
    assert result["count"] >= 0.95 and result["colour"] >= 0.93 and result["shape"] >= 0.62, result
    result = groups["dalle_vqgan"]
    assert result["count"] >= 0.95 and result["colour"] >= 0.95 and result["shape"] >= 0.88, result
    assert parse_seen("nothing") == []
    with pytest.raises(ValueError, match="not enough values|too many values"):
        parse_seen("red")
