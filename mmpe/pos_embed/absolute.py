"""Additive token encodings: learned APE, fixed 2D sin-cos, LOOPE."""
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .base import TokenPosEmbed
from .cache import table_cache
from .grid import HW, gilbert_order, grid_coords

LOOPE_CONTEXTS = ('conv', 'mlp')


def _with_prefix(pos: torch.Tensor, num_prefix_tokens: int, prefix_pos: Optional[torch.Tensor]):
    """Prepend prefix-token encodings to pos (B|1, N, C): ``prefix_pos`` (1, P, C) or zeros."""
    if prefix_pos is not None:
        return torch.cat([prefix_pos.expand(pos.shape[0], -1, -1), pos], dim=1)
    if num_prefix_tokens:
        return F.pad(pos, (0, 0, num_prefix_tokens, 0))
    return pos


def resize_pos_table(table: torch.Tensor, src_hw: HW, dst_hw: HW) -> torch.Tensor:
    """Bicubic (align_corners=False) resize of a (1, Hs*Ws, C) table to (1, Hd*Wd, C). Eager returns the
    table itself at its own grid; torch.compile and torch.export always resize (the identity there), so
    one graph serves every size."""
    if not torch.compiler.is_compiling() and tuple(src_hw) == tuple(dst_hw):
        return table
    grid = table.reshape(1, src_hw[0], src_hw[1], -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=tuple(dst_hw), mode='bicubic', align_corners=False)
    return grid.to(table.dtype).flatten(2).transpose(1, 2)


class LearnedPosEmbed(TokenPosEmbed):
    """Learned absolute encoding (APE) trained at ``grid_size``, resized to any grid.

    Args:
        embed_dims: token width C.
        grid_size: reference patch grid (H, W) of the table ``pos_embed`` (1, H*W, C).
        num_prefix_tokens: P prefix tokens in front of the grid.
        embed_prefix: learn ``prefix_pos_embed`` (1, P, C) for the prefix tokens
            (timm's default); otherwise they get no encoding (DeiT-III, ``no_embed_class``).
    """

    def __init__(self, embed_dims: int, grid_size: HW, num_prefix_tokens: int = 0, embed_prefix: bool = False):
        super().__init__()
        self.grid_size = tuple(grid_size)
        self.num_prefix_tokens = num_prefix_tokens
        self.pos_embed = nn.Parameter(torch.zeros(1, self.grid_size[0] * self.grid_size[1], embed_dims))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        self.prefix_pos_embed = None
        if embed_prefix and num_prefix_tokens:
            self.prefix_pos_embed = nn.Parameter(torch.zeros(1, num_prefix_tokens, embed_dims))
            nn.init.trunc_normal_(self.prefix_pos_embed, std=0.02)

    def forward(self, x, hw, images=None):
        pos = resize_pos_table(self.pos_embed, self.grid_size, hw)
        return x + _with_prefix(pos, self.num_prefix_tokens, self.prefix_pos_embed).to(x.dtype)


