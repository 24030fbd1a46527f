"""The article's DALL-E: text encoder + cross-attending image decoder."""

import pytest
import torch

from minit2i.dalle import sample_codes
from minit2i.dalle_encdec import EncDecConfig, EncoderDecoderDALLE
from minit2i.text import Tokenizer

CAPTIONS = ["a red circle", "a small blue square to the left of a large green cross",
            "a big yellow triangle at the top", "a tiny pink diamond in the bottom left"]


def tiny(dtype=torch.float64):
    torch.manual_seed(0)
    return EncoderDecoderDALLE(EncDecConfig(num_codes=16, grid=4, dim=32, enc_depth=1, depth=2,
                                            n_heads=4)).to(dtype)


def data():
    g = torch.Generator().manual_seed(1)
    return Tokenizer().encode_batch(CAPTIONS), torch.randint(0, 16, (4, 4, 4), generator=g)


def test_loss_is_the_image_cross_entropy():
    model = tiny()
    text, codes = data()
    out = model.loss(text, codes)
    assert out["loss"].ndim == 0 and out["text_loss"] == 0
    # by hand: position n's logits (start token, then codes 0..n-1) against code n
    context, mask = model.encode_text(text)
    flat = codes.flatten(1)
    logits = torch.stack([model.next_code_logits(text, flat[:, :n]) for n in range(16)], 1)
    expected = torch.nn.functional.cross_entropy(logits.flatten(0, 1), flat.flatten())
    torch.testing.assert_close(out["loss"], expected)


def test_decoder_is_causal_and_ignores_caption_padding():
    model = tiny()
    text, codes = data()
    flat = codes.flatten(1)
    logits = model.decode(flat[:, :-1], *model.encode_text(text))
    changed = flat.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % 16
    logits2 = model.decode(changed[:, :-1], *model.encode_text(text))
    torch.testing.assert_close(logits[:, :11], logits2[:, :11])      # outputs 0..10 read codes < 10
    assert not torch.allclose(logits[:, 11:], logits2[:, 11:])
    states, mask = model.encode_text(text)
    assert torch.equal(mask[:, 0, 0], text != 0)
    shorter = Tokenizer().encode_batch(CAPTIONS[:1], 24)
    longer = torch.cat([shorter[:, :8], torch.zeros(1, 16, dtype=torch.long)], 1)
    torch.testing.assert_close(model.encode_text(shorter)[0][:, :5],
                               model.encode_text(longer)[0][:, :5])    # padding is not read
    with pytest.raises(ValueError, match=r"\(B, 24\)"):
        model.encode_text(text[:, :10])


def test_cached_drawing_equals_recomputing_and_guidance_works():
    model = tiny().eval()
    text, _ = data()
    for guidance in (1.0, 2.0):
        a = sample_codes(model, text, 1.0, generator=torch.Generator().manual_seed(0),
                         guidance=guidance)
        b = sample_codes(model, text, 1.0, generator=torch.Generator().manual_seed(0),
                         guidance=guidance, use_cache=False)
        assert a.shape == (4, 4, 4) and torch.equal(a, b)
    free = sample_codes(model, model.empty_text(4), 0.0)
    assert torch.equal(sample_codes(model, text, 0.0, guidance=0.0), free)


def test_overfits_one_batch_and_redraws_it():
    model = tiny(torch.float32)
    text, codes = data()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(200):
        out = model.loss(text, codes)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    assert out["image_loss"] < 0.05
    assert torch.equal(sample_codes(model.eval(), text, temperature=0.0), codes)
