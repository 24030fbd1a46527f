"""The word-level tokenizer."""

import numpy as np
import pytest
import torch

from minit2i.shapes import VOCABULARY, caption, sample_scene, words
from minit2i.text import Tokenizer


def test_ids_are_stable():
    tok = Tokenizer()
    assert (tok.pad_id, tok.bos_id, tok.eos_id) == (0, 1, 2)
    assert tok.itos[3:] == sorted(VOCABULARY)
    assert tok.vocab_size == 3 + len(VOCABULARY)
    assert tok.stoi["circle"] == 3 + sorted(VOCABULARY).index("circle")


def test_encode_decode_round_trip_on_captions():
    tok, rng = Tokenizer(), np.random.default_rng(0)
    for i in range(500):
        text = caption(sample_scene(rng, 1 + i % 2), rng)
        ids = tok.encode(text)
        assert ids.shape == (tok.max_length,) and ids.dtype == torch.long
        assert ids[0] == tok.bos_id
        assert tok.decode(ids) == " ".join(words(text))


def test_padding_and_eos():
    ids = Tokenizer().encode("a red circle", length=8)
    assert ids[4] == 2 and (ids[5:] == 0).all() and len(ids) == 8


def test_decode_stops_at_eos_and_skips_specials():
    tok = Tokenizer()
    red, circle = tok.stoi["red"], tok.stoi["circle"]
    assert tok.decode([1, red, 0, circle, 2, red]) == "red circle"
    with pytest.raises(ValueError, match="out of range"):
        tok.decode([1, tok.vocab_size])


def test_unknown_word_and_too_long_prompt():
    tok = Tokenizer()
    with pytest.raises(ValueError, match="unknown word 'purpel'"):
        tok.encode("a purpel circle")
    with pytest.raises(ValueError, match="at most 6 fit in 8 tokens"):
        tok.encode("a big red circle in the top left", length=8)


def test_encode_batch():
    batch = Tokenizer().encode_batch(["a red circle", "a blue square above a red circle"], 12)
    assert batch.shape == (2, 12)
