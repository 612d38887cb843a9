"""Position tables (H, W, D) of mmpe's encodings and RoPE similarity kernels (H, W, H, W),
the inputs of the PESI metrics.

Additive encodings have a table whose rows are compared by cosine similarity: APE (from a
model or checkpoint), 2D sin-cos, LOOPE (static Gilbert order, or with the context offset of
one image) and 1D sinusoids over any scan order (raster, Gilbert). LOOPE without its offset
*is* the 1D sinusoid over the Gilbert order.

Rotary encodings have no table: they act on q/k, and a score between p and q is a sum over
pairs j of terms rotated by angle_j(p) - angle_j(q). Their similarity is the kernel
s(p, q) = mean over pairs j of cos(angle_j(p) - angle_j(q)), with angle_j = fx_j x + fy_j y
(x column, y row). For RoPE-Mixed fx, fy are the learned ``freqs`` (2, heads, d/2) of each
attention layer; RoPE-Axial is the same with fx = [mag, 0], fy = [0, mag].
"""
import os
import re
from typing import List, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn

from ..pos_embed import LOOPEPosEmbed, gilbert_order, grid_coords, interleaved_sincos, resize_pos_table, sincos_2d
from ..pos_embed.grid import HW

StateSource = Union[nn.Module, dict, str, os.PathLike]


def backbone_state(source: StateSource) -> dict:
    """The mmpe backbone state dict of a model (nn.Module), a state dict or a checkpoint file
    (.pth/.safetensors, read with weights_only=True): mmdet/mmseg wrappers ('backbone.',
    'module.', 'state_dict') are unwrapped and timm ViT layouts converted to mmpe keys."""
    # mmpe's checkpoint readers log through mmengine: imported only when a checkpoint is read.
    from ..converters import backbone_state_dict, convert_timm_vit, load_state_file
    if isinstance(source, nn.Module):
        state = source.state_dict()
    elif isinstance(source, (str, os.PathLike)):
        state = load_state_file(os.fspath(source))
    elif isinstance(source, dict):
        state = source
    else:
        raise ValueError(f'source must be an nn.Module, a state dict or a checkpoint path, got {type(source).__name__}')
    state = backbone_state_dict(state)
    if any(k.startswith('blocks.') for k in state):
        state, _ = convert_timm_vit(state)
    return state


def sincos_table(hw: HW, embed_dims: int) -> torch.Tensor:
    """mmpe's fixed 2D sin-cos encoding as a table (H, W, C)."""
    return sincos_2d(hw, embed_dims).reshape(hw[0], hw[1], embed_dims)


def raster_order(hw: HW) -> torch.Tensor:
    """(H, W) 1-based row-major index of each cell."""
    return torch.arange(1, hw[0] * hw[1] + 1).reshape(hw[0], hw[1])


def sinusoid_table(positions: torch.Tensor, embed_dims: int) -> torch.Tensor:
    """1D sinusoid (LOOPE's interleaved sin/cos, base 10000) of scalar positions (H, W) ->
    table (H, W, C). ``positions``: e.g. ``raster_order(hw)`` or ``gilbert_order(H, W)``."""
    return interleaved_sincos(positions, embed_dims)


def loope_static_table(hw: HW, embed_dims: int) -> torch.Tensor:
    """LOOPE without its context offset (X_C = 0): E(X_G), the 1D sinusoid over the Gilbert order."""
    return sinusoid_table(gilbert_order(hw[0], hw[1]), embed_dims)


def ape_table(source: StateSource, hw: Optional[HW] = None, ref_hw: Optional[HW] = None) -> torch.Tensor:
    """Learned APE table (H, W, C) of a model or checkpoint (``pos_embed.pos_embed`` (1, N, C)).

    ref_hw: the grid the table was trained at (default: the model's, or the square grid of N).
    hw: resize to this grid as the model does (bicubic), default ref_hw.
    """
    if isinstance(source, nn.Module) and ref_hw is None:
        ref_hw = getattr(getattr(source, 'pos_embed', None), 'grid_size', None)
    table = backbone_state(source).get('pos_embed.pos_embed')
    if table is None:
        raise ValueError('no learned APE table (key pos_embed.pos_embed) in this model or checkpoint')
    table = table.detach().float().cpu()
    n = table.shape[1]
    if ref_hw is None:
        side = int(round(n ** 0.5))
        if side * side != n:
            raise ValueError(f'the APE table has {n} rows, not a square grid: pass ref_hw=(H, W)')
        ref_hw = (side, side)
    if ref_hw[0] * ref_hw[1] != n:
        raise ValueError(f'ref_hw={tuple(ref_hw)} does not match the {n} rows of the APE table')
    hw = tuple(ref_hw) if hw is None else tuple(hw)
    return resize_pos_table(table, tuple(ref_hw), hw).reshape(hw[0], hw[1], -1)


