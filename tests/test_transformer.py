"""Transformer block and stack: shapes, fused == from scratch, causality, cross-attention."""

import pytest
import torch
from helpers import assert_matches_reference

from minit2i.transformer import Block, Transformer, patchify


def _twins(cls, *args, dtype=torch.float64, **kw):
    torch.manual_seed(0)
    fused = cls(*args, fused=True, **kw).to(dtype)
    ours = cls(*args, fused=False, **kw).to(dtype)
    ours.load_state_dict(fused.state_dict())
    return fused, ours


@pytest.mark.parametrize("cross", [False, True])
def test_block_shapes(cross):
    block = Block(32, 4, cross=cross)
    x, c = torch.randn(2, 9, 32), torch.randn(2, 5, 32)
    y = block(x, is_causal=True, context=c if cross else None)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


def test_transformer_shapes_and_final_layernorm():
    model = Transformer(24, depth=3, n_heads=3)
    assert len(model.blocks) == 3
    y = model(torch.randn(4, 11, 24))
    assert y.shape == (4, 11, 24)
    # the final LayerNorm (initialised to the identity affine map) normalises every token
    torch.testing.assert_close(y.mean(-1), torch.zeros(4, 11), atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("cross", [False, True])
def test_fused_equals_from_scratch(dtype, cross):
    fused, ours = _twins(Transformer, 16, 2, 4, cross=cross, dtype=dtype)
    x = torch.randn(2, 6, 16, dtype=dtype, requires_grad=True)
    c = torch.randn(2, 4, 16, dtype=dtype, requires_grad=True)
    cmask = torch.tensor([[True] * 4, [True, True, False, False]]).view(2, 1, 1, 4)
    kw = dict(is_causal=True)
    if cross:
        assert_matches_reference(lambda x, c: ours(x, context=c, context_mask=cmask, **kw),
                                 lambda x, c: fused(x, context=c, context_mask=cmask, **kw), x, c)
    else:
        assert_matches_reference(lambda x: ours(x, **kw), lambda x: fused(x, **kw), x)


@pytest.mark.parametrize("fused", [True, False])
def test_causal_future_tokens_do_not_change_the_past(fused):
    torch.manual_seed(0)
    model = Transformer(16, 2, 2, fused=fused).double().eval()
    x = torch.randn(3, 8, 16, dtype=torch.float64)
    x2 = x.clone()
    x2[:, 5:] = torch.randn(3, 3, 16, dtype=torch.float64)              # change the future
    y, y2 = model(x, is_causal=True), model(x2, is_causal=True)
    torch.testing.assert_close(y[:, :5], y2[:, :5])
    assert (y[:, 5:] - y2[:, 5:]).abs().max() > 1e-3                   # the future did change
    # without the causal mask the past does see the future
    assert (model(x)[:, :5] - model(x2)[:, :5]).abs().max() > 1e-3


def test_padding_mask_hides_padded_tokens():
    torch.manual_seed(0)
    model = Transformer(16, 2, 2).double().eval()
    x = torch.randn(1, 6, 16, dtype=torch.float64)
    keep = (torch.arange(6) < 4).view(1, 1, 1, 6)                          # last two are padding
    x2 = x.clone()
    x2[:, 4:] = 5.0
    torch.testing.assert_close(model(x, attn_mask=keep)[:, :4], model(x2, attn_mask=keep)[:, :4])


def test_cross_attention_reads_the_context():
    torch.manual_seed(0)
    model = Transformer(16, 2, 4, cross=True, context_dim=8).double().eval()
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    c = torch.randn(2, 3, 8, dtype=torch.float64)
    y = model(x, context=c)
    assert y.shape == (2, 5, 16)
    assert (model(x, context=c + 1.0) - y).abs().max() > 1e-3
    with pytest.raises(ValueError, match="pass context"):
        model(x)
    with pytest.raises(ValueError, match="cross=True"):
        Transformer(16, 1, 4)(x, context=torch.randn(2, 3, 16))


def test_kv_cache_stack_equals_full_recomputation():
    torch.manual_seed(0)
    model = Transformer(16, 3, 4).double().eval()
    x = torch.randn(2, 9, 16, dtype=torch.float64)
    cache = model.new_cache()
    steps = [model(x[:, :4], is_causal=True, kv_cache=cache)]
    steps += [model(x[:, t:t + 1], is_causal=True, kv_cache=cache) for t in range(4, 9)]
    torch.testing.assert_close(torch.cat(steps, 1), model(x, is_causal=True))


def test_overfits_a_tiny_batch():
    """A 2-layer causal transformer memorises next-token prediction on 4 random sequences."""
    torch.manual_seed(0)
    vocab, T = 11, 10
    seqs = torch.randint(0, vocab, (4, T + 1))
    emb, pos = torch.nn.Embedding(vocab, 32), torch.nn.Parameter(torch.zeros(1, T, 32))
    model, head = Transformer(32, 2, 4), torch.nn.Linear(32, vocab)
    params = [*emb.parameters(), pos, *model.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=3e-3)
    for _ in range(300):
        logits = head(model(emb(seqs[:, :-1]) + pos, is_causal=True))
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), seqs[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05, loss.item()
    assert (logits.argmax(-1) == seqs[:, 1:]).all()


def test_dropout_only_in_training():
    torch.manual_seed(0)
    model = Transformer(16, 2, 4, dropout=0.5)
    x = torch.randn(2, 5, 16)
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.train()
    assert (model(x) - model(x)).abs().max() > 0


def test_patchify_reads_patches_row_by_row():
    images = torch.arange(2 * 3 * 8 * 12.0).reshape(2, 3, 8, 12)
    seq = patchify(images, 4)
    assert seq.shape == (2, 2 * 3, 3 * 4 * 4)
    # token 4 is the patch in row 1, column 1 (of 3 columns)
    torch.testing.assert_close(seq[1, 4], images[1, :, 4:8, 4:8].reshape(-1))
    with pytest.raises(ValueError, match="not a multiple of the patch size 5"):
        patchify(images, 5)


def test_attention_weights_of_a_layer_explain_its_output():
    torch.manual_seed(0)
    model = Transformer(16, 1, 4).double()
    mha = model.blocks[0].attn
    x = torch.randn(2, 5, 16, dtype=torch.float64)
    w = mha.weights(x, is_causal=True)                                   # (B, h, T, T)
    assert w.shape == (2, 4, 5, 5)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 5, dtype=torch.float64))
    assert torch.all(w.triu(1) == 0)
    v = mha.kv(x).chunk(2, -1)[1].view(2, 5, 4, 4).transpose(1, 2)       # (B, h, T, d_head)
    y = mha.out((w @ v).transpose(1, 2).reshape(2, 5, 16))
    torch.testing.assert_close(y, mha(x, is_causal=True))
