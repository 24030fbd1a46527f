"""Figures the chapters share: image grids with captions, and training curves.

Plotting lives here (and in the notebooks), never in model code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt

from .shapes import as_uint8


def image_grid(images, captions: Sequence[str] | None = None, ncols: int = 8,
               title: str | None = None, scale: float = 1.3, wrap: int = 18):
    """A figure of images in a grid, each with an optional (wrapped) caption."""
    imgs = as_uint8(images)
    n = len(imgs)
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    wrapped = [_wrap(c, wrap) for c in captions] if captions is not None else None
    lines = max((w.count("\n") + 1 for w in wrapped), default=0) if wrapped else 0
    extra = 0.13 * lines                                  # room above each image for its caption
    # constrained layout keeps every caption clear of the row above it (tight_layout let a
    # second row's captions run into the first row's images)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, layout="constrained",
                             figsize=(scale * ncols, (scale + extra) * nrows + 0.4 * bool(title)))
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(imgs[k], interpolation="nearest")
            if wrapped is not None:
                ax.set_title(wrapped[k], fontsize=6.5)
    if title:
        fig.suptitle(title)
    return fig


def _wrap(text: str, width: int) -> str:
    lines, line = [], ""
    for w in text.split():
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return "\n".join(lines + [line])


def plot_history(history, keys: Sequence[str] | None = None, title: str = "training",
                 logy: bool = False, ax=None):
    """Plot a train.History: one line per loss against the step."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.5))
    for k in keys or history.values:
        ax.plot(history.steps, history.values[k], label=k)
    ax.set(xlabel="step", ylabel="loss", title=title)
    if logy:
        ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    return ax
