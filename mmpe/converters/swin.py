"""Swin checkpoints -> ``PESwinTransformer`` (mmdet's Swin layout).

``swin_layout`` tells the layouts apart (``SWIN_LAYOUTS``):

- 'mmdet' (mmdet/mmseg Swin) and 'mmpe' (``PESwinTransformer``, the same keys plus encoding
  parameters under ``pos_embed``) already have the layout: ``backbone_state_dict`` only picks the
  state dict and strips 'module.' / 'backbone.' prefixes.
- 'microsoft' (official Swin; ``convert_weights=True`` in mmdet; also timm's earlier Swin layout):
  mmdet's own ``swin_converter`` renames the keys and reorders the patch-merging channels.
- 'timm' (timm's Swin today): the Microsoft layout (the same patch-merging channel order) except
  that each patch merging opens the next stage (``layers.{i}.downsample``, i >= 1, instead of the
  end of stage i - 1) and the classifier is ``head.fc``; timm does not store the derived
  ``relative_position_index`` and ``attn_mask``. ``timm_swin_to_microsoft`` moves the patch
  merging back, then it converts as 'microsoft'.
- 'rope_vit': the RoPE-ViT authors' Swin RoPE checkpoints (``swin_rope_{axial,mixed}_{tiny,small,base}_
  patch4_window7_224``) are the Microsoft layout without RPB tables plus, per block,
  ``layers.{i}.blocks.{j}.attn.rope_freqs`` (2, heads, head_dim/2) = [fx, fy] and the derived
  buffers ``attn.rope_t_x``, ``attn.rope_t_y`` (window-local column / row of each token) and
  ``attn_mask``. Their RoPE is ours: pair p of a head rotates by fx[p] * x + fy[p] * y with
  window-local x, y. RoPE-Mixed frequencies become ``...attn.w_msa.pos_embed.freqs``.
  RoPE-Axial frequencies are a fixed buffer, fx = [mag, mag cos(pi/2)], fy = [0, mag] with
  mag_k = theta^(-4k/d), i.e. exactly our RoPE-Axial (x block first, then y block; the
  authors' cos(pi/2) is -4.4e-8 in float32): they are checked (at the theta of the target encoding, which the
  caller gives: PESwinTransformer's ``pos_embed_spec`` has its default filled in) and dropped.

``convert_swin`` converts any of them; ``swin_state_for_model`` also resizes RPB tables to a given model.
"""
import re
from collections import OrderedDict
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from ..pos_embed import PosEmbedSpec, axial_magnitudes, grid_coords
from .state_dict import StateDict

_ROPE_FREQS = re.compile(r'^layers\.(\d+)\.blocks\.(\d+)\.attn\.rope_freqs$')
_ROPE_COORDS = re.compile(r'^layers\.\d+\.blocks\.\d+\.attn\.rope_t_([xy])$')
_MICROSOFT_BLOCK = re.compile(r'^layers\.\d+\.blocks\.\d+\.')
_MMDET_BLOCK = re.compile(r'^stages\.\d+\.blocks\.\d+\.')
_ATTN_MASK = re.compile(r'^layers\.\d+\.blocks\.\d+\.attn_mask$')
_DOWNSAMPLE = re.compile(r'^layers\.(\d+)\.downsample\.')
# The classifier's head and final norm have no counterpart in the backbone (mmdet ignores them too).
_CLASSIFIER = re.compile(r'^(head|norm)\.')


SWIN_LAYOUTS = {
    'mmdet': 'mmdet/mmseg Swin',
    'mmpe': "mmpe's PESwinTransformer",
    'microsoft': "Microsoft Swin (official release; also timm's earlier Swin layout)",
    'timm': 'timm Swin (patch merging at the start of the next stage, head.fc)',
    'rope_vit': "the RoPE-ViT authors' Swin RoPE (Microsoft layout with attn.rope_freqs)",
}