def loope_module(source: StateSource) -> LOOPEPosEmbed:
    """The LOOPE encoding (``LOOPEPosEmbed``, eval mode) of a model or checkpoint; dims,
    patch size, context head and prefix tokens are read from the tensors' shapes."""
    if isinstance(source, nn.Module) and isinstance(getattr(source, 'pos_embed', None), LOOPEPosEmbed):
        return source.pos_embed.eval()
    full = backbone_state(source)
    state = {k[len('pos_embed.'):]: v for k, v in full.items() if k.startswith('pos_embed.')}
    if 'context.features.0.weight' not in state:
        raise ValueError('no LOOPE encoding (key pos_embed.context.*) in this model or checkpoint')
    stem, head = state['context.features.0.weight'], state['context.head.weight']
    prefix = state.get('prefix_pos_embed')
    embed_dims = prefix.shape[-1] if prefix is not None else full['patch_embed.proj.weight'].shape[0]
    grid_size = None
    if head.dim() == 2:  # the paper's Linear(N, N) head over a square grid
        side = int(round(head.shape[0] ** 0.5))
        grid_size = (side, side)
    module = LOOPEPosEmbed(embed_dims, patch_size=stem.shape[-1], in_channels=stem.shape[1] - 2,
                           num_prefix_tokens=0 if prefix is None else prefix.shape[1],
                           context='conv' if head.dim() == 4 else 'mlp', grid_size=grid_size)
    module.load_state_dict(state)
    return module.eval()


@torch.no_grad()
def loope_positions(module: LOOPEPosEmbed, image: torch.Tensor) -> torch.Tensor:
    """X_G + X_C (H, W) of LOOPE ``module`` on one image (C, H*p, W*p) or (1, C, H*p, W*p)."""
    image = image[None] if image.dim() == 3 else image
    patch = module.context.features[0].kernel_size[0]
    if image.dim() != 4 or image.shape[0] != 1 or image.shape[2] % patch or image.shape[3] % patch:
        raise ValueError(f'image must be (C, H, W) or (1, C, H, W) with H, W multiples of the patch size {patch}, '
                         f'got {tuple(image.shape)}')
    hw = (image.shape[2] // patch, image.shape[3] // patch)
    was_training = module.training
    offsets = module.eval().context(image.float())[0].reshape(hw)
    module.train(was_training)
    return gilbert_order(*hw).float() + offsets


def loope_table(module: LOOPEPosEmbed, image: torch.Tensor) -> torch.Tensor:
    """LOOPE table E(X_G + X_C) (H, W, C) on one image (C_in, H*p, W*p)."""
    return sinusoid_table(loope_positions(module, image), module.embed_dims)


def _natural_key(key: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r'(\d+)', key)]


def rope_mixed_freqs(source: StateSource) -> List[torch.Tensor]:
    """RoPE-Mixed frequencies [fx, fy] (2, heads, d/2) of every attention layer of a model or
    checkpoint (keys ``*.attn.pos_embed.freqs``; ViT or Swin), in layer order."""
    state = backbone_state(source)
    keys = sorted((k for k in state if k.endswith('attn.pos_embed.freqs')), key=_natural_key)
    if not keys:
        raise ValueError('no RoPE-Mixed frequencies (keys *.attn.pos_embed.freqs) in this model or checkpoint')
    return [state[k].detach().float().cpu() for k in keys]


def rope_kernel(freqs: Union[torch.Tensor, Sequence[torch.Tensor]], hw: HW) -> np.ndarray:
    """RoPE similarity kernel (H, W, H, W), float64: s(p, q) = mean over pairs of
    cos(angle(p) - angle(q)), angle = fx x + fy y.

    freqs: (2, ..., d/2) = [fx, fy] of one layer (heads in the middle dimensions; all its pairs
    are averaged), or a sequence of such layers: the mean of their kernels.
    """
    if isinstance(freqs, (list, tuple)):
        if not freqs:
            raise ValueError('freqs is an empty sequence')
        return np.mean([rope_kernel(f, hw) for f in freqs], axis=0)
    if freqs.dim() < 2 or freqs.shape[0] != 2:
        raise ValueError(f'freqs must have shape (2, ..., d/2) = [fx, fy], got {tuple(freqs.shape)}')
    x, y = grid_coords(hw)
    f = freqs.detach().double().cpu().reshape(2, -1)
    angles = x.double()[:, None] * f[0] + y.double()[:, None] * f[1]  # (N, pairs)
    cos, sin = angles.cos(), angles.sin()
    kernel = (cos @ cos.T + sin @ sin.T) / f.shape[1]  # cos(a - b) = cos a cos b + sin a sin b
    return kernel.reshape(hw[0], hw[1], hw[0], hw[1]).numpy()
