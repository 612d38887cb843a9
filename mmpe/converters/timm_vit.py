"""ViT checkpoints -> ``PEVisionTransformer`` state dicts.

``timm_vit_layout`` tells the layouts apart (``VIT_LAYOUTS``); ``convert_timm_vit`` converts them:

- 'eva': timm's ``Eva`` class, which holds the RoPE-ViT authors' weights in timm
  (``vit_{small,base,large}_patch16_rope{,_mixed}{,_ape}_224.naver_in1k``), EVA models and DINOv3
  (``vit_{small,small_plus,base,large}_patch16_dinov3{,_qkvb}.lvd1689m``): LayerScale as
  ``blocks.i.gamma_1/gamma_2``, RoPE-Mixed frequencies as one ``rope.freqs`` (2, depth, heads,
  head_dim/2) = [fx, fy] over the 'xy' grid (x = column, y = row), for EVA attention a qkv bias
  split into ``q_bias``/``v_bias`` (the k bias is fixed at 0: ``mask_k_bias``), register tokens as
  ``reg_token`` (1, R, C) and a SwiGLU MLP as ``mlp.fc1_g/fc1_x/fc2``, the names of ours. DINOv3's
  RoPE has no parameters (its ``rope.periods`` are derived, not stored).
- 'deit3': the RoPE-ViT authors' own DeiT-III checkpoints (``naver-ai/{rope_axial_,rope_mixed_,
  rope_axial_ape_,rope_mixed_ape_,}deit_{small,base,large}_patch16_LS``, ``checkpoint['model']``):
  Eva's names (``gamma_1``, ``attn.qkv``), but RoPE-Mixed frequencies as a top-level ``freqs``
  (2, depth, heads * head_dim/2), which needs ``num_heads`` to split, plus grid buffers
  ``freqs_t_x``/``freqs_t_y``. Their RoPE-Axial and APE-only models have no RoPE keys and are
  indistinguishable from timm's Eva RoPE-Axial weights (same names, same meaning).
- 'vit': timm's ``VisionTransformer`` (DeiT-III, AugReg, ...): names already match ours
  (``blocks.i.ls1.gamma``, ``attn.qkv``, ``mlp.fc1`` ...).
- 'mmpe': a ``PEVisionTransformer`` state dict.
- 'dinov3', 'hf_dinov3': Meta's original DINOv3 files and Hugging Face transformers' DINOv3ViTModel
  (``mmpe.converters.dinov3``).

All write the absolute table ``pos_embed`` (1, P + N, C) with P = 0 (``no_embed_class``,
DeiT-III, RoPE+APE) or P prefix rows (CLS, registers); it becomes ``pos_embed.pos_embed``
(1, N, C) and, when P > 0, ``pos_embed.prefix_pos_embed`` (1, P, C), which the backbone
learns only with ``pos_embed=dict(type='ape', embed_prefix=True)``.
Axial RoPE has no parameters: timm's and the authors' axial tables (index grid, 'xy', temperature
100, bands ``100 ** (-4k/d)``) are exactly docs/design.md's RoPE-Axial with theta 100, and DINOv3's
(periods ``100 ** (4k/d)`` over centred coordinates in [-1, 1], rotate_half, rows first) is RoPE-Axial
with theta 100, coords='centered', pairing='half', axes='yx', so nothing is converted for either.
Derived RoPE tables and the classification head are dropped and listed in the returned ``ignored``
mapping; every other key is passed on for the loader to report. ``vit_state_for_model`` adds what loading into
a given model needs: a learned APE table of another grid resized to the model's (``resize_ape_table``).
"""
import math
from typing import Dict, Optional, Tuple

import torch
from mmengine.logging import print_log

from ..pos_embed import resize_pos_table
from ..pos_embed.grid import HW
from .dinov3 import DINOV3_LAYOUTS, convert_dinov3, dinov3_layout
from .state_dict import StateDict

