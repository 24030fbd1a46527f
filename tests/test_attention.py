"""Attention from scratch against torch's kernel: values, gradients, masks, shapes, errors."""

import pytest
import torch
import torch.nn.functional as F
from helpers import assert_matches_reference

from minit2i.attention import (
    KVCache,
    MultiHeadAttention,
    attention_weights,
    causal_mask,
    scaled_dot_product_attention,
)

DTYPES = [torch.float32, torch.float64]
# (q batch, k batch, v batch, T, S, d_k, d_v): broadcasting batch dims, T != S, d_v != d_k.
SHAPES = [
    ((), (), (), 5, 5, 8, 8),
    ((2,), (2,), (2,), 3, 7, 4, 6),
    ((2, 3), (1, 3), (2, 1), 6, 4, 8, 5),
    ((3,), (2, 1), (2, 1), 4, 4, 16, 3),
    ((2, 2), (2, 2), (2, 2), 1, 9, 5, 5),
]


def _qkv(shape, dtype, seed=0):
    qb, kb, vb, T, S, dk, dv = shape
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(*qb, T, dk, generator=g, dtype=dtype).requires_grad_()
    k = torch.randn(*kb, S, dk, generator=g, dtype=dtype).requires_grad_()
    v = torch.randn(*vb, S, dv, generator=g, dtype=dtype).requires_grad_()
    return q, k, v


def _keep_first(mask):
    mask[..., 0] = True                                  # no fully masked rows here (see below)
    return mask


def _masks(shape, dtype, seed=0):
    """Every kind of mask for this shape: none, bool (per sequence and shared), float, causal."""
    qb, kb, _, T, S, _, _ = shape
    g = torch.Generator().manual_seed(seed + 1)
    batch = torch.broadcast_shapes(qb, kb)
    keep = _keep_first(torch.rand(*batch, T, S, generator=g) > 0.3)
    return {
        "none": dict(),
        "bool": dict(attn_mask=keep),
        "bool_shared": dict(attn_mask=_keep_first(torch.rand(T, S, generator=g) > 0.5)),
        "padding": dict(attn_mask=torch.arange(S) < max(1, S - 2)),    # (S,) → needs (1, S)
        "float": dict(attn_mask=torch.randn(T, S, generator=g, dtype=dtype)),
        "causal": dict(is_causal=True),
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", ["none", "bool", "bool_shared", "padding", "float", "causal"])
def test_matches_torch(shape, dtype, kind):
    q, k, v = _qkv(shape, dtype)
    kw = _masks(shape, dtype)[kind]
    if kind == "padding":
        kw = dict(attn_mask=kw["attn_mask"].unsqueeze(0))          # (1, S): same for every query

    def ours(q, k, v):
        return scaled_dot_product_attention(q, k, v, **kw)

    def reference(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, **kw)

    assert_matches_reference(ours, reference, q, k, v)


@pytest.mark.parametrize("dtype", DTYPES)
def test_float_mask_gradient(dtype):
    q, k, v = _qkv(SHAPES[2], dtype)
    bias = torch.randn(6, 4, dtype=dtype, requires_grad=True)
    assert_matches_reference(lambda q, k, v, m: scaled_dot_product_attention(q, k, v, m),
                             lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, m),
                             q, k, v, bias)


@pytest.mark.parametrize("T,S", [(3, 7), (7, 3), (1, 4), (4, 1)])
def test_causal_is_top_left_aligned(T, S):
    q, k, v = _qkv(((2,), (2,), (2,), T, S, 4, 4), torch.float64)
    ours = scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(ours, F.scaled_dot_product_attention(q, k, v, is_causal=True))
    # and equals an explicit lower-triangular mask starting at the top-left corner
    explicit = F.scaled_dot_product_attention(q, k, v, attn_mask=torch.ones(T, S).tril().bool())
    torch.testing.assert_close(ours, explicit)
    assert causal_mask(T, S).sum(-1).tolist() == [min(i + 1, S) for i in range(T)]


@pytest.mark.parametrize("dtype", DTYPES)
def test_fully_masked_row_gives_zeros_like_torch(dtype):
    q, k, v = _qkv(((2,), (2,), (2,), 4, 5, 8, 3), dtype)
    keep = torch.rand(4, 5) > 0.5
    keep[0] = True
    keep[2] = False                                      # query 2 may look at nothing
    ours = scaled_dot_product_attention(q, k, v, attn_mask=keep)
    assert torch.all(ours[:, 2] == 0) and torch.isfinite(ours).all()
    assert_matches_reference(lambda q, k, v: scaled_dot_product_attention(q, k, v, keep),
                             lambda q, k, v: F.scaled_dot_product_attention(q, k, v, keep),
                             q, k, v)
    minus_inf = torch.zeros(4, 5, dtype=dtype).masked_fill(~keep, float("-inf"))
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, minus_inf), ours)


def test_weights_are_a_distribution_and_respect_the_mask():
    q, k, _ = _qkv(((3,), (3,), (3,), 5, 6, 4, 4), torch.float64)
    keep = torch.rand(3, 5, 6) > 0.4
    keep[..., 1] = True
    w = attention_weights(q, k, attn_mask=keep)
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 5, dtype=torch.float64))
    assert torch.all(w[~keep] == 0)
    assert torch.all(w[keep] > 0)


