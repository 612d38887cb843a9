"""Rotary position embeddings (RoPE-Axial, RoPE-Mixed) for 2D patch grids.

Layout follows the official RoPE-ViT code and timm: channels (2i, 2i+1) of a head form
one complex number, rotated by angle a_i:
``(x0, x1) -> (x0 cos a - x1 sin a, x0 sin a + x1 cos a)``.
Real arithmetic only; angles are computed in float32 and the result keeps the input dtype.
"""
import math

import torch
from torch import nn

from .grid import HW, cache_builder, grid_coords
from .base import AttentionPosEmbed



def axial_magnitudes(head_dim: int, theta: float) -> torch.Tensor:
    """(head_dim/4,) frequencies ``theta ** (-4k / head_dim)``."""
    return theta ** (-torch.arange(0, head_dim, 4, dtype=torch.float32) / head_dim)


def rope_tables(angles: torch.Tensor, num_prefix_tokens: int, dtype: torch.dtype):
    """Turn angles (..., N, d/2) into the tables ``apply_rope`` uses.

    Returns ``cos`` and ``signed_sin`` of shape (..., P + N, d): ``cos`` holds each pair's
    cosine twice, ``signed_sin`` holds (-sin, +sin). The P prefix rows are the identity
    rotation (cos 1, sin 0), so prefix tokens pass through unchanged.
    """
    cos = angles.cos().repeat_interleave(2, dim=-1)
    sin = angles.sin()
    signed_sin = torch.stack([-sin, sin], dim=-1).flatten(-2)
    if num_prefix_tokens:
        pad = (0, 0, num_prefix_tokens, 0)
        cos = nn.functional.pad(cos, pad, value=1.0)
        signed_sin = nn.functional.pad(signed_sin, pad, value=0.0)
    return cos.to(dtype), signed_sin.to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, signed_sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs of x (..., N, d) by tables (..., N, d) from ``rope_tables``.

    ``x * cos + swap_pairs(x) * signed_sin`` where swap_pairs maps (x0, x1) to (x1, x0).
    Leading dimensions broadcast, so q and k can be rotated in one call, e.g. as
    ``qkv[:2]`` of shape (2, B, heads, N, d).
    """
    swapped = x.unflatten(-1, (-1, 2)).flip(-1).flatten(-2)
    return torch.addcmul(x * cos, swapped, signed_sin)


class RoPEAxial(AttentionPosEmbed):
    """Fixed axial RoPE: pairs 0..d/4-1 rotate by x * mag_k, pairs d/4..d/2-1 by y * mag_k.

    Args:
        head_dim: attention head dimension d (multiple of 4).
        theta: frequency base; mag_k = theta ** (-4k/d).
    Holds no state: the tables are cached per (grid, prefix, device, dtype).
    """

    def __init__(self, head_dim: int, theta: float):
        super().__init__()
        self.head_dim = head_dim
        self.theta = theta
        self._cache = {}

    def extra_repr(self) -> str:
        return f'head_dim={self.head_dim}, theta={self.theta}'

    def angles(self, hw: HW, device=None) -> torch.Tensor:
        """(1, H*W, d/2) float32 angles for a row-major grid."""
        x, y = grid_coords(hw, device)
        mag = axial_magnitudes(self.head_dim, self.theta).to(device)
        return torch.cat([x[:, None] * mag, y[:, None] * mag], dim=-1)[None]

    @cache_builder
    def _build_tables(self, hw: HW, num_prefix_tokens: int, device, dtype):
        return rope_tables(self.angles(hw, device), num_prefix_tokens, dtype)

    def tables(self, hw: HW, num_prefix_tokens: int, device, dtype):
        key = (tuple(hw), num_prefix_tokens, device, dtype)
        if key not in self._cache:
            self._cache[key] = self._build_tables(hw, num_prefix_tokens, device, dtype)
        return self._cache[key]

    def rotate(self, qk: torch.Tensor, hw: HW, num_prefix_tokens: int = 0) -> torch.Tensor:
        """Rotate q/k of shape (..., heads, P + H*W, d); prefix tokens stay as they are."""
        cos, signed_sin = self.tables(hw, num_prefix_tokens, qk.device, qk.dtype)
        return apply_rope(qk, cos, signed_sin)


def mixed_init_freqs(num_heads: int, head_dim: int, theta: float = 10.0) -> torch.Tensor:
    """RoPE-Mixed initial frequencies (2, heads, d/2): [fx, fy], each head at a random angle.

    fx = [mag cos(a), mag cos(a + pi/2)], fy = [mag sin(a), mag sin(a + pi/2)], a ~ U(0, 2 pi).
    """
    mag = axial_magnitudes(head_dim, theta)
    a = torch.rand(num_heads, 1) * 2 * math.pi
    fx = torch.cat([mag * torch.cos(a), mag * torch.cos(a + math.pi / 2)], dim=-1)
    fy = torch.cat([mag * torch.sin(a), mag * torch.sin(a + math.pi / 2)], dim=-1)
    return torch.stack([fx, fy])


class RoPEMixed(AttentionPosEmbed):
    """Learnable mixed-axis RoPE of one attention layer: pair j rotates by fx[j] x + fy[j] y.

    Args:
        num_heads: attention heads h.
        head_dim: head dimension d (multiple of 4).
        theta: base of the initial magnitudes (10 in the paper).
    Parameter ``freqs`` (2, h, d/2) holds fx and fy. Angles are computed on demand from
    the current frequencies (float32), so gradients reach them.
    """

    def __init__(self, num_heads: int, head_dim: int, theta: float = 10.0):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.theta = theta
        self.freqs = nn.Parameter(mixed_init_freqs(num_heads, head_dim, theta))

    def extra_repr(self) -> str:
        return f'num_heads={self.num_heads}, head_dim={self.head_dim}, theta={self.theta}'

    def angles(self, hw: HW) -> torch.Tensor:
        """(h, H*W, d/2) float32 angles ``fx x + fy y``."""
        x, y = grid_coords(hw, self.freqs.device)
        freqs = self.freqs.float()
        return x[:, None] * freqs[0, :, None] + y[:, None] * freqs[1, :, None]

    def rotate(self, qk: torch.Tensor, hw: HW, num_prefix_tokens: int = 0) -> torch.Tensor:
        """Rotate q/k of shape (..., h, P + H*W, d); prefix tokens stay as they are."""
        cos, signed_sin = rope_tables(self.angles(hw), num_prefix_tokens, qk.dtype)
        return apply_rope(qk, cos, signed_sin)
