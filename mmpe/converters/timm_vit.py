"""timm ViT checkpoints -> ``PEVisionTransformer`` state dicts.

Two timm layouts are understood (``timm_vit_layout`` tells them apart):

- 'eva': timm's ``Eva`` class, which holds the RoPE-ViT authors' weights
  (``vit_{small,base,large}_patch16_rope{,_mixed}{,_ape}_224.naver_in1k``) and EVA models:
  LayerScale as ``blocks.i.gamma_1/gamma_2``, RoPE-Mixed frequencies as one ``rope.freqs``
  (2, depth, heads, head_dim/2) = [fx, fy] over the 'xy' grid (x = column, y = row), and for
  EVA attention a qkv bias split into ``q_bias``/``v_bias`` (the k bias is fixed at 0).
  The RoPE-ViT authors' own checkpoints (their DeiT-III code) use the same names except a
  top-level ``freqs`` (2, depth, heads * head_dim/2), which needs ``num_heads`` to split.
- 'vit': timm's ``VisionTransformer`` (DeiT-III, AugReg, ...): names already match ours
  (``blocks.i.ls1.gamma``, ``attn.qkv``, ``mlp.fc1`` ...).

Both write the absolute table ``pos_embed`` (1, P + N, C) with P = 0 (``no_embed_class``,
DeiT-III, RoPE+APE) or P prefix rows (CLS, registers); it becomes ``pos_embed.pos_embed``
(1, N, C) and, when P > 0, ``pos_embed.prefix_pos_embed`` (1, P, C), which the backbone
learns only with ``pos_embed=dict(type='ape', embed_prefix=True)``.
Axial RoPE has no parameters: timm's axial tables (index grid, 'xy', temperature 100,
bands ``100 ** (-4k/d)``) are exactly DESIGN's RoPE-Axial with theta 100, so nothing is
converted for it. Derived RoPE tables and the classification head are dropped and listed
in the returned ``ignored`` mapping; every other key is passed on for the loader to report.
"""
import math
import os
from typing import Dict, Optional, Tuple

import torch

StateDict = Dict[str, torch.Tensor]
DERIVED_ROPE_KEYS = ('freqs_t_x', 'freqs_t_y', 'freqs_cis')
HEAD_PREFIXES = ('head.', 'head_dist.', 'fc_norm.')
EVA_SUFFIXES = ('.gamma_1', '.gamma_2', '.attn.q_bias', '.attn.v_bias')


def unwrap_state_dict(checkpoint: dict) -> StateDict:
    """The tensor mapping inside a training checkpoint ({'state_dict'|'model'|'module': ...})."""
    for key in ('state_dict', 'model', 'module'):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
    return checkpoint


def load_state_file(path: str, trust_pickle: bool = False) -> StateDict:
    """Read a .safetensors or torch (.pth/.pt/.bin) file into a state dict on CPU.

    torch files are read with ``weights_only=True``; ``trust_pickle=True`` lifts that for
    trusted files that pickle other objects (e.g. DeiT checkpoints storing an argparse.Namespace).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint file {path!r} does not exist')
    if path.endswith('.safetensors'):
        from safetensors.torch import load_file
        return load_file(path, device='cpu')
    try:
        checkpoint = torch.load(path, map_location='cpu', weights_only=not trust_pickle)
    except Exception as err:  # torch raises UnpicklingError or RuntimeError for unsafe globals
        if trust_pickle:
            raise
        raise ValueError(f'{path!r} cannot be read with torch.load(weights_only=True): {err}. If you trust the file, '
                         f'convert it with tools/convert_timm_vit.py --trust-pickle') from err
    return unwrap_state_dict(checkpoint)


def timm_vit_layout(state_dict: StateDict) -> str:
    """'eva' (timm Eva / RoPE-ViT authors), 'vit' (timm VisionTransformer) or 'mmpe' (already ours)."""
    if any(k.startswith('pos_embed.') or '.attn.pos_embed.' in k for k in state_dict):
        return 'mmpe'
    if 'rope.freqs' in state_dict or 'freqs' in state_dict or any(k.endswith(EVA_SUFFIXES) for k in state_dict):
        return 'eva'
    if any(k.startswith('blocks.') for k in state_dict):
        return 'vit'
    raise ValueError('not a ViT state dict: it has no blocks.* keys (did you need a key prefix such as "backbone."?)')


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


def convert_timm_vit(state_dict: StateDict, num_heads: Optional[int] = None) -> Tuple[StateDict, Dict[str, str]]:
    """Convert a timm ViT state dict (Eva or VisionTransformer layout) to ``PEVisionTransformer`` keys.

    Args:
        state_dict: the model's tensors (unwrapped, without a key prefix).
        num_heads: needed only for RoPE-ViT authors' checkpoints with flat ``freqs``.
    Returns:
        (converted state dict, {dropped key: reason}) -- dropped are derived RoPE tables and
        the classification head. Unknown keys are kept, so loading reports them as unexpected.
    """
    if timm_vit_layout(state_dict) == 'mmpe':
        return dict(state_dict), {}
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
