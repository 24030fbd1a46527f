r"""PixelCNN: an image drawn one pixel at a time (van den Oord et al., 2016). See chapter 6.

Before images were turned into tokens, autoregressive models wrote pixels. Read row by row, an
image's $P$ pixels $x_1 \dots x_P$ have the exact factorisation

$$ p(x \mid y) = \prod_{i=1}^{P} p(x_i \mid x_{<i}, y), $$

and a PixelCNN computes every factor at once with *masked* convolutions: the kernel is zeroed
at and after its centre (mask "A", first layer: a pixel may not see itself) or after it (mask
"B", later layers: it may see what the layer below computed at its own position), so output $i$
depends only on inputs before $i$. Here a pixel is one of the Shapes world's palette colours
(black and the eight colours: a 9-way choice), and the condition $y$ is the caption's colour and
shape, added as a learned bias to every layer. Training is one parallel pass; drawing needs $P$
passes, one per pixel, which is why chapter 6 writes 64 tokens instead of 4,096 pixels.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import settings
from .data import ShapesDataset
from .shapes import BACKGROUND, COLORS, SHAPES
from .train import OptimizerStep, batches_from, fit

PALETTE = torch.tensor([BACKGROUND, *COLORS.values()], dtype=torch.float32)   # (9, 3) 0..255


def palette_indices(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (B, 3, H, W) -> the nearest palette colour of each pixel (B, H, W)."""
    x = images.float().permute(0, 2, 3, 1)                                     # (B, H, W, 3)
    return ((x[..., None, :] - PALETTE) ** 2).sum(-1).argmin(-1)


def palette_images(indices: torch.Tensor) -> torch.Tensor:
    """Palette indices (B, H, W) -> uint8 images (B, 3, H, W)."""
    return PALETTE.to(indices.device)[indices].permute(0, 3, 1, 2).round().to(torch.uint8)