DERIVED_ROPE_KEYS = ('freqs_t_x', 'freqs_t_y', 'freqs_cis')
HEAD_PREFIXES = ('head.', 'head_dist.', 'fc_norm.')
APE_KEY = 'pos_embed.pos_embed'  # PEVisionTransformer's learned APE table (1, N, C)


VIT_LAYOUTS = {
    'mmpe': "mmpe's PEVisionTransformer",
    'eva': "timm Eva (timm's RoPE-ViT, EVA and DINOv3 weights)",
    'deit3': "the RoPE-ViT authors' DeiT-III (naver-ai/*deit*_LS; timm's Eva RoPE-Axial weights share it)",
    'vit': 'timm VisionTransformer (DeiT-III, AugReg)',
    **DINOV3_LAYOUTS,
}


def timm_vit_layout(state_dict: StateDict) -> str:
    """The ``VIT_LAYOUTS`` key of a ViT state dict; ValueError when it is not one."""
    dinov3 = dinov3_layout(state_dict)
    if dinov3:
        return dinov3
    if not any(k.startswith('blocks.0.') for k in state_dict) or \
            any(k.startswith(('layers.', 'stages.')) for k in state_dict):
        raise ValueError('not a ViT state dict: it has no blocks.0.* keys (or has Swin stages); did you need a '
                         'key prefix such as "backbone."?')
    if any(k.startswith('pos_embed.') or '.attn.pos_embed.' in k for k in state_dict):
        return 'mmpe'
    gamma = any(k.endswith('.gamma_1') for k in state_dict)
    if 'rope.freqs' in state_dict or any(k.endswith(('.attn.q_bias', '.attn.v_bias')) for k in state_dict) \
            or (gamma and 'reg_token' in state_dict):  # DINOv3 without qkv bias: Eva with registers
        return 'eva'
    if 'freqs' in state_dict or 'freqs_t_x' in state_dict or gamma:
        return 'deit3'
    return 'vit'


def _is_square(n: int) -> bool:
    return n > 0 and math.isqrt(n) ** 2 == n


def _split_abs_pos_embed(table: torch.Tensor, num_prefix_tokens: int) -> StateDict:
    """timm ``pos_embed`` (1, P + N, C) -> our APE keys; P is 0 or ``num_prefix_tokens``,
    whichever leaves a square grid."""
    rows = table.shape[1]
    for prefix in sorted({0, num_prefix_tokens}):
        if _is_square(rows - prefix):
            out = {'pos_embed.pos_embed': table[:, prefix:]}
            if prefix:
                out['pos_embed.prefix_pos_embed'] = table[:, :prefix]
            return out
    raise ValueError(f'pos_embed has {rows} rows: neither they nor {rows} - {num_prefix_tokens} prefix rows '
                     f'form a square patch grid')


def _split_mixed_freqs(freqs: torch.Tensor, num_heads: Optional[int]) -> StateDict:
    """[fx, fy] of all blocks (2, depth, h, d/2), or (2, depth, h*d/2) from the RoPE-ViT
    authors' code, -> per-block ``blocks.i.attn.pos_embed.freqs`` (2, h, d/2)."""
    if freqs.dim() == 3:
        if num_heads is None:
            raise ValueError(f'freqs of shape {tuple(freqs.shape)} holds all heads in one axis; '
                             f'pass num_heads to split it')
        freqs = freqs.reshape(freqs.shape[0], freqs.shape[1], num_heads, -1)
    if freqs.dim() != 4 or freqs.shape[0] != 2:
        raise ValueError(f'RoPE-Mixed freqs must have shape (2, depth, heads, head_dim/2), got {tuple(freqs.shape)}')
    return {f'blocks.{i}.attn.pos_embed.freqs': freqs[:, i].clone() for i in range(freqs.shape[1])}