def swin_layout(state_dict: StateDict) -> str:
    """The ``SWIN_LAYOUTS`` key of a (backbone) Swin state dict; ValueError when it is not one."""
    if any(_MICROSOFT_BLOCK.match(k) for k in state_dict):
        if any(_ROPE_FREQS.match(k) for k in state_dict):
            return 'rope_vit'
        # Microsoft merges patches at the end of stage 0 .. n-2, timm at the start of stage 1 .. n-1.
        merging_stages = {int(m[1]) for m in map(_DOWNSAMPLE.match, state_dict) if m}
        return 'timm' if merging_stages and 0 not in merging_stages else 'microsoft'
    if any(_MMDET_BLOCK.match(k) for k in state_dict):
        return 'mmpe' if any('pos_embed.' in k for k in state_dict) else 'mmdet'
    raise ValueError('not a Swin state dict: it has neither layers.*.blocks.* (Microsoft) nor stages.*.blocks.* '
                     '(mmdet) keys')


def axial_as_mixed_freqs(num_heads: int, head_dim: int, theta: float) -> torch.Tensor:
    """RoPE-Axial written as RoPE-Mixed frequencies (2, heads, d/2): fx = [mag, 0], fy = [0, mag]."""
    mag = axial_magnitudes(head_dim, theta)
    zeros = torch.zeros_like(mag)
    return torch.stack([torch.cat([mag, zeros]), torch.cat([zeros, mag])])[:, None].expand(-1, num_heads, -1)


def _check_window_coords(key: str, value: torch.Tensor, axis: str) -> None:
    """The authors' rope_t_x / rope_t_y must be the window-local column / row of each token."""
    window = int(round(value.numel() ** 0.5))
    x, y = grid_coords((window, window))
    if window * window != value.numel() or not torch.equal(value.float().flatten(), x if axis == 'x' else y):
        raise ValueError(f'{key}: expected the window-local {axis} coordinates of a {window}x{window} window '
                         f'(token n: x = n % {window}, y = n // {window}); this checkpoint uses other coordinates')


def convert_microsoft_swin(state_dict: StateDict, pos_embed=dict(type='rpb')) -> StateDict:
    """Microsoft-layout Swin state dict (official or RoPE-ViT authors' Swin RoPE) ->
    ``PESwinTransformer`` keys for the encoding ``pos_embed``.

    Args:
        state_dict: the checkpoint's model state dict (``checkpoint['model']``).
        pos_embed: the target model's encoding (a ``PosEmbedSpec`` or a config dict). RoPE frequencies in the
            checkpoint need 'rope_mixed' (they become ``freqs``) or 'rope_axial' with a theta (they must equal
            RoPE-Axial with that theta; then they are dropped). With 'ape' (or ``with_ape``),
            ``absolute_pos_embed`` becomes ``pos_embed.pos_embed``.
    Raises ValueError when the checkpoint does not fit the target encoding.
    """
    return _microsoft_to_mmpe(state_dict, PosEmbedSpec.parse(pos_embed))[0]


def _microsoft_to_mmpe(state_dict: StateDict, spec: PosEmbedSpec) -> Tuple[StateDict, Dict[str, str]]:
    """``convert_microsoft_swin``, also returning {dropped key: reason}."""
    from mmdet.models.backbones.swin import swin_converter
    rest, rope_freqs, ignored = OrderedDict(), {}, {}
    for key, value in state_dict.items():
        freqs, coords = _ROPE_FREQS.match(key), _ROPE_COORDS.match(key)
        if freqs:
            rope_freqs[f'stages.{freqs[1]}.blocks.{freqs[2]}.attn.w_msa.pos_embed.freqs'] = value
        elif coords:
            _check_window_coords(key, value, coords[1])
            ignored[key] = 'window-local RoPE coordinates (checked; recomputed for every window)'
        elif _ATTN_MASK.match(key):
            ignored[key] = 'shifted-window mask (recomputed for every map)'
        elif _CLASSIFIER.match(key):
            ignored[key] = 'classification head / final norm (not part of the backbone)'
        else:
            rest[key] = value
    converted = OrderedDict((k[len('backbone.'):], v) for k, v in swin_converter(rest).items())
    if 'absolute_pos_embed' in converted and spec.has_learned_ape:
        converted['pos_embed.pos_embed'] = converted.pop('absolute_pos_embed')
    if rope_freqs and not spec.is_rope:
        raise ValueError(f"this checkpoint holds RoPE frequencies (attn.rope_freqs); convert it for pos_embed "
                         f"type 'rope_mixed' or 'rope_axial', not {spec.type!r}")
    if rope_freqs and spec.type == 'rope_axial' and spec.theta is None:
        raise ValueError("pos_embed type='rope_axial' without theta: the RoPE-Axial frequencies in this checkpoint "
                         "are checked against a theta; give theta, or the target model's pos_embed_spec "
                         "(PESwinTransformer fills in its default)")
    for key, freqs in rope_freqs.items():
        if spec.type == 'rope_mixed':
            converted[key] = freqs
            continue
        axial = axial_as_mixed_freqs(freqs.shape[1], 2 * freqs.shape[2], spec.theta)
        if freqs.shape != axial.shape or not torch.allclose(freqs.float(), axial, rtol=1e-5, atol=1e-6):
            raise ValueError(f"{key}: these RoPE frequencies are not RoPE-Axial with theta={spec.theta} "
                             f"(fx = [mag, 0], fy = [0, mag]); for learned frequencies use pos_embed "
                             f"type 'rope_mixed', otherwise set the matching theta")
        ignored[key] = f'RoPE-Axial frequencies (checked: theta={spec.theta}; recomputed)'
    return converted, ignored