def causal_kernel_mask(k: int, kind: str) -> torch.Tensor:
    """(k, k) mask of a masked convolution: 1 above the centre row and left of the centre, the
    centre itself only for kind "B"."""
    if kind not in ("A", "B"):
        raise ValueError(f"mask kind must be 'A' (first layer) or 'B' (later layers), got {kind!r}")
    m = torch.zeros(k, k)
    m[: k // 2] = 1                                       # rows above
    m[k // 2, : k // 2 + (kind == "B")] = 1               # left of the centre (and it, for B)
    return m


class MaskedConv2d(nn.Conv2d):
    """A same-padded convolution whose kernel only reads pixels before the output's position."""

    def __init__(self, c_in: int, c_out: int, k: int, kind: str):
        super().__init__(c_in, c_out, k, padding=k // 2)
        self.register_buffer("mask", causal_kernel_mask(k, kind)[None, None], persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


@settings
class PixelCNNConfig:
    image_size: int = 32
    channels: int = 48
    layers: int = 5          # masked 3x3 layers after the 7x7 first one
    n_colours: int = len(PALETTE)


class PixelCNN(nn.Module):
    """Logits (B, n_colours, H, W) of each pixel's palette colour, given the pixels before it and
    the condition (colour index, shape index)."""

    def __init__(self, config: PixelCNNConfig):
        super().__init__()
        c = self.config = config
        self.first = MaskedConv2d(c.n_colours, c.channels, 7, "A")
        self.body = nn.ModuleList(MaskedConv2d(c.channels, c.channels, 3, "B")
                                  for _ in range(c.layers))
        self.cond = nn.Embedding(len(COLORS) * len(SHAPES), c.channels * (c.layers + 1))
        self.out = nn.Conv2d(c.channels, c.n_colours, 1)     # 1x1: reads only its own position

    def forward(self, pixels: torch.Tensor, colour: torch.Tensor, shape: torch.Tensor
                ) -> torch.Tensor:
        c = self.config
        if pixels.dim() != 3 or pixels.shape[1:] != (c.image_size, c.image_size):
            raise ValueError(f"expected palette indices (B, {c.image_size}, {c.image_size}), "
                             f"got {tuple(pixels.shape)}")
        x = F.one_hot(pixels, c.n_colours).permute(0, 3, 1, 2).float()        # (B, C, H, W)
        bias = self.cond(colour * len(SHAPES) + shape).view(len(x), c.layers + 1, -1, 1, 1)
        h = F.relu(self.first(x) + bias[:, 0])
        for i, layer in enumerate(self.body):
            h = h + F.relu(layer(h) + bias[:, i + 1])                  # residual, still causal
        return self.out(h)

    def loss(self, pixels, colour, shape) -> torch.Tensor:
        """Mean negative log-likelihood per pixel, in nats."""
        return F.cross_entropy(self(pixels, colour, shape), pixels)

    @torch.no_grad()
    def sample(self, colour: torch.Tensor, shape: torch.Tensor, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Palette indices (B, H, W), drawn pixel by pixel (H * W forward passes)."""
        s = self.config.image_size
        pixels = torch.zeros(len(colour), s, s, dtype=torch.long, device=colour.device)
        for i in range(s * s):
            r, q = divmod(i, s)
            logits = self(pixels, colour, shape)[:, :, r, q] / max(temperature, 1e-6)
            probs = torch.softmax(logits.float(), -1)
            pixels[:, r, q] = torch.multinomial(probs.cpu(), 1, generator=generator)[:, 0].to(
                pixels.device)
        return pixels


def condition_of(scenes) -> tuple[torch.Tensor, torch.Tensor]:
    """The (colour index, shape index) of one-object scenes, as two long tensors."""
    colours = list(COLORS)
    return (torch.tensor([colours.index(s.objects[0].color) for s in scenes]),
            torch.tensor([SHAPES.index(s.objects[0].shape) for s in scenes]))


@settings
class PixelCNNTrain:
    steps: int = 300
    batch_size: int = 32
    n_train: int = 2048          # one-object training scenes, rendered at the model's size
    lr: float = 3e-3
    seed: int = 0


def one_object_pixels(split: str, n: int, size: int, seed: int = 0
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Palette indices (n, size, size) of n one-object scenes, and their colour and shape."""
    ds = ShapesDataset(split, n, size=size, seed=seed, n_objects=1)
    images, _, _ = ds.tensors()
    return (palette_indices(images),
            *condition_of([ds.scene_and_caption(i)[0] for i in range(n)]))


def make_pixelcnn_step(model: PixelCNN, train: PixelCNNTrain, device):
    """One Adam step on a batch ``(pixels, colour, shape)``, for ``minit2i.train.fit``."""
    update = OptimizerStep(model.parameters(), train.lr, device=device, optimizer="adam",
                           clip=None)

    def step(batch, i):
        model.train()
        loss = model.loss(*batch)
        update.update(loss)
        return {"loss": loss.detach()}

    return step


def train_pixelcnn(model: PixelCNN, train: PixelCNNTrain, device="cpu") -> dict:
    """Train on ``n_train`` one-object scenes; the loss (nats per pixel) and the time taken."""
    data = one_object_pixels("train", train.n_train, model.config.image_size, train.seed)
    batches = batches_from(*data, batch_size=train.batch_size, device=device, seed=train.seed)
    history = fit(make_pixelcnn_step(model, train, device), batches, train.steps,
                  log_every=max(1, train.steps // 20), desc="pixelcnn")
    model.eval()
    return {"steps": history.steps, "loss": history["loss"], "seconds": history.seconds}


def receptive_field(model: PixelCNN, position: tuple[int, int]) -> np.ndarray:
    """Which input pixels (H, W) the output at ``position`` depends on, by its gradient."""
    s = model.config.image_size
    x = torch.rand(1, model.config.n_colours, s, s, generator=torch.Generator().manual_seed(0))
    x.requires_grad_(True)
    h = F.relu(model.first(x))
    for layer in model.body:
        h = h + F.relu(layer(h))
    model.out(h)[0, :, position[0], position[1]].sum().backward()
    return (x.grad[0].abs().sum(0) > 0).numpy()
