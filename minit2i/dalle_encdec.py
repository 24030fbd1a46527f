r"""The source article's DALL-E: a text encoder, and an image decoder that cross-attends to it.

The article the book was made from describes DALL-E as a text encoder, an image encoder and an
image decoder, with masked self-attention and cross-attention between the two streams. That is
not what DALL-E (Ramesh et al., 2021) was: it was one decoder-only sparse transformer over
[text tokens; image tokens] (``minit2i.dalle``). The separate text encoder whose states an image
model reads through cross-attention came later (Parti, Yu et al., 2022; Imagen, Saharia et al.,
2022; Stable Diffusion, Rombach et al., 2022). Chapter 6 builds both and compares them on the
same data and budget. Here the caption $t$ is read by a bidirectional encoder $E$, and each code
attends causally to the codes before it and, through cross-attention, to all of $E(t)$:

$$
p(c \mid t) = \prod_{n=1}^{N} p\big(c_n \mid c_{<n}, E(t)\big), \qquad
\mathcal{L} = -\frac{1}{N} \sum_{n=1}^{N} \log p\big(c_n \mid c_{<n}, E(t)\big).
$$

There is no text loss: the encoder only has to understand the caption, not write it. Drawing,
guidance and re-ranking are ``minit2i.dalle``'s (``sample_codes`` and ``draw`` take either
model). See chapter 6, "The article's DALL-E".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import settings
from .dalle import TEXT_VOCAB, MiniDALLE
from .text import Tokenizer
from .transformer import Transformer


@settings
class EncDecConfig:
    text_vocab: int = TEXT_VOCAB
    text_len: int = 24
    num_codes: int = 512               # K, the image tokenizer's codebook size
    grid: int = 8
    dim: int = 128
    enc_depth: int = 2                 # the text encoder's blocks
    depth: int = 3                     # the image decoder's blocks (each with cross-attention)
    n_heads: int = 4
    dropout: float = 0.0


class EncoderDecoderDALLE(nn.Module):
    """A bidirectional text encoder and a causal image decoder with cross-attention."""

    def __init__(self, config: EncDecConfig):
        super().__init__()
        c = self.config = config
        self.n_image = c.grid * c.grid
        self.text_emb = nn.Embedding(c.text_vocab, c.dim)
        self.text_pos = nn.Parameter(0.02 * torch.randn(c.text_len, c.dim))
        self.encoder = Transformer(c.dim, c.enc_depth, c.n_heads, dropout=c.dropout)
        self.image_start = nn.Parameter(0.02 * torch.randn(c.dim))   # what the decoder reads first
        self.image_emb = nn.Embedding(c.num_codes, c.dim)
        self.row_emb = nn.Parameter(0.02 * torch.randn(c.grid, c.dim))
        self.col_emb = nn.Parameter(0.02 * torch.randn(c.grid, c.dim))
        self.decoder = Transformer(c.dim, c.depth, c.n_heads, dropout=c.dropout, cross=True)
        self.head = nn.Linear(c.dim, c.num_codes)

    empty_text = MiniDALLE.empty_text

    def encode_text(self, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder states (B, L, D) of captions (B, L), and the mask (B, 1, 1, L) of real tokens
        (padding is neither attended to by the encoder nor read by the decoder)."""
        c = self.config
        if text.dim() != 2 or text.shape[1] != c.text_len:
            raise ValueError(f"expected text tokens of shape (B, {c.text_len}), "
                             f"got {tuple(text.shape)}")
        real = (text != Tokenizer().pad_id)[:, None, None, :]                  # (B, 1, 1, L)
        states = self.encoder(self.text_emb(text) + self.text_pos, attn_mask=real)
        return states, real

    def decode(self, codes: torch.Tensor, context: torch.Tensor, mask: torch.Tensor,
               start: int = 0, kv_cache=None) -> torch.Tensor:
        """Logits (B, T, K) of the code after each input; the inputs are the start token (at
        position 0) then codes (B, T or T - 1) that sit at positions start .. of the image."""
        c = self.config
        B, T = codes.shape
        parts = [self.image_start.expand(B, 1, -1)] if start == 0 else []
        first = 0 if start == 0 else start - 1                     # image index of codes[:, 0]
        if T:
            n = torch.arange(first, first + T, device=codes.device)
            parts.append(self.image_emb(codes) + self.row_emb[n // c.grid]
                         + self.col_emb[n % c.grid])
        x = torch.cat(parts, dim=1)                                        # (B, T', D)
        h = self.decoder(x, is_causal=True, context=context, context_mask=mask,
                         kv_cache=kv_cache)
        return self.head(h)

    def loss(self, text: torch.Tensor, codes: torch.Tensor) -> dict[str, torch.Tensor]:
        """The image codes' next-token loss (and a zero text loss, for the same bookkeeping)."""
        context, mask = self.encode_text(text)
        flat = codes.flatten(1)                                             # (B, N)
        logits = self.decode(flat[:, :-1], context, mask)                   # (B, N, K)
        if logits.element_size() < 4:           # the cross-entropy in fp32 under mixed precision
            logits = logits.float()
        image_loss = F.cross_entropy(logits.flatten(0, 1), flat.flatten())
        return {"loss": image_loss, "text_loss": torch.zeros((), device=codes.device),
                "image_loss": image_loss.detach()}

    # Drawing: the interface of minit2i.dalle.sample_codes
    def start(self, text: torch.Tensor):
        context, mask = self.encode_text(text)
        cache = self.decoder.new_cache()
        logits = self.decode(text.new_zeros(len(text), 0), context, mask, kv_cache=cache)
        return (cache, context, mask), logits[:, -1]

    def step(self, state, code: torch.Tensor, n: int) -> torch.Tensor:
        cache, context, mask = state
        return self.decode(code[:, None], context, mask, start=n + 1, kv_cache=cache)[:, -1]

    def next_code_logits(self, text: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        context, mask = self.encode_text(text)
        return self.decode(codes, context, mask)[:, -1]