def convert_timm_vit(state_dict: StateDict, num_heads: Optional[int] = None, *,
                     layout: Optional[str] = None) -> Tuple[StateDict, Dict[str, str]]:
    """Convert a ViT state dict of any ``VIT_LAYOUTS`` layout to ``PEVisionTransformer`` keys.

    Args:
        state_dict: the model's tensors (unwrapped, without a key prefix).
        num_heads: needed for the RoPE-ViT authors' RoPE-Mixed checkpoints (flat ``freqs``); checks
            the head dimension of Meta's DINOv3 RoPE periods.
        layout: the ``VIT_LAYOUTS`` key when already known (``timm_vit_layout``), else detected here.
    Returns:
        ``(converted state dict, {dropped key: reason})`` -- dropped are derived RoPE tables and
        the classification head. Unknown keys are kept, so loading reports them as unexpected.
    """
    layout = layout or timm_vit_layout(state_dict)
    if layout == 'mmpe':
        return dict(state_dict), {}
    if layout in DINOV3_LAYOUTS:
        return convert_dinov3(state_dict, layout, num_heads)
    num_prefix_tokens = ('cls_token' in state_dict) + (state_dict['reg_token'].shape[1] if 'reg_token' in state_dict
                                                        else 0)
    out, ignored = {}, {}
    for key, value in state_dict.items():
        if key in ('rope.freqs', 'freqs'):
            out.update(_split_mixed_freqs(value, num_heads))
        elif key.startswith('rope.') or key in DERIVED_ROPE_KEYS:
            ignored[key] = 'derived RoPE table (recomputed for every grid)'
        elif key.startswith(HEAD_PREFIXES):
            ignored[key] = 'classification head (not part of the backbone)'
        elif key == 'pos_embed':
            out.update(_split_abs_pos_embed(value, num_prefix_tokens))
        elif key.endswith('.attn.q_bias'):
            v_bias = state_dict[key[:-len('q_bias')] + 'v_bias']
            out[key[:-len('q_bias')] + 'qkv.bias'] = torch.cat([value, torch.zeros_like(value), v_bias])
        elif key.endswith('.attn.v_bias'):
            continue  # merged into qkv.bias with q_bias
        elif key.endswith('.gamma_1') or key.endswith('.gamma_2'):
            out[key[:-len('gamma_1')] + ('ls1.gamma' if key.endswith('1') else 'ls2.gamma')] = value
        else:
            out[key] = value
    return out, ignored


def resize_ape_table(state_dict: StateDict, reference: StateDict, grid_size: HW) -> StateDict:
    """``state_dict`` with its learned APE table (``APE_KEY``, (1, N, C)) of another square grid resized (bicubic,
    logged) to ``grid_size``, the model's reference grid, when the model's state dict ``reference`` has a table of
    another length; otherwise as it is. ValueError when the table's N is not a square."""
    table = state_dict.get(APE_KEY)
    if table is None or APE_KEY not in reference or table.shape[1] == reference[APE_KEY].shape[1]:
        return state_dict
    side = math.isqrt(table.shape[1])
    if side * side != table.shape[1]:
        raise ValueError(f'checkpoint {APE_KEY} has {table.shape[1]} rows, not a square grid: cannot resize it to '
                         f'the {tuple(grid_size)} grid of img_size; set img_size to the size the checkpoint was '
                         f'trained at')
    print_log(f'resized the checkpoint\'s {APE_KEY} from {side}x{side} to the model\'s {tuple(grid_size)} grid',
              logger='current')
    return {**state_dict, APE_KEY: resize_pos_table(table, (side, side), grid_size)}


def vit_state_for_model(state_dict: StateDict, layout: str, reference: StateDict, *, num_heads: int,
                        grid_size: HW) -> Tuple[StateDict, Dict[str, str]]:
    """A ViT checkpoint's state dict of ``layout`` -> the state dict a ``PEVisionTransformer`` with ``num_heads``
    heads, reference patch grid ``grid_size`` and state dict ``reference`` loads: ``convert_timm_vit``, then
    ``resize_ape_table``. Returns (state dict, {dropped key: reason})."""
    state, ignored = convert_timm_vit(state_dict, num_heads, layout=layout)
    return resize_ape_table(state, reference, grid_size), ignored
