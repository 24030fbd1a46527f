r"""A pre-LN transformer: attention and an MLP, each on a residual branch after a LayerNorm.

One block computes

$$
\begin{aligned}
x &\leftarrow x + \mathrm{MHA}(\mathrm{LN}(x)), \\
x &\leftarrow x + \mathrm{MHA}(\mathrm{LN}(x), c) \quad \text{(optional cross-attention)}, \\
x &\leftarrow x + W_2\,\mathrm{GELU}(W_1\,\mathrm{LN}(x))
\end{aligned}
$$

(Vaswani et al., 2017, with the LayerNorm moved in front of each branch as in GPT-2, which trains
without warm-up tricks). ``Transformer`` stacks blocks and ends with a LayerNorm; chapter 4's text
encoder and chapter 6's mini DALL-E are built from it. See chapter 2, "Attention".
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import KVCache, MultiHeadAttention


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images (B, C, H, W) into a sequence of flattened patches (B, H/p * W/p, C * p * p).

    Patches are read row by row (left to right, top to bottom), like words on a page.
    """
    B, C, H, W = images.shape
    p = patch_size
    if H % p or W % p:
        raise ValueError(f"image size {H}x{W} is not a multiple of the patch size {p}")
    x = images.reshape(B, C, H // p, p, W // p, p)                 # (B, C, h, p, w, p)
    x = x.permute(0, 2, 4, 1, 3, 5)                               # (B, h, w, C, p, p)
    return x.reshape(B, (H // p) * (W // p), C * p * p)          # (B, T, C p p)


class MLP(nn.Module):
    """Position-wise feed-forward net: Linear -> GELU -> Linear, widening by ``mlp_ratio``."""

    def __init__(self, dim: int, mlp_ratio: float = 4.0, dropout: float = 0.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim),
                                 nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Block(nn.Module):
    """One pre-LN transformer block: self-attention, optional cross-attention, MLP."""

    def __init__(self, dim: int, n_heads: int, mlp_ratio: float = 4.0, dropout: float = 0.0,
                 cross: bool = False, fused: bool = True, context_dim: int | None = None):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, n_heads, fused=fused)
        self.ln_cross = nn.LayerNorm(dim) if cross else None
        self.cross_attn = (MultiHeadAttention(dim, n_heads, cross=True, fused=fused,
                                              context_dim=context_dim) if cross else None)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_ratio, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None,
                is_causal: bool = False, context: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None,
                kv_cache: KVCache | None = None) -> torch.Tensor:
        if self.cross_attn is not None and context is None:
            raise ValueError("this block has cross-attention: pass context (B, S, D)")
        if self.cross_attn is None and context is not None:
            raise ValueError("context given to a block built without cross-attention "
                             "(use cross=True)")
        # x: (B, T, D). Each branch reads a normalised copy and adds its answer to the residual
        # stream, so the identity path from input to output stays untouched.
        x = x + self.drop(self.attn(self.ln1(x), attn_mask=attn_mask, is_causal=is_causal,
                                    kv_cache=kv_cache))
        if self.cross_attn is not None:
            x = x + self.drop(self.cross_attn(self.ln_cross(x), context=context,
                                              attn_mask=context_mask))
        return x + self.mlp(self.ln2(x))


class Transformer(nn.Module):
    """``depth`` Blocks and a final LayerNorm; input and output (B, T, dim)."""

    def __init__(self, dim: int, depth: int, n_heads: int, mlp_ratio: float = 4.0,
                 dropout: float = 0.0, cross: bool = False, fused: bool = True,
                 context_dim: int | None = None):
        super().__init__()
        self.blocks = nn.ModuleList(
            Block(dim, n_heads, mlp_ratio, dropout, cross, fused, context_dim)
            for _ in range(depth))
        self.ln_f = nn.LayerNorm(dim)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        # Small normal weights (GPT-2's 0.02) keep the residual stream near unit scale at the start.
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)

    def new_cache(self) -> list[KVCache]:
        """One empty KV cache per block, for incremental decoding (chapter 6)."""
        return [KVCache() for _ in self.blocks]

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None,
                is_causal: bool = False, context: torch.Tensor | None = None,
                context_mask: torch.Tensor | None = None,
                kv_cache: list[KVCache] | None = None) -> torch.Tensor:
        for i, block in enumerate(self.blocks):
            x = block(x, attn_mask, is_causal, context, context_mask,
                      None if kv_cache is None else kv_cache[i])
        return self.ln_f(x)
