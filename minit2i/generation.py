"""Text to image with the book's two systems, behind one function.

    images = generate(["a large red circle in the top left"], method="dalle")
    images.shape, images.dtype        # (1, 64, 64, 3), uint8

``method="dalle"`` samples image tokens from chapter 6's transformer and decodes them with the
VQGAN; ``method="vqgan_clip"`` optimises a VQGAN latent until chapter 4's CLIP agrees with the
prompt (chapter 7). Both train their models on first use (or load them from the cache, see
``minit2i.zoo``). Prompts are checked against the Shapes world with ``shapes.parse`` before any
model is loaded, so a prompt the models could never have learned fails at once, with a message
naming the problem. See chapter 8, "DALL-E and VQGAN+CLIP compared".
"""

from __future__ import annotations

import math

import numpy as np

from .shapes import check_prompts

METHODS = ("dalle", "vqgan_clip")


def check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    return method


def generate(prompts: str | list[str], method: str = "dalle", seed: int = 0,
             n_per_prompt: int = 1) -> np.ndarray:
    """Images for the prompts: np.uint8 (N, H, W, 3), N = len(prompts) * n_per_prompt.

    Images come grouped by prompt: the n_per_prompt images of prompt 0 first, and so on.
    The same seed gives the same images.
    """
    prompts = check_prompts(prompts)
    check_method(method)
    if not isinstance(n_per_prompt, int) or n_per_prompt < 1:
        raise ValueError(f"n_per_prompt must be a positive integer, got {n_per_prompt!r}")
    if method == "dalle":
        from .dalle import generate_images
        images = generate_images(prompts, n_per_prompt=n_per_prompt, seed=seed)
    else:
        from .vqgan_clip import generate_images
        # One optimisation per image: repeat each prompt; the seed sets every start point.
        images = generate_images([p for p in prompts for _ in range(n_per_prompt)], seed=seed)
    images = np.asarray(images)
    expected = len(prompts) * n_per_prompt
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[0] != expected \
            or images.shape[-1] != 3:
        raise RuntimeError(f"{method}.generate_images returned {images.dtype} {images.shape}; "
                           f"expected uint8 ({expected}, H, W, 3)")
    return images


def tile(images: np.ndarray, ncols: int | None = None, gap: int = 2) -> np.ndarray:
    """Lay images (N, H, W, 3) out in a grid with ``gap`` black pixels between them."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected images of shape (N, H, W, 3), got {images.shape}")
    n, h, w, _ = images.shape
    ncols = ncols or math.ceil(math.sqrt(n))
    nrows = math.ceil(n / ncols)
    out = np.zeros((nrows * h + (nrows - 1) * gap, ncols * w + (ncols - 1) * gap, 3),
                   images.dtype)
    for k in range(n):
        r, c = divmod(k, ncols)
        out[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = images[k]
    return out
