"""Swin relative position bias."""
import torch
from torch import nn

from .base import AttentionPosEmbed
from .grid import HW


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
    state dict as in mmdet/Microsoft Swin checkpoints. A window fitted to a smaller map
    (``PESwinTransformer(window_fit='fit')``) uses the same table: each offset keeps its bias.
    """

    def __init__(self, window_size: HW, num_heads: int):
        super().__init__()
        self.window_size = tuple(window_size)
        wh, ww = self.window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer('relative_position_index', relative_position_index(self.window_size))

    def bias(self, hw: HW) -> torch.Tensor:
        """(heads, h*w, h*w) bias of an (h, w) window no larger than the table's (Wh, Ww): the
        table gathered with the relative index of the (h, w) window, i.e. the top-left
        (h, w, h, w) block of the full window's index."""
        (h, w), (wh, ww) = hw, self.window_size
        if not (1 <= h <= wh and 1 <= w <= ww):
            raise ValueError(f'relative position bias built for window {self.window_size} takes windows up to '
                             f'that size, got {tuple(hw)}')
        index = self.relative_position_index
        if (h, w) != self.window_size:
            index = index.view(wh, ww, wh, ww)[:h, :w, :h, :w]
        table = self.relative_position_bias_table[index.reshape(-1)]
        return table.view(h * w, h * w, -1).permute(2, 0, 1)
