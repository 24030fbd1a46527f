"""A word-level tokenizer over the Shapes vocabulary.

Ids 0, 1, 2 are the special tokens pad, bos and eos; the words of ``shapes.VOCABULARY`` follow in
sorted order, so ids never change between runs. ``encode`` writes [bos, words..., eos, pad...].
See chapter 4, "CLIP", and chapter 6, "A mini DALL-E".
"""

from __future__ import annotations

import torch

from .shapes import COLORS, SHAPES, VOCABULARY, words

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"


class Tokenizer:
    """``encode(text, length) -> LongTensor (length,)``; ``decode(ids) -> str``."""

    specials = (PAD, BOS, EOS)
    max_length = 24          # longest caption (16 words) + bos + eos, with room to spare

    def __init__(self):
        self.itos: list[str] = list(self.specials) + list(VOCABULARY)
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}
        self.pad_id, self.bos_id, self.eos_id = 0, 1, 2

    @property
    def vocab_size(self) -> int:
        return len(self.itos)

    def encode(self, text: str, length: int | None = None) -> torch.Tensor:
        length = self.max_length if length is None else length
        ws = words(text)
        for w in ws:
            if w not in self.stoi:
                raise ValueError(
                    f"unknown word {w!r} in {text!r}; the Shapes vocabulary has "
                    f"{len(VOCABULARY)} words, e.g. colours {', '.join(COLORS)} and shapes "
                    f"{', '.join(SHAPES)} (see minit2i.shapes.VOCABULARY)")
        if len(ws) + 2 > length:
            raise ValueError(f"prompt {text!r} has {len(ws)} words; at most {length - 2} fit "
                             f"in {length} tokens with bos and eos")
        ids = [self.bos_id] + [self.stoi[w] for w in ws] + [self.eos_id]
        ids += [self.pad_id] * (length - len(ids))
        return torch.tensor(ids, dtype=torch.long)

    def encode_batch(self, texts: list[str], length: int | None = None) -> torch.Tensor:
        return torch.stack([self.encode(t, length) for t in texts])

    def decode(self, ids) -> str:
        """Words of ``ids`` (a list or a 1-d tensor), stopping at eos and skipping pad/bos."""
        out = []
        for i in (ids.tolist() if isinstance(ids, torch.Tensor) else ids):
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"token id {i} out of range 0..{self.vocab_size - 1}")
            if i == self.eos_id:
                break
            if i not in (self.pad_id, self.bos_id):
                out.append(self.itos[i])
        return " ".join(out)
