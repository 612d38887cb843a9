"""Swin relative position bias."""
from typing import Tuple

import torch
from torch import nn

from .base import AttentionPosEmbed

HW = Tuple[int, int]


def relative_position_index(window_size: HW) -> torch.LongTensor:
    """(Wh*Ww, Wh*Ww) index into the (2Wh-1)(2Ww-1) table: (dy + Wh-1)(2Ww-1) + dx + Ww-1."""
    wh, ww = window_size
    y, x = torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing='ij')
    y, x = y.flatten(), x.flatten()
    dy = y[:, None] - y[None, :] + wh - 1
    dx = x[:, None] - x[None, :] + ww - 1
    return dy * (2 * ww - 1) + dx


class RelativePositionBias(AttentionPosEmbed):
    """Learned bias per head and relative offset inside a window (Swin).

    ``relative_position_bias_table`` ((2Wh-1)(2Ww-1), heads); the index buffer is kept in the
    state dict as in mmdet/Microsoft Swin checkpoints.
    """

    def __init__(self, window_size: HW, num_heads: int):
        super().__init__()
        self.window_size = tuple(window_size)
        wh, ww = self.window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer('relative_position_index', relative_position_index(self.window_size))

    def bias(self, hw: HW) -> torch.Tensor:
        """(heads, Wh*Ww, Wh*Ww) bias; hw must be the window size."""
        if tuple(hw) != self.window_size:
            raise ValueError(f'relative position bias built for window {self.window_size}, got {tuple(hw)}')
        n = self.window_size[0] * self.window_size[1]
        table = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return table.view(n, n, -1).permute(2, 0, 1)
