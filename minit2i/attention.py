r"""Scaled dot-product attention and multi-head attention, from scratch.

Every query asks every key "how well do we match?", and gets back a weighted average of the values:

$$
\mathrm{Attention}(Q, K, V) = \mathrm{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_k}} + M\right) V
$$

with $Q \in \mathbb{R}^{T \times d_k}$, $K \in \mathbb{R}^{S \times d_k}$,
$V \in \mathbb{R}^{S \times d_v}$ and a mask $M$ that is $0$ where a query may look and $-\infty$
where it may not. Multi-head attention runs $h$ of these side by side on learned projections and
concatenates the results
(Vaswani et al., 2017, "Attention is all you need").

``scaled_dot_product_attention`` has exactly the semantics of
``torch.nn.functional.scaled_dot_product_attention``: batch dimensions broadcast, a boolean mask
means True = attend, a float mask is added to the scores, ``is_causal`` lets query ``i`` see keys
``j <= i`` (top-left aligned when T != S), and a query that may see no key at all gets an output of
zeros (as torch >= 2.5 does; older versions gave NaN). See chapter 2, "Attention".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _check_shapes(q, k, v, attn_mask, is_causal) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() < 2:
            raise ValueError(f"expected {name} of shape (..., T, D), got {tuple(t.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k must share their last dimension d_k, got q {tuple(q.shape)} "
                         f"and k {tuple(k.shape)}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v must have the same number of keys S, got k {tuple(k.shape)} "
                         f"and v {tuple(v.shape)}")
    try:
        batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    except RuntimeError:
        raise ValueError(f"batch dimensions of q {tuple(q.shape)}, k {tuple(k.shape)} and "
                         f"v {tuple(v.shape)} do not broadcast") from None
    if attn_mask is None:
        return
    if is_causal:
        raise ValueError("pass either attn_mask or is_causal=True, not both (as in torch); "
                         "combine them yourself with causal_mask(T, S) & attn_mask")
    scores = (*batch, q.shape[-2], k.shape[-2])
    try:
        if attn_mask.dim() < 2 or torch.broadcast_shapes(attn_mask.shape, scores) != scores:
            raise RuntimeError
    except RuntimeError:
        raise ValueError(f"attn_mask of shape {tuple(attn_mask.shape)} does not broadcast to the "
                         f"scores' shape (..., T, S) = {scores}") from None


def causal_mask(T: int, S: int | None = None, device=None) -> torch.Tensor:
    """Boolean (T, S) mask, True where query i may see key j, i.e. j <= i (top-left aligned)."""
    S = T if S is None else S
    return torch.ones(T, S, dtype=torch.bool, device=device).tril()


def attention_weights(q: torch.Tensor, k: torch.Tensor, attn_mask: torch.Tensor | None = None,
                      is_causal: bool = False, scale: float | None = None) -> torch.Tensor:
    """The attention matrix softmax(q kᵀ / √d_k + M), shape (..., T, S); rows sum to 1 (or 0)."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = q @ k.transpose(-2, -1) * scale                      # (..., T, S)
    if is_causal:
        attn_mask = causal_mask(q.shape[-2], k.shape[-2], device=q.device)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            # -inf, not a big negative number: a masked key must get exactly zero weight.
            attn_mask = torch.zeros_like(attn_mask, dtype=scores.dtype).masked_fill(
                ~attn_mask, float("-inf"))
        scores = scores + attn_mask
    # A numerically safe softmax that also survives a row masked everywhere: subtracting the row
    # maximum changes nothing mathematically (so it is detached), but exp can no longer overflow;
    # a row of all -inf has maximum -inf, which we replace by 0 so the row becomes zeros, not NaN.
    m = scores.detach().amax(dim=-1, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    e = torch.exp(scores - m)
    z = e.sum(dim=-1, keepdim=True)
    return e / torch.where(z == 0, torch.ones_like(z), z)


def scaled_dot_product_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                 attn_mask: torch.Tensor | None = None, is_causal: bool = False,
                                 scale: float | None = None) -> torch.Tensor:
    """softmax(q kᵀ / √d_k + M) v for q (..., T, d_k), k (..., S, d_k), v (..., S, d_v).

    Same arguments and results as ``torch.nn.functional.scaled_dot_product_attention`` (without
    dropout): returns (..., T, d_v) with the batch dimensions of q, k and v broadcast together.
    """
    _check_shapes(q, k, v, attn_mask, is_causal)
    return attention_weights(q, k, attn_mask, is_causal, scale) @ v