def timm_swin_to_microsoft(state_dict: StateDict) -> StateDict:
    """timm Swin state dict -> the Microsoft layout: the patch merging that opens stage i
    (``layers.{i}.downsample.*``) becomes the end of stage i - 1. Other keys are kept as they are."""
    return OrderedDict((_DOWNSAMPLE.sub(lambda m: f'layers.{int(m[1]) - 1}.downsample.', key), value)
                       for key, value in state_dict.items())


def convert_swin(state_dict: StateDict, pos_embed=dict(type='rpb'), *, layout: Optional[str] = None) -> StateDict:
    """A Swin state dict of any ``SWIN_LAYOUTS`` layout (``layout`` when known, else ``swin_layout``) ->
    ``PESwinTransformer`` keys: 'mmdet' and 'mmpe' as they are, 'timm' through ``timm_swin_to_microsoft``, then
    Microsoft-layout ones by ``convert_microsoft_swin`` for the encoding ``pos_embed`` (a spec or a dict)."""
    return _swin_to_mmpe(state_dict, PosEmbedSpec.parse(pos_embed), layout or swin_layout(state_dict))[0]


def _swin_to_mmpe(state_dict: StateDict, spec: PosEmbedSpec, layout: str) -> Tuple[StateDict, Dict[str, str]]:
    """``convert_swin``, also returning {dropped key: reason}."""
    if layout in ('mmdet', 'mmpe'):
        return OrderedDict(state_dict), {}
    if layout == 'timm':
        state_dict = timm_swin_to_microsoft(state_dict)
    return _microsoft_to_mmpe(state_dict, spec)


def swin_state_for_model(state_dict: StateDict, layout: str, reference: StateDict, *,
                         pos_embed: PosEmbedSpec) -> Tuple[StateDict, Dict[str, str]]:
    """A Swin checkpoint's state dict of ``layout`` -> the state dict a ``PESwinTransformer`` with encoding
    ``pos_embed`` (its ``pos_embed_spec``) and state dict ``reference`` loads: ``convert_swin``, then
    ``resize_rpb_tables``. Returns (state dict, {dropped key: reason})."""
    state, ignored = _swin_to_mmpe(state_dict, pos_embed, layout)
    return resize_rpb_tables(state, reference), ignored


def resize_rpb_tables(state_dict: StateDict, reference: StateDict) -> StateDict:
    """Resize relative position bias tables of another window size to the model's (bicubic,
    as mmdet), taking the model's own ``relative_position_index``. ``reference``: the model's
    state dict. Returns a new dict; tables of the right size are left as they are."""
    state_dict = OrderedDict(state_dict)
    for key, table in list(state_dict.items()):
        if not key.endswith('relative_position_bias_table') or key not in reference:
            continue
        target = reference[key]
        if table.shape == target.shape or table.shape[1] != target.shape[1]:
            continue  # same size, or another number of heads: load_state_dict reports it
        src, dst = int(round(table.shape[0] ** 0.5)), int(round(target.shape[0] ** 0.5))
        grid = table.float().T.reshape(1, -1, src, src)
        resized = F.interpolate(grid, size=(dst, dst), mode='bicubic', align_corners=False)
        state_dict[key] = resized.reshape(table.shape[1], -1).T.to(table.dtype).contiguous()
        index_key = key.replace('relative_position_bias_table', 'relative_position_index')
        state_dict[index_key] = reference[index_key]
    return state_dict
