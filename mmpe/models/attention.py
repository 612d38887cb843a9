"""Multi-head self-attention whose positional encoding is an ``AttentionPosEmbed``."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..pos_embed import AttentionPosEmbed
from ..pos_embed.grid import HW
from ..pos_embed.rope import IDENTITY, Affine


class KMaskedBiasLinear(nn.Linear):
    """The qkv projection C -> 3C whose bias has its k third fixed at zero (DINOv3's ``LinearKMaskedBias``,
    timm Eva's q_bias / zero k_bias / v_bias): ``bias`` keeps all 3C entries, its k part is never
    used (and so gets no gradient)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q_bias, k_bias, v_bias = self.bias.chunk(3)
        return F.linear(x, self.weight, torch.cat([q_bias, torch.zeros_like(k_bias), v_bias]))


class PosAttention(nn.Module):
    """Self-attention over tokens (B, P + H*W, C) through scaled_dot_product_attention.

    The encoding (``pos_embed``: RoPE, RPB or None) rotates q and k and/or adds a bias; the
    layer never needs to know which. Submodule names (``qkv``, ``proj``) match timm's ViT
    attention and mmdet's Swin ``WindowMSA``.

    Args:
        embed_dims: C.  num_heads: h (C % h == 0).  qkv_bias: bias of the qkv projection.
        mask_k_bias: keep the k part of that bias at zero (``KMaskedBiasLinear``; needs qkv_bias).
        qk_scale: logit scale (default head_dim ** -0.5).  attn_drop, proj_drop: dropout rates.
        pos_embed: the encoding of this layer, or None.
    """

    def __init__(self, embed_dims: int, num_heads: int, *, qkv_bias: bool = True, qk_scale: Optional[float] = None,
                 attn_drop: float = 0.0, proj_drop: float = 0.0, pos_embed: Optional[AttentionPosEmbed] = None,
                 mask_k_bias: bool = False):
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims={embed_dims} must be divisible by num_heads={num_heads}')
        if mask_k_bias and not qkv_bias:
            raise ValueError('mask_k_bias=True masks part of the qkv bias: it needs qkv_bias=True')
        self.num_heads = num_heads
        self.head_dim = embed_dims // num_heads
        self.scale = qk_scale or self.head_dim ** -0.5
        self.qkv = (KMaskedBiasLinear if mask_k_bias else nn.Linear)(embed_dims, embed_dims * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(embed_dims, embed_dims)
        self.proj_drop = nn.Dropout(proj_drop)
        self.pos_embed = pos_embed

    def forward(self, x: torch.Tensor, hw: HW, num_prefix_tokens: int = 0,
                mask: Optional[torch.Tensor] = None, affine: Affine = IDENTITY) -> torch.Tensor:
        """x (B, P + H*W, C) -> (B, P + H*W, C).

        hw: the (H, W) grid of the non-prefix tokens (a window for window attention).
        mask: optional additive mask broadcastable to (B, h, N, N), e.g. Swin's shift mask.
        affine: (a_x, b_x, a_y, b_y), the RoPE coordinate transform (``coords_affine``).
        """
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        qk, v = qkv[:2], qkv[2]
        if self.pos_embed is not None:
            rotated = self.pos_embed.rotate(qk, hw, num_prefix_tokens, affine)
            if rotated is not qk:
                # Attention saves the rotated q/k and v for backward; a view of v would keep the
                # whole projection output (q, k and v) alive beside them, a copy keeps v only.
                qk, v = rotated, v.contiguous()
            bias = self.pos_embed.bias(hw)
            if bias is not None:
                mask = bias.to(x.dtype) if mask is None else mask + bias.to(x.dtype)
        x = F.scaled_dot_product_attention(qk[0], qk[1], v, attn_mask=mask, scale=self.scale,
                                           dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(b, n, c)))
