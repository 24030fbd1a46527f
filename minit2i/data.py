"""The Shapes world as a torch dataset: scenes, their rendered images, captions and tokens.

``ShapesDataset(split, n, seed)`` is ``n`` captioned scenes of one split, the same in every run
and every process; ``tensors()`` renders them all at once for training without a DataLoader.
See the book's introduction, "The Shapes world".
"""

from __future__ import annotations

import numpy as np
import torch

from .shapes import SPLITS, Scene, _check, caption, render, sample_scene, to_float_image
from .text import Tokenizer

_SPLIT_ID = {s: i for i, s in enumerate(SPLITS)}


class ShapesDataset(torch.utils.data.Dataset):
    """``n`` captioned scenes of one split; item i is the same in every process and worker.

    An item is a dict: ``image`` float (3, H, W) in [-1, 1], ``caption`` str, ``tokens`` long
    (max_length,), ``scene`` Scene. ``n_objects`` is 1, 2, or (1, 2) for an even mix.
    """

    def __init__(self, split: str = "train", n: int = 10_000, size: int = 64, seed: int = 0,
                 n_objects: int | tuple[int, ...] = (1, 2), max_length: int | None = None):
        _check("split", split, SPLITS)
        self.split, self.n, self.size, self.seed = split, n, size, seed
        self.n_objects = (n_objects,) if isinstance(n_objects, int) else tuple(n_objects)
        self.tokenizer = Tokenizer()
        self.max_length = max_length or self.tokenizer.max_length

    def __len__(self) -> int:
        return self.n

    def scene_and_caption(self, i: int) -> tuple[Scene, str]:
        if not 0 <= i < self.n:
            raise IndexError(f"index {i} out of range for a dataset of {self.n} items")
        rng = np.random.default_rng([self.seed, _SPLIT_ID[self.split], i])
        k = self.n_objects[rng.integers(len(self.n_objects))]
        scene = sample_scene(rng, k, self.split)
        return scene, caption(scene, rng)

    def __getitem__(self, i: int) -> dict:
        scene, text = self.scene_and_caption(i)
        image = to_float_image(torch.from_numpy(render(scene, self.size)).permute(2, 0, 1))
        return {"image": image, "caption": text,
                "tokens": self.tokenizer.encode(text, self.max_length), "scene": scene}

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """Everything at once: uint8 images (N, 3, H, W), tokens (N, L), captions.

        Pre-rendering into one tensor lets training index batches on the GPU with no
        DataLoader and no host-device traffic in the inner loop.
        """
        images = np.empty((self.n, self.size, self.size, 3), np.uint8)
        tokens = torch.empty(self.n, self.max_length, dtype=torch.long)
        captions = []
        for i in range(self.n):
            scene, text = self.scene_and_caption(i)
            images[i] = render(scene, self.size)
            tokens[i] = self.tokenizer.encode(text, self.max_length)
            captions.append(text)
        return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(), tokens, captions


def collate(items: list[dict]) -> dict:
    """DataLoader collate_fn that keeps captions and scenes as lists."""
    return {"image": torch.stack([it["image"] for it in items]),
            "tokens": torch.stack([it["tokens"] for it in items]),
            "caption": [it["caption"] for it in items],
            "scene": [it["scene"] for it in items]}