def sincos_2d(hw: HW, embed_dims: int, temperature: float = 10000.0, device=None) -> torch.Tensor:
    """(H*W, C) fixed table [sin(x w), cos(x w), sin(y w), cos(y w)], w_k = T^(-k/(C/4))."""
    x, y = grid_coords(hw, device)
    omega = temperature ** (-torch.arange(embed_dims // 4, dtype=torch.float32, device=device) / (embed_dims // 4))
    ax, ay = x[:, None] * omega, y[:, None] * omega
    return torch.cat([ax.sin(), ax.cos(), ay.sin(), ay.cos()], dim=1)


@table_cache(maxsize=32)
def sincos_table(hw: HW, embed_dims: int, num_prefix_tokens: int, device: torch.device,
                 dtype: torch.dtype) -> torch.Tensor:
    """(1, P + H*W, C) ``sincos_2d`` table in ``dtype`` with zero rows for the P prefix tokens."""
    pos = sincos_2d(hw, embed_dims, device=device)[None]
    return _with_prefix(pos, num_prefix_tokens, None).to(dtype)


class SinCosPosEmbed(TokenPosEmbed):
    """Fixed 2D sin-cos encoding (MAE layout: first half of channels x, second half y).

    Prefix tokens get no encoding. Tables live in the shared cache of ``sincos_table``.
    """

    def __init__(self, embed_dims: int, num_prefix_tokens: int = 0):
        super().__init__()
        self.embed_dims = embed_dims
        self.num_prefix_tokens = num_prefix_tokens

    def forward(self, x, hw, images=None):
        return x + sincos_table(tuple(hw), self.embed_dims, self.num_prefix_tokens, x.device, x.dtype)


def interleaved_sincos(position: torch.Tensor, embed_dims: int) -> torch.Tensor:
    """(..., C) encoding of scalar positions (...): channel 2k = sin(X w_k), 2k+1 = cos(X w_k),
    w_k = 10000^(-2k/C)."""
    omega = 10000.0 ** (-torch.arange(0, embed_dims, 2, dtype=torch.float32, device=position.device) / embed_dims)
    angles = position.float()[..., None] * omega
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(-2)


@table_cache(maxsize=32)
def gilbert_positions(hw: HW, device: torch.device) -> torch.Tensor:
    """(H*W,) float32 Gilbert step (1..N) of each token of the row-major grid, on ``device``."""
    return gilbert_order(hw[0], hw[1]).to(device).flatten().float()


class LOOPEContext(nn.Module):
    """LOOPE context network: per-patch offsets X_C in (-1, 1) from the image.

    Input: images (B, C_in, H*p, W*p) and two coordinate maps in [-1, 1] (x, then y).
    Conv(C_in+2 -> 32, kernel = stride = p), Conv 32->16->8->4->1 (5x5, padding 2),
    GELU after each, BatchNorm over the single channel, a head, then 2 sigmoid(.) - 1.
    ``head='conv'``: 1x1 conv per position (any grid). ``head='mlp'``: the paper's
    Linear(N, N) over the flattened ``grid_size`` grid (that grid only).
    The head is zero-initialised, so X_C = 0 at initialisation.
    """

    def __init__(self, patch_size: int, in_channels: int = 3, head: str = 'conv', grid_size: Optional[HW] = None):
        super().__init__()
        if head not in LOOPE_CONTEXTS:
            raise ValueError(f'LOOPE context={head!r} is not supported; accepted: '
                             f'{", ".join(map(repr, LOOPE_CONTEXTS))}')
        if head == 'mlp' and grid_size is None:
            raise ValueError("LOOPE context='mlp' needs grid_size, the (H, W) patch grid its Linear(N, N) "
                             "head is built for")
        widths = (32, 16, 8, 4, 1)
        layers = [nn.Conv2d(in_channels + 2, widths[0], patch_size, stride=patch_size), nn.GELU()]
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv2d(c_in, c_out, 5, padding=2), nn.GELU()]
        layers.append(nn.BatchNorm2d(1))
        self.features = nn.Sequential(*layers)
        self.grid_size = tuple(grid_size) if grid_size is not None else None
        if head == 'conv':
            self.head = nn.Conv2d(1, 1, 1)
        else:
            n = self.grid_size[0] * self.grid_size[1]
            self.head = nn.Linear(n, n)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, C_in, H*p, W*p) -> offsets (B, H*W) in (-1, 1)."""
        b, _, h, w = images.shape
        ys = torch.linspace(-1, 1, h, device=images.device, dtype=images.dtype)
        xs = torch.linspace(-1, 1, w, device=images.device, dtype=images.dtype)
        coords = torch.stack([xs.expand(h, w), ys[:, None].expand(h, w)])[None].expand(b, -1, -1, -1)
        feat = self.features(torch.cat([images, coords], dim=1))  # (B, 1, H', W')
        if isinstance(self.head, nn.Linear):
            if tuple(feat.shape[2:]) != self.grid_size:
                raise ValueError(
                    f"LOOPE context='mlp' is bound to the {self.grid_size[0]}x{self.grid_size[1]} patch grid "
                    f"it was built for, got {feat.shape[2]}x{feat.shape[3]}; use context='conv' for other grids")
            offset = self.head(feat.flatten(1))
        else:
            offset = self.head(feat).flatten(1)
        return 2 * torch.sigmoid(offset) - 1


class LOOPEPosEmbed(TokenPosEmbed):
    """LOOPE: E(X_G + X_C), X_G the 1-based Gilbert order of the patch grid and X_C a
    learned per-image offset (``LOOPEContext``); prefix tokens get a learned vector (zero init).

    Args:
        embed_dims: token width C (even).
        patch_size, in_channels: of the patch embedding (the context net sees the image).
        num_prefix_tokens: P.
        context: 'conv' (any grid) or 'mlp' (the paper's head, ``grid_size`` only).
        grid_size: reference grid, needed by context='mlp'.
    """

    def __init__(self, embed_dims: int, *, patch_size: int, in_channels: int = 3, num_prefix_tokens: int = 0,
                 context: str = 'conv', grid_size: Optional[HW] = None):
        super().__init__()
        self.embed_dims = embed_dims
        self.num_prefix_tokens = num_prefix_tokens
        self.context = LOOPEContext(patch_size, in_channels, context, grid_size)
        self.prefix_pos_embed = nn.Parameter(torch.zeros(1, num_prefix_tokens, embed_dims)) \
            if num_prefix_tokens else None

    def forward(self, x, hw, images=None):
        if images is None:
            raise ValueError('LOOPE needs the input images to compute its context offsets')
        order = gilbert_positions(tuple(hw), x.device)  # (N,)
        offsets = self.context(images)  # (B, N)
        if offsets.shape[1] != order.numel():
            raise ValueError(f'LOOPE: images give a {offsets.shape[1]}-patch grid, tokens a {tuple(hw)} grid')
        pos = interleaved_sincos(order + offsets, self.embed_dims)  # (B, N, C)
        return x + _with_prefix(pos, self.num_prefix_tokens, self.prefix_pos_embed).to(x.dtype)
