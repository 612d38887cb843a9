"""DINOv3 checkpoints in the layouts Meta publishes them in -> ``PEVisionTransformer`` state dicts.

``DINOV3_LAYOUTS`` (detected by ``dinov3_layout``; timm's own DINOv3 files are layout 'eva' of
``timm_vit``):

- 'dinov3': Meta's original release (facebookresearch/dinov3, ``dinov3_vit*16*_pretrain_*.pth``):
  ``storage_tokens`` (1, R, C) -> ``reg_token``; ``blocks.i.attn.qkv.bias`` times its
  ``qkv.bias_mask`` (1 for q and v, 0 for k) -> ``qkv.bias``; SwiGLU ``mlp.w1/w2/w3`` (silu(w1 x) *
  w2 x, then w3) -> ``mlp.fc1_g/fc1_x/fc2``; ``ls1/ls2.gamma``, ``norm1/2``, ``attn.qkv/proj``,
  ``mlp.fc1/fc2``, ``patch_embed.proj``, ``cls_token`` and ``norm`` keep their names.
  ``rope_embed.periods`` (head_dim/4,) is checked and dropped: see ``check_rope_periods``.
- 'hf_dinov3': Hugging Face transformers' ``DINOv3ViTModel`` (``facebook/dinov3-vit*16-*`` repos;
  their files say ``layer.i.``, transformers 5 models ``model.layer.i.``): ``embeddings.cls_token``,
  ``embeddings.register_tokens`` -> ``reg_token``, ``embeddings.patch_embeddings`` ->
  ``patch_embed.proj``, ``attention.{q,k,v}_proj`` -> ``attn.qkv`` (weights stacked; the biases
  present, zeros for absent ones, usually k), ``attention.o_proj`` -> ``attn.proj``,
  ``layer_scale{1,2}.lambda1`` -> ``ls{1,2}.gamma``, ``mlp.up_proj/down_proj`` -> ``mlp.fc1/fc2``
  or, gated, ``mlp.gate_proj/up_proj/down_proj`` -> ``mlp.fc1_g/fc1_x/fc2``.

Both drop the masked-image-modelling ``mask_token`` (training only) and the CLS-only norms of Meta's
training (``cls_norm``, ``local_cls_norm``); every other key is passed on for the loader to report.

RoPE periods: Meta's files store the periods ``100 ** (4k / head_dim)`` rounded to bfloat16 (the
training dtype), while timm and transformers compute them in float32 from theta 100 and store
nothing. mmpe computes them from the config's ``theta`` in float32 for every layout (its RoPE has
no periods to load), i.e. it runs timm's and transformers' model, which the published DINOv3
numbers were not computed with but which is what the two ports give; the difference to Meta's
rounded periods is measured in docs/design.md. The file's periods are checked against theta 100
and the head dimension so that a checkpoint trained with other periods is refused, not rotated
wrongly.
"""
import re
from typing import Dict, Optional, Tuple

import torch

from ..pos_embed import ENCODING_PRESETS, axial_magnitudes
from .state_dict import StateDict

DINOV3_LAYOUTS = {
    'dinov3': "Meta's DINOv3 release (facebookresearch/dinov3 .pth: storage_tokens, rope_embed.periods)",
    'hf_dinov3': 'Hugging Face transformers DINOv3ViTModel (facebook/dinov3-vit*16-* repos)',
}
# DINOv3's RoPE base (its preset's): periods theta ** (4k / head_dim), the reciprocals of RoPE-Axial's magnitudes.
DINOV3_ROPE_THETA = ENCODING_PRESETS['rope_dinov3']['theta']
# bfloat16 keeps 8 significant bits: rounding moves a value by at most 2 ** -9 of it.
BF16_RTOL = 2.0 ** -8
TRAINING_ONLY = 'training only (masked-image modelling token / CLS-only norm), not part of the backbone'

# transformers' names -> ours, after a 'model.' prefix of the layers is stripped (qkv is merged apart).
HF_RENAMES = [
    (r'^embeddings\.cls_token$', 'cls_token'),
    (r'^embeddings\.register_tokens$', 'reg_token'),
    (r'^embeddings\.patch_embeddings\.', 'patch_embed.proj.'),
    (r'^layer\.(\d+)\.attention\.o_proj\.', r'blocks.\1.attn.proj.'),
    (r'^layer\.(\d+)\.layer_scale([12])\.lambda1$', r'blocks.\1.ls\2.gamma'),
    (r'^layer\.(\d+)\.mlp\.down_proj\.', r'blocks.\1.mlp.fc2.'),
    (r'^layer\.(\d+)\.mlp\.gate_proj\.', r'blocks.\1.mlp.fc1_g.'),
    (r'^layer\.(\d+)\.', r'blocks.\1.'),  # norm1, norm2 (up_proj: see _hf_mlp_names)
]
META_RENAMES = [
    (r'^storage_tokens$', 'reg_token'),
    (r'\.mlp\.w1\.', '.mlp.fc1_g.'),
    (r'\.mlp\.w2\.', '.mlp.fc1_x.'),
    (r'\.mlp\.w3\.', '.mlp.fc2.'),
]
_HF_QKV = re.compile(r'^layer\.(\d+)\.attention\.([qkv])_proj\.(weight|bias)$')