def _and_masks(mask: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Restrict ``mask`` (bool or additive float) to where the bool mask ``allowed`` is True."""
    if mask.dtype == torch.bool:
        return mask & allowed
    return mask.masked_fill(~allowed, float("-inf"))


class KVCache:
    """Keys and values of the tokens seen so far, for one attention layer (fast sampling).

    When generating one token at a time, the keys and values of earlier tokens never change
    (causal attention), so we keep them instead of recomputing them at every step.
    """

    def __init__(self):
        self.k: torch.Tensor | None = None                        # (B, h, S, d_head)
        self.v: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.k is None else self.k.shape[-2]

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Add the new tokens' keys and values; return all keys and values so far."""
        self.k = k if self.k is None else torch.cat([self.k, k], dim=-2)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=-2)
        return self.k, self.v


class MultiHeadAttention(nn.Module):
    """h attention heads in parallel on learned projections of x (and of ``context`` if cross).

    ``attn_mask`` follows torch: it broadcasts to (B, h, T, S), e.g. (T, S) for all sequences
    or (B, 1, 1, S) for padding; a 3-d mask (B, T, S) is read as one mask per sequence.
    ``fused=True`` calls torch's kernel, ``fused=False`` our ``scaled_dot_product_attention``.
    """

    def __init__(self, dim: int, n_heads: int, cross: bool = False, fused: bool = True,
                 context_dim: int | None = None):
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"dim {dim} must be divisible by n_heads {n_heads}")
        self.dim, self.n_heads, self.cross, self.fused = dim, n_heads, cross, fused
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear((context_dim or dim) if cross else dim, 2 * dim)   # keys and values
        self.out = nn.Linear(dim, dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        return x.view(B, T, self.n_heads, -1).transpose(1, 2)    # (B, h, T, d_head)

    def _project(self, x, context, attn_mask):
        q = self._heads(self.q(x))                                # (B, h, T, d_head)
        k, v = self.kv(x if context is None else context).chunk(2, dim=-1)
        if attn_mask is not None and attn_mask.dim() == 3:
            attn_mask = attn_mask.unsqueeze(1)                    # (B, 1, T, S)
        return q, self._heads(k), self._heads(v), attn_mask      # k, v: (B, h, S, d_head)

    @torch.no_grad()
    def weights(self, x: torch.Tensor, context: torch.Tensor | None = None,
                attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        """The attention matrices (B, h, T, S) this layer uses on x: for looking, not training."""
        q, k, _, attn_mask = self._project(x, context, attn_mask)
        return attention_weights(q, k, attn_mask, is_causal)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None,
                attn_mask: torch.Tensor | None = None, is_causal: bool = False,
                kv_cache: KVCache | None = None) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"expected x of shape (B, T, {self.dim}), got {tuple(x.shape)}")
        if self.cross and context is None:
            raise ValueError("cross-attention needs a context (B, S, D) to attend to")
        if not self.cross and context is not None:
            raise ValueError("this is a self-attention layer; build it with cross=True to pass "
                             "a context")
        if kv_cache is not None and self.cross:
            raise ValueError("a KV cache is for causal self-attention; cross-attention's keys "
                             "and values come from a fixed context")
        B, T, D = x.shape
        q, k, v, attn_mask = self._project(x, context, attn_mask)
        if kv_cache is not None:
            past = len(kv_cache)
            k, v = kv_cache.append(k, v)
            if is_causal and past > 0:
                # New queries sit at positions past..past+T-1: a bottom-right aligned causal mask
                # (one new token may see everything, so it needs no mask at all).
                is_causal = False
                if T > 1:
                    causal = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(past)
                    attn_mask = causal if attn_mask is None else _and_masks(attn_mask, causal)
        if self.fused:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)
        else:
            y = scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)
        y = y.transpose(1, 2).reshape(B, T, D)                    # (B, T, D): heads concatenated
        return self.out(y)
