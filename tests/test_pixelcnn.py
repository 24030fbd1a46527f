"""PixelCNN: masks, causality, palette round trip, training and drawing."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import assert_matches_reference

from minit2i.data import ShapesDataset
from minit2i.pixelcnn import (
    MaskedConv2d,
    PixelCNN,
    PixelCNNConfig,
    causal_kernel_mask,
    condition_of,
    palette_images,
    palette_indices,
    receptive_field,
)


def test_kernel_masks():
    a, b = causal_kernel_mask(3, "A"), causal_kernel_mask(3, "B")
    assert a.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert b.tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    with pytest.raises(ValueError, match="'A' \\(first layer\\) or 'B'"):
        causal_kernel_mask(3, "C")


@pytest.mark.parametrize("kind", ["A", "B"])
def test_masked_conv_matches_a_conv_with_a_masked_kernel(kind):
    torch.manual_seed(0)
    conv = MaskedConv2d(3, 4, 5, kind).double()
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    w = conv.weight.detach().clone().requires_grad_(True)

    def reference(x, w):
        return F.conv2d(x, w * causal_kernel_mask(5, kind).double(), conv.bias, padding=2)

    def ours(x, w):
        with torch.no_grad():
            conv.weight.copy_(w)
        conv.weight.grad = None
        out = conv(x)
        return out + 0 * w.sum()      # (the weight's gradient is compared through the reference)

    assert_matches_reference(lambda x: ours(x, w), lambda x: reference(x, w), x)


def test_each_output_reads_only_the_pixels_before_it():
    torch.manual_seed(0)
    model = PixelCNN(PixelCNNConfig(image_size=8, channels=8, layers=3))
    for r, c in [(0, 0), (3, 4), (7, 7)]:
        field = receptive_field(model, (r, c))
        before = np.zeros((8, 8), bool)
        before[:r] = True
        before[r, :c] = True
        assert not (field & ~before).any(), (r, c)          # nothing at or after the pixel
        if (r, c) != (0, 0):
            assert field[r, c - 1] if c else field[r - 1, c]    # its neighbour before it


def test_palette_round_trip():
    images, _, _ = ShapesDataset("val", 4, size=32, n_objects=1).tensors()
    idx = palette_indices(images)
    assert idx.shape == (4, 32, 32) and idx.max() < 9
    back = palette_images(idx)
    assert (back.int() - images.int()).abs().float().mean() < 6      # only anti-aliased edges


def test_overfits_a_batch_and_draws_the_right_colour():
    ds = ShapesDataset("train", 8, size=16, n_objects=1, seed=1)
    images, _, _ = ds.tensors()
    pixels = palette_indices(images)
    colour, shape = condition_of([ds.scene_and_caption(i)[0] for i in range(8)])
    torch.manual_seed(0)
    model = PixelCNN(PixelCNNConfig(image_size=16, channels=32, layers=4))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = model.loss(pixels, colour, shape).item()
    for _ in range(150):
        loss = model.loss(pixels, colour, shape)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first / 5
    drawn = model.eval().sample(colour[:4], shape[:4], generator=torch.Generator().manual_seed(0))
    assert drawn.shape == (4, 16, 16)
    for k in range(4):                  # the object's pixels are mostly of the caption's colour
        counts = torch.bincount(drawn[k].flatten(), minlength=9)[1:]
        assert counts.sum() > 0 and counts.argmax() == colour[k], counts
    with pytest.raises(ValueError, match=r"\(B, 16, 16\)"):
        model(pixels[:, :8], colour, shape)


def test_train_pixelcnn_follows_its_recipe_and_lowers_the_loss():
    from minit2i.pixelcnn import PixelCNNTrain, one_object_pixels, train_pixelcnn

    pixels, colour, shape = one_object_pixels("train", 16, 16, seed=3)
    assert pixels.shape == (16, 16, 16) and colour.shape == shape.shape == (16,)
    assert pixels.max() < 9 and colour.max() < 8 and shape.max() < 5
    torch.manual_seed(0)
    model = PixelCNN(PixelCNNConfig(image_size=16, channels=16, layers=2))
    stats = train_pixelcnn(model, PixelCNNTrain(steps=40, batch_size=8, n_train=32))
    assert stats["steps"][-1] == 40 and len(stats["loss"]) == len(stats["steps"])
    assert stats["loss"][-1] < stats["loss"][0] / 2 and stats["seconds"] > 0
    assert not model.training
    with pytest.raises(ValueError, match="batch_size 64 is larger than the data"):
        train_pixelcnn(model, PixelCNNTrain(steps=1, batch_size=64, n_train=32))