def dinov3_layout(state_dict: StateDict) -> Optional[str]:
    """'dinov3' or 'hf_dinov3' (``DINOV3_LAYOUTS``) for a DINOv3 state dict of those layouts, else None."""
    if 'rope_embed.periods' in state_dict or 'storage_tokens' in state_dict:
        return 'dinov3'
    if 'embeddings.patch_embeddings.weight' in state_dict and \
            any(k.startswith(('layer.0.', 'model.layer.0.')) for k in state_dict):
        return 'hf_dinov3'
    return None


def check_rope_periods(periods: torch.Tensor, embed_dims: int, num_heads: Optional[int]) -> None:
    """ValueError unless Meta's stored ``periods`` (head_dim/4,) are DINOv3's for theta 100 (to bfloat16
    rounding) and, given ``num_heads``, for the head dimension ``embed_dims / num_heads``."""
    head_dim = 4 * periods.numel()
    if num_heads is not None and head_dim != embed_dims // num_heads:
        raise ValueError(f'rope_embed.periods has {periods.numel()} entries, i.e. head_dim {head_dim}, but the model '
                         f'has embed_dims {embed_dims} / num_heads {num_heads} = {embed_dims // num_heads} per head')
    expected = 1 / axial_magnitudes(head_dim, DINOV3_ROPE_THETA).double()
    if not torch.allclose(periods.double(), expected, rtol=BF16_RTOL, atol=0):
        raise ValueError(f'rope_embed.periods {[round(p, 4) for p in periods.double().tolist()]} are not DINOv3\'s '
                         f'theta ** (4k / head_dim) for theta {DINOV3_ROPE_THETA} and head_dim {head_dim} '
                         f'({[round(p, 4) for p in expected.tolist()]}, to bfloat16 rounding): mmpe computes the '
                         f'periods from pos_embed theta and cannot load other ones')


def _rename(key: str, renames) -> str:
    for pattern, replacement in renames:
        key, count = re.subn(pattern, replacement, key)
        if count:
            break
    return key


def convert_meta_dinov3(state_dict: StateDict, num_heads: Optional[int] = None) -> Tuple[StateDict, Dict[str, str]]:
    """Meta's layout 'dinov3' -> ours; returns (state dict, {dropped key: reason})."""
    out, ignored = {}, {}
    for key, value in state_dict.items():
        if key == 'rope_embed.periods':
            check_rope_periods(value, state_dict['cls_token'].shape[-1], num_heads)
            ignored[key] = f'RoPE periods, recomputed in float32 from pos_embed theta (checked: theta ' \
                           f'{DINOV3_ROPE_THETA}, bfloat16-rounded in the file)'
        elif key == 'mask_token' or key.startswith(('cls_norm.', 'local_cls_norm.')):
            ignored[key] = TRAINING_ONLY
        elif key.endswith('.attn.qkv.bias_mask'):
            ignored[key] = 'applied to attn.qkv.bias'
        elif key.endswith('.attn.qkv.bias') and key + '_mask' in state_dict:
            out[key] = value * state_dict[key + '_mask'].to(value.dtype)
        else:
            out[_rename(key, META_RENAMES)] = value
    return out, ignored


def _hf_mlp_names(state_dict: StateDict) -> list:
    """The rename of ``mlp.up_proj``: ``fc1_x`` next to a gate, else ``fc1``."""
    gated = any('.mlp.gate_proj.' in k for k in state_dict)
    return [(r'^layer\.(\d+)\.mlp\.up_proj\.', r'blocks.\1.mlp.fc1_x.' if gated else r'blocks.\1.mlp.fc1.')]


def convert_hf_dinov3(state_dict: StateDict) -> Tuple[StateDict, Dict[str, str]]:
    """transformers' layout 'hf_dinov3' -> ours; returns (state dict, {dropped key: reason})."""
    state_dict = {re.sub(r'^model\.layer\.', 'layer.', k): v for k, v in state_dict.items()}
    renames = _hf_mlp_names(state_dict) + HF_RENAMES
    out, ignored, qkv = {}, {}, {}
    for key, value in state_dict.items():
        match = _HF_QKV.match(key)
        if match:
            block, part, kind = match.groups()
            qkv.setdefault((int(block), kind), {})[part] = value
        elif key == 'embeddings.mask_token':
            ignored[key] = TRAINING_ONLY
        elif key.startswith('rope_embeddings.'):
            ignored[key] = 'derived RoPE table (recomputed for every grid)'
        else:
            out[_rename(key, renames)] = value
    for (block, kind), parts in sorted(qkv.items()):
        if kind == 'bias':
            like = next(iter(parts.values()))
            parts = {p: parts.get(p, torch.zeros_like(like)) for p in 'qkv'}
        elif set(parts) != set('qkv'):
            raise ValueError(f'layer.{block}.attention has the projection weights {sorted(parts)}, not q, k and v')
        out[f'blocks.{block}.attn.qkv.{kind}'] = torch.cat([parts['q'], parts['k'], parts['v']])
    return out, ignored


def convert_dinov3(state_dict: StateDict, layout: str,
                   num_heads: Optional[int] = None) -> Tuple[StateDict, Dict[str, str]]:
    """A state dict of a ``DINOV3_LAYOUTS`` layout -> ours; returns (state dict, {dropped key: reason})."""
    if layout == 'dinov3':
        return convert_meta_dinov3(state_dict, num_heads)
    if layout == 'hf_dinov3':
        return convert_hf_dinov3(state_dict)
    raise ValueError(f'layout={layout!r} is not a DINOv3 layout; accepted: {", ".join(map(repr, DINOV3_LAYOUTS))}')