def test_scale_argument_matches_torch():
    q, k, v = _qkv(SHAPES[1], torch.float64)
    torch.testing.assert_close(scaled_dot_product_attention(q, k, v, scale=0.3),
                               F.scaled_dot_product_attention(q, k, v, scale=0.3))


def test_large_scores_do_not_overflow():
    q, k, v = _qkv(SHAPES[0], torch.float32)
    q = q.detach() * 1e4
    out = scaled_dot_product_attention(q, k, v)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v))


@pytest.mark.parametrize("args,kw,match", [
    (((2, 4, 8), (2, 5, 7), (2, 5, 6)), {}, "last dimension d_k"),
    (((2, 4, 8), (2, 5, 8), (2, 6, 6)), {}, "same number of keys"),
    (((8,), (5, 8), (5, 6)), {}, r"expected q of shape \(\.\.\., T, D\)"),
    (((2, 4, 8), (3, 5, 8), (3, 5, 6)), {}, "do not broadcast"),
    (((2, 4, 8), (2, 5, 8), (2, 5, 6)), dict(attn_mask=torch.ones(4, 4, dtype=torch.bool)),
     "does not broadcast"),
    (((2, 4, 8), (2, 5, 8), (2, 5, 6)), dict(attn_mask=torch.ones(5, dtype=torch.bool)),
     "does not broadcast"),
    (((2, 4, 8), (2, 5, 8), (2, 5, 6)),
     dict(attn_mask=torch.ones(4, 5, dtype=torch.bool), is_causal=True), "not both"),
])
def test_bad_shapes_give_clear_errors(args, kw, match):
    q, k, v = (torch.randn(s) for s in args)
    with pytest.raises(ValueError, match=match):
        scaled_dot_product_attention(q, k, v, **kw)


def _pair(cross=False, context_dim=None, dtype=torch.float64):
    torch.manual_seed(0)
    fused = MultiHeadAttention(16, 4, cross=cross, context_dim=context_dim, fused=True).to(dtype)
    ours = MultiHeadAttention(16, 4, cross=cross, context_dim=context_dim, fused=False).to(dtype)
    ours.load_state_dict(fused.state_dict())
    return fused, ours


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["none", "causal", "padding", "per_sequence"])
def test_mha_fused_equals_from_scratch(dtype, kind):
    fused, ours = _pair(dtype=dtype)
    x = torch.randn(3, 6, 16, dtype=dtype, requires_grad=True)
    kw = {"none": {}, "causal": dict(is_causal=True),
          "padding": dict(attn_mask=(torch.arange(6) < torch.tensor([6, 4, 2])[:, None])
                          .view(3, 1, 1, 6)),
          "per_sequence": dict(attn_mask=torch.rand(3, 6, 6) > 0.2)}[kind]
    if kind == "per_sequence":
        kw["attn_mask"][..., 0] = True
    assert_matches_reference(lambda x: ours(x, **kw), lambda x: fused(x, **kw), x)
    # gradients of the weights agree too
    gy = torch.randn(3, 6, 16, dtype=dtype)
    (ours(x, **kw) * gy).sum().backward()
    (fused(x, **kw) * gy).sum().backward()
    for (name, p), q in zip(ours.named_parameters(), fused.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, msg=f"gradient of {name}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_attention_fused_equals_from_scratch(dtype):
    fused, ours = _pair(cross=True, context_dim=10, dtype=dtype)
    x = torch.randn(2, 5, 16, dtype=dtype, requires_grad=True)
    c = torch.randn(2, 7, 10, dtype=dtype, requires_grad=True)
    mask = (torch.arange(7) < torch.tensor([7, 3])[:, None]).view(2, 1, 1, 7)
    assert_matches_reference(lambda x, c: ours(x, c, attn_mask=mask),
                             lambda x, c: fused(x, c, attn_mask=mask), x, c)
    assert ours(x, c).shape == (2, 5, 16)


def test_mha_errors():
    mha = MultiHeadAttention(16, 4)
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 4)
    with pytest.raises(ValueError, match=r"expected x of shape \(B, T, 16\)"):
        mha(torch.randn(2, 5, 12))
    with pytest.raises(ValueError, match="cross=True"):
        mha(torch.randn(2, 5, 16), context=torch.randn(2, 3, 16))
    with pytest.raises(ValueError, match="needs a context"):
        MultiHeadAttention(16, 4, cross=True)(torch.randn(2, 5, 16))


@pytest.mark.parametrize("fused", [True, False])
def test_kv_cache_equals_full_recomputation(fused):
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4, fused=fused).double()
    x = torch.randn(2, 7, 16, dtype=torch.float64)
    full = mha(x, is_causal=True)
    cache = KVCache()
    steps = [mha(x[:, :3], is_causal=True, kv_cache=cache)]          # a prompt of 3 tokens ...
    steps += [mha(x[:, t:t + 1], is_causal=True, kv_cache=cache) for t in range(3, 7)]  # ... +1
    torch.testing.assert_close(torch.cat(steps, dim=1), full)
    assert len(cache) == 7
    # a chunk of several new tokens after a prompt needs a bottom-right aligned causal mask
    cache = KVCache()
    parts = [mha(x[:, :2], is_causal=True, kv_cache=cache), mha(x[:, 2:], is_causal=True,
                                                                 kv_cache=cache)]
    torch.testing.assert_close(torch.cat(parts, dim=1), full)
