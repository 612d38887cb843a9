"""The two places an encoding can act: on tokens, or inside attention."""
from typing import Optional, Tuple

import torch
from torch import nn

from .grid import HW


class TokenPosEmbed(nn.Module):
    """Additive encoding of the token sequence (APE, 2D sin-cos, LOOPE).

    ``forward(x, hw, images)`` takes tokens x (B, P + H*W, C) whose first P tokens are
    prefix tokens (CLS, ...) followed by the row-major H x W patch grid ``hw``, and returns
    x plus the encoding. ``images`` (B, C_in, H*p, W*p) is the padded input, needed by
    image-dependent encodings (LOOPE).
    """

    def forward(self, x: torch.Tensor, hw: HW, images: Optional[torch.Tensor] = None) -> torch.Tensor:
        raise NotImplementedError


class AttentionPosEmbed(nn.Module):
    """Encoding applied inside one attention layer (RoPE, relative position bias).

    An attention layer calls ``rotate`` on its queries and keys, stacked or not,
    (..., heads, P + H*W, d), and adds ``bias(hw)`` (heads, N, N) or None to its logits.
    ``affine = (a_x, b_x, a_y, b_y)`` transforms the patch coordinates of a rotation
    (x' = a_x x + b_x, y' = a_y y + b_y; ``mmpe.pos_embed.rope.coords_affine``), the identity by default.
    The defaults do nothing, so attention never needs to know which encoding it has.
    """

    def rotate(self, qk: torch.Tensor, hw: HW, num_prefix_tokens: int = 0,
               affine: Tuple[float, float, float, float] = (1.0, 0.0, 1.0, 0.0)) -> torch.Tensor:
        return qk

    def bias(self, hw: HW) -> Optional[torch.Tensor]:
        return None
