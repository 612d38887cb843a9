"""Swin Transformer backbone for MMDetection / MMSegmentation whose positional encoding is one
config key: ``pos_embed=dict(type='rpb' | 'rope_axial' | 'rope_mixed' | 'ape' | 'sincos' |
'loope' | 'none', ...)``.

The module tree mirrors mmdet's ``SwinTransformer`` (``patch_embed``, ``stages.{i}.blocks.{j}``
with ``norm1``, ``attn.w_msa.{qkv, proj}``, ``norm2``, ``ffn``, ``stages.{i}.downsample``,
``norm{i}``), so with 'rpb' every mmdet/mmseg Swin checkpoint and config works unchanged and
the outputs are the same. The one difference in the module tree: the relative position bias
lives at ``attn.w_msa.pos_embed.relative_position_*`` (the attention's encoding slot), while
mmdet stores it at ``attn.w_msa.relative_position_*``; a state-dict hook and a load pre-hook
of ``PESwinTransformer`` translate between the two, so state dicts have exactly mmdet's keys.
The encoding's slots are named as in ``PEVisionTransformer``: ``pos_embed`` for the token encoding
after the patch embedding, ``attn.w_msa.pos_embed`` for each attention's; the token encoding was
``token_pos_embed`` before, and the load pre-hook still reads those keys.
"""
import re
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import torch
import torch.utils.checkpoint as cp
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.transformer import FFN, PatchEmbed, PatchMerging, build_dropout
from mmengine.logging import MMLogger
from mmengine.model import BaseModule, ModuleList
from mmengine.model.weight_init import constant_init, trunc_normal_init
from torch import nn

from ..converters.backbone import PretrainedLoad, load_pretrained
from ..pos_embed import AttentionPosEmbed, PosEmbedSpec, build_pos_embed
from ..pos_embed.cache import table_cache
from ..pos_embed.grid import HW, crop_to_tokens, pad_to_multiple, patch_embed_input
from .attention import PosAttention
from .checks import check_bool, check_drop_rates, check_int, check_ints, check_number, check_size, is_int
from .registry import register_model

# RoPE-Axial's theta when pos_embed gives none: the RoPE-ViT authors' Swin configs' value.
SWIN_AXIAL_THETA = 50.0

# Our key of the relative position bias <-> mmdet's key (see the module docstring).
_OURS_RPB = re.compile(r'(\.w_msa\.)pos_embed\.(relative_position_(?:bias_table|index))$')
_MMDET_RPB = re.compile(r'(\.w_msa\.)(relative_position_(?:bias_table|index))$')
# The token encoding's name before it was ``pos_embed``, as PEVisionTransformer's.
_OLD_TOKEN_POS_EMBED = 'token_pos_embed.'


@table_cache(maxsize=16)
def shift_window_mask(hw_pad: HW, window: HW, shift: HW, device: torch.device,
                      dtype: torch.dtype) -> torch.Tensor:
    """(nW, Wh*Ww, Wh*Ww) additive mask of shifted-window attention, as mmdet's
    ``ShiftWindowMSA`` (and timm's per-axis window and shift): after a cyclic shift by
    ``shift`` = (sh, sw), tokens of a (Wh, Ww) ``window`` that come from different regions of
    the padded (H, W) map get -100, the others 0. A zero shift along an axis masks nothing
    along it. Windows in row-major order. Cached per (grid, window, shift, device, dtype);
    treat as read-only."""
    def region(size: int, window: int, shift: int) -> torch.Tensor:  # 0, 1, 2: before the last
        idx = torch.arange(size)                                     # window, in it, in the shift
        return (idx >= size - window).long() + (idx >= size - shift).long()

    (h, w), (wh, ww) = hw_pad, window
    ids = region(h, wh, shift[0])[:, None] * 3 + region(w, ww, shift[1])[None, :]  # (H, W) region id
    ids = ids.view(h // wh, wh, w // ww, ww).transpose(1, 2).reshape(-1, wh * ww)
    mask = torch.zeros(ids.shape[0], wh * ww, wh * ww)
    mask.masked_fill_(ids[:, None, :] != ids[:, :, None], -100.0)
    return mask.to(device=device, dtype=dtype)


@table_cache(maxsize=16)
def padding_key_mask(hw: HW, hw_pad: HW, window: HW, shift: HW, device: torch.device,
                     dtype: torch.dtype) -> torch.Tensor:
    """(nW, 1, Wh*Ww) additive key mask of window attention on an (H, W) map padded to ``hw_pad``: -inf for the
    keys at padded positions, 0 for the map's own, after the cyclic shift by ``shift`` (windows row-major, as
    ``window_partition``). Every window holds at least one position of the map (the padding is narrower than a
    window), so no query loses all its keys. Cached; treat as read-only."""
    (h, w), (h_pad, w_pad) = hw, hw_pad
    valid = (torch.arange(h_pad) < h)[:, None] & (torch.arange(w_pad) < w)[None, :]
    valid = torch.roll(valid, shifts=(-shift[0], -shift[1]), dims=(0, 1))
    valid = window_partition(valid[None, :, :, None], window)[:, None, :, 0]  # (nW, 1, Wh*Ww)
    mask = torch.zeros(valid.shape).masked_fill(~valid, float('-inf'))
    return mask.to(device=device, dtype=dtype)


def window_partition(x: torch.Tensor, window: HW) -> torch.Tensor:
    """(B, H, W, C) with H, W multiples of ``window`` (Wh, Ww) -> (B * nW, Wh*Ww, C), windows row-major."""
    b, h, w, c = x.shape
    wh, ww = window
    x = x.view(b, h // wh, wh, w // ww, ww, c)
    return x.transpose(2, 3).reshape(-1, wh * ww, c)


def window_reverse(windows: torch.Tensor, hw: HW, window: HW) -> torch.Tensor:
    """Inverse of ``window_partition``: (B * nW, Wh*Ww, C) -> (B, H, W, C)."""
    (h, w), (wh, ww) = hw, window
    c = windows.shape[-1]
    x = windows.view(-1, h // wh, w // ww, wh, ww, c)
    return x.transpose(2, 3).reshape(-1, h, w, c)


class ShiftWindowAttention(BaseModule):
    """(Shifted-)window multi-head self-attention, with mmdet ``ShiftWindowMSA`` semantics:
    pad the map to multiples of the window (padded tokens take part, as in mmdet), cyclic
    shift, attend inside windows, undo both; drop path on the output.

    ``window_fit`` decides the window on a map no larger than ``window_size`` (per forward,
    from the map size): 'pad' (mmdet) keeps the window and shift and pads the map up to the
    window; 'fit' (timm's ``_calc_window_shift``, official Swin's rule on square maps), along
    each axis where the map is no larger than ``window_size``, shrinks the window to the map
    and does not shift, so the window may be non-square.

    The encoding (``pos_embed``) sees window-local coordinates (0 .. Wh-1, 0 .. Ww-1 of the
    window used), which for RoPE is exact for every pair the shift mask leaves unmasked. The
    shift mask is passed only when the window shifts; with no bias either, attention gets no
    mask at all.

    ``mask_padding=True`` also masks the padded positions out as keys (``padding_key_mask``, -inf: they get no
    attention weight), as ViTDet windows do in ``PEVisionTransformer``; the default False attends to them as
    mmdet does. A map that fills its windows has no padding and gets the same result either way.

    Args:
        embed_dims, num_heads, qkv_bias, qk_scale: of the attention (``PosAttention``).
        window_size: window side. shift_size: cyclic shift (0 or window_size // 2).
        window_fit: 'pad' or 'fit' (above). mask_padding: mask padded keys (above).
        attn_drop_rate, proj_drop_rate, drop_path_rate: dropout rates.
        pos_embed: the ``AttentionPosEmbed`` of this block (RPB, RoPE) or None.
    """

    def __init__(self, embed_dims: int, num_heads: int, *, window_size: int, shift_size: int = 0,
                 window_fit: str = 'pad', mask_padding: bool = False, qkv_bias: bool = True,
                 qk_scale: Optional[float] = None, attn_drop_rate: float = 0.0, proj_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, pos_embed: Optional[AttentionPosEmbed] = None):
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.window_fit = window_fit
        self.mask_padding = mask_padding
        self.w_msa = PosAttention(embed_dims, num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale,
                                  attn_drop=attn_drop_rate, proj_drop=proj_drop_rate, pos_embed=pos_embed)
        self.drop = build_dropout(dict(type='DropPath', drop_prob=drop_path_rate))

    def window_and_shift(self, hw: HW) -> Tuple[HW, HW]:
        """The (Wh, Ww) window and (sh, sw) shift used on an (H, W) map."""
        ws, shift = self.window_size, self.shift_size
        if self.window_fit == 'pad':
            return (ws, ws), (shift, shift)
        window = tuple(min(size, ws) for size in hw)
        return window, tuple(0 if size <= ws else shift for size in hw)

    def forward(self, x: torch.Tensor, hw: HW) -> torch.Tensor:
        """x (B, H*W, C) -> (B, H*W, C)."""
        b, _, c = x.shape
        h, w = hw
        window, shift = self.window_and_shift(hw)
        n = window[0] * window[1]
        x = pad_to_multiple(x.view(b, h, w, c), window, channels_last=True)
        hw_pad = (x.shape[1], x.shape[2])
        mask = None
        if any(shift):
            x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
            mask = shift_window_mask(hw_pad, window, shift, x.device, x.dtype)  # (nW, N, N)
        # compiled: one graph for every size (a zero mask when the map fills its windows)
        if self.mask_padding and (torch.compiler.is_compiling() or hw_pad != (h, w)):
            pad_mask = padding_key_mask((h, w), hw_pad, window, shift, x.device, x.dtype)  # (nW, 1, N)
            mask = pad_mask if mask is None else mask + pad_mask
        if mask is not None:
            mask = mask.unsqueeze(0).expand(b, -1, -1, -1).reshape(-1, 1, mask.shape[-2], n)
        x = self.w_msa(window_partition(x, window), window, mask=mask)
        x = window_reverse(x, hw_pad, window)
        if any(shift):
            x = torch.roll(x, shifts=shift, dims=(1, 2))
        return self.drop(crop_to_tokens(x, hw))


class PESwinBlock(BaseModule):
    """Pre-norm Swin block: x + attn(norm1(x)), then x + ffn(norm2(x)) (mmcv ``FFN``)."""

    def __init__(self, embed_dims: int, num_heads: int, *, feedforward_channels: int, window_size: int = 7,
                 shift: bool = False, window_fit: str = 'pad', mask_padding: bool = False, qkv_bias: bool = True,
                 qk_scale: Optional[float] = None,
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0,
                 act_cfg: dict = dict(type='GELU'), norm_cfg: dict = dict(type='LN'), with_cp: bool = False,
                 pos_embed: Optional[AttentionPosEmbed] = None):
        super().__init__()
        self.with_cp = with_cp
        self.norm1 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.attn = ShiftWindowAttention(
            embed_dims, num_heads, window_size=window_size, shift_size=window_size // 2 if shift else 0,
            window_fit=window_fit, mask_padding=mask_padding, qkv_bias=qkv_bias, qk_scale=qk_scale,
            attn_drop_rate=attn_drop_rate, proj_drop_rate=drop_rate, drop_path_rate=drop_path_rate,
            pos_embed=pos_embed)
        self.norm2 = build_norm_layer(norm_cfg, embed_dims)[1]
        self.ffn = FFN(embed_dims=embed_dims, feedforward_channels=feedforward_channels, num_fcs=2,
                       ffn_drop=drop_rate, dropout_layer=dict(type='DropPath', drop_prob=drop_path_rate),
                       act_cfg=act_cfg, add_identity=True)

    def _inner_forward(self, x: torch.Tensor, hw: HW) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), hw)
        return self.ffn(self.norm2(x), identity=x)

    def forward(self, x: torch.Tensor, hw: HW) -> torch.Tensor:
        """x (B, H*W, C) -> (B, H*W, C)."""
        if self.with_cp and x.requires_grad:
            return cp.checkpoint(self._inner_forward, x, hw, use_reentrant=False)
        return self._inner_forward(x, hw)


class PESwinStage(BaseModule):
    """One stage: ``depth`` blocks alternating plain and shifted windows, then the optional
    ``downsample`` (mmcv ``PatchMerging``). ``pos_embed``: the backbone's encoding (``PosEmbedSpec``,
    RoPE-Axial theta filled in), whose attention part (RPB, RoPE or None) the stage builds for each block's
    windows; ``window_fit``: see ``ShiftWindowAttention``. Other arguments: ``PESwinBlock``'s, with one
    ``drop_path_rates`` entry per block."""

    def __init__(self, embed_dims: int, num_heads: int, *, feedforward_channels: int, depth: int, window_size: int,
                 window_fit: str, mask_padding: bool, qkv_bias: bool, qk_scale: Optional[float], drop_rate: float,
                 attn_drop_rate: float,
                 drop_path_rates: Sequence[float], downsample: Optional[nn.Module], act_cfg: dict, norm_cfg: dict,
                 with_cp: bool, pos_embed: PosEmbedSpec):
        super().__init__()
        # all of the stage's encodings before its blocks: the order in which they draw their initial values
        attn_pos_embeds = [build_pos_embed(pos_embed, 'attention', num_heads=num_heads,
                                           head_dim=embed_dims // num_heads, window_size=(window_size, window_size))
                           for _ in range(depth)]
        self.blocks = ModuleList([
            PESwinBlock(embed_dims, num_heads, feedforward_channels=feedforward_channels, window_size=window_size,
                        shift=i % 2 == 1, window_fit=window_fit, mask_padding=mask_padding, qkv_bias=qkv_bias,
                        qk_scale=qk_scale,
                        drop_rate=drop_rate, attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rates[i],
                        act_cfg=act_cfg, norm_cfg=norm_cfg, with_cp=with_cp, pos_embed=attn_pos_embeds[i])
            for i in range(depth)])
        self.downsample = downsample

    def forward(self, x: torch.Tensor, hw: HW):
        """x (B, H*W, C) -> (downsampled x, its hw, stage output x, hw)."""
        for block in self.blocks:
            x = block(x, hw)
        if self.downsample is None:
            return x, hw, x, hw
        # mmcv PatchMerging's 'corner' padding (its own AdaptivePadding is off: see PESwinTransformer)
        merge_input = pad_to_multiple(x.view(x.shape[0], *hw, x.shape[2]), (2, 2), channels_last=True)
        x_down, hw_down = self.downsample(merge_input.flatten(1, 2), (merge_input.shape[1], merge_input.shape[2]))
        return x_down, hw_down, x, hw


def _rename_keys(state_dict: Dict[str, torch.Tensor], prefix: str, pattern: re.Pattern,
                 repl: Union[str, Callable[[re.Match], str]]) -> None:
    """Rename, in place and keeping the order, the keys under ``prefix`` that match ``pattern`` (``pattern.sub``
    with ``repl``)."""
    if not any(k.startswith(prefix) and pattern.search(k) for k in state_dict):
        return
    items = list(state_dict.items())
    state_dict.clear()
    for key, value in items:
        state_dict[pattern.sub(repl, key) if key.startswith(prefix) else key] = value


@register_model
class PESwinTransformer(BaseModule):
    """Swin Transformer (Liu et al., 2021) with a configurable positional encoding.

    Takes mmdet's ``SwinTransformer`` arguments (same meaning and defaults) plus ``pos_embed``:

    - 'rpb' (default): Swin's relative position bias; a drop-in for mmdet/mmseg Swin.
    - 'rope_axial' (theta ``SWIN_AXIAL_THETA``, 50, unless given) / 'rope_mixed' (theta 10): RoPE of q and k in
      window-local coordinates (only ``coords='index'``, no ``coord_aug``: others raise a ValueError),
      no bias; ``with_ape=True`` adds a learned APE.
    - 'ape' (learned, resized bicubically from the ``pretrain_img_size`` grid), 'sincos',
      'loope': additive encodings after the patch embedding.
    - 'none'.

    The encoding's modules, named as in ``PEVisionTransformer``: ``pos_embed`` acts on the tokens after the patch
    embedding (``TokenPosEmbed``: APE, sin-cos, LOOPE, a RoPE's ``with_ape`` table; None otherwise; state dicts
    with its earlier name ``token_pos_embed`` still load) and ``stages.i.blocks.j.attn.w_msa.pos_embed`` in each
    attention layer (``AttentionPosEmbed``: RPB, RoPE; None otherwise). The parsed config they were built from is
    ``pos_embed_spec`` (a ``PosEmbedSpec``, RoPE-Axial theta filled in).

    Input (B, in_channels, H, W), any H and W: the patch embedding and each stage pad as in
    mmdet. Output: tuple of (B, embed_dims * 2**i, ceil(H / s_i), ceil(W / s_i)) maps for i in
    ``out_indices``, s_i the stride of stage i.

    ``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=None)`` (a path, URL, ``hf://`` or ``timm://``
    name; ``mmpe.converters.checkpoint``) detects the checkpoint's layout and loads it (``load_pretrained``):
    mmdet/mmseg Swin as it is (full detector/segmentor checkpoints too: their 'backbone.' keys are used),
    Microsoft Swin, timm Swin and the RoPE-ViT authors' Swin RoPE converted (``mmpe.converters.convert_swin``);
    ``convert_weights`` is accepted for mmdet configs and no longer needed.
    ``use_abs_pos_embed`` exists only so that mmdet/mmseg configs work; it must be False
    (use ``pos_embed=dict(type='ape')``).

    ``window_fit`` sets the window on a stage map no larger than ``window_size`` (decided per
    forward from the map size): 'pad' (default; mmdet's behaviour, the drop-in equality) pads
    the map up to the window and keeps the shift; 'fit' (timm; official Swin and the RoPE-ViT
    authors on square maps), along each axis where the map is no larger than the window,
    shrinks the window to the map and does not shift. RoPE then uses the fitted (possibly
    non-square) window's local coordinates and RPB the fitted window's entries of its table.
    Use 'fit' to reproduce official/timm/authors' Swin features (e.g. the last stage at 224).

    ``mask_padding=True`` gives the positions that pad each stage map to whole windows no attention weight
    (-inf for them as keys; ``ShiftWindowAttention``); by default (False) they take part, as in mmdet, and are
    then the only absolute-position cue of a relative or absent encoding (docs/results.md, "Swin off its
    fine-tuning size"). Weights do not depend on it: it can be switched on a trained model.
    """

    def __init__(self, *, pretrain_img_size=224, in_channels: int = 3, embed_dims: int = 96, patch_size: int = 4,
                 window_size: int = 7, mlp_ratio: float = 4, depths: Sequence[int] = (2, 2, 6, 2),
                 num_heads: Sequence[int] = (3, 6, 12, 24), strides: Sequence[int] = (4, 2, 2, 2),
                 out_indices: Sequence[int] = (0, 1, 2, 3), qkv_bias: bool = True, qk_scale: Optional[float] = None,
                 patch_norm: bool = True, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.1, use_abs_pos_embed: bool = False, act_cfg: dict = dict(type='GELU'),
                 norm_cfg: dict = dict(type='LN'), with_cp: bool = False, pretrained: Optional[str] = None,
                 convert_weights: bool = False, frozen_stages: int = -1, init_cfg: Optional[dict] = None,
                 pos_embed: dict = dict(type='rpb'), window_fit: str = 'pad', mask_padding: bool = False):
        if pretrained is not None:
            if init_cfg is not None:
                raise ValueError('PESwinTransformer: give init_cfg or pretrained (deprecated), not both')
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        super().__init__(init_cfg=init_cfg)
        spec = PosEmbedSpec.parse(pos_embed, axial_theta=SWIN_AXIAL_THETA)
        spec.check_window_local_coords('PESwinTransformer')
        owner = 'PESwinTransformer'
        for name, value in (('in_channels', in_channels), ('embed_dims', embed_dims), ('patch_size', patch_size)):
            check_int(owner, name, value, 1)
        pretrain_img_size = check_size(owner, 'pretrain_img_size', pretrain_img_size, patch_size, 'patch_size')
        check_ints(owner, 'depths', depths, 1)
        check_ints(owner, 'num_heads', num_heads, 1)
        check_ints(owner, 'strides', strides, 1)
        check_ints(owner, 'out_indices', out_indices, 0, len(depths) - 1)
        check_int(owner, 'frozen_stages', frozen_stages, -1, len(depths))
        check_number(owner, 'mlp_ratio', mlp_ratio, 0.0, low_open=True)
        check_drop_rates(owner, drop_rate=drop_rate, attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate)
        if qk_scale is not None:
            check_number(owner, 'qk_scale', qk_scale, 0.0, low_open=True)
        for name, value in (('qkv_bias', qkv_bias), ('patch_norm', patch_norm), ('with_cp', with_cp),
                            ('convert_weights', convert_weights), ('use_abs_pos_embed', use_abs_pos_embed),
                            ('mask_padding', mask_padding)):
            check_bool(owner, name, value)
        num_stages = len(depths)
        self._check_config(spec=spec, pretrain_img_size=pretrain_img_size, embed_dims=embed_dims,
                           patch_size=patch_size, window_size=window_size, depths=depths, num_heads=num_heads,
                           strides=strides, use_abs_pos_embed=use_abs_pos_embed, window_fit=window_fit)
        self.pos_embed_spec = spec
        self.in_channels = in_channels
        self.patch_size = patch_size
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.convert_weights = convert_weights
        self.num_features = [embed_dims * 2 ** i for i in range(num_stages)]

        # mmcv's PatchEmbed and PatchMerging without their AdaptivePadding ('corner'): forward pads the
        # same way (``pad_to_multiple``) without branching on the size, so torch.compile keeps one graph
        self.patch_embed = PatchEmbed(in_channels=in_channels, embed_dims=embed_dims, conv_type='Conv2d',
                                      kernel_size=patch_size, stride=strides[0], padding=0,
                                      norm_cfg=norm_cfg if patch_norm else None)
        grid = (pretrain_img_size[0] // patch_size, pretrain_img_size[1] // patch_size)
        self.pos_embed = build_pos_embed(spec, 'token', embed_dims=embed_dims, grid_size=grid, patch_size=patch_size,
                                         in_channels=in_channels)
        self.drop_after_pos = nn.Dropout(p=drop_rate)

        dpr = torch.linspace(0, drop_path_rate, sum(depths)).tolist()
        self.stages = ModuleList()
        for i in range(num_stages):
            dims = self.num_features[i]
            downsample = PatchMerging(in_channels=dims, out_channels=2 * dims, stride=strides[i + 1], padding=0,
                                      norm_cfg=norm_cfg if patch_norm else None) if i < num_stages - 1 else None
            first = sum(depths[:i])
            self.stages.append(PESwinStage(
                dims, num_heads[i], feedforward_channels=int(mlp_ratio * dims), depth=depths[i],
                window_size=window_size, window_fit=window_fit, mask_padding=mask_padding, qkv_bias=qkv_bias,
                qk_scale=qk_scale,
                drop_rate=drop_rate, attn_drop_rate=attn_drop_rate, drop_path_rates=dpr[first:first + depths[i]],
                downsample=downsample, act_cfg=act_cfg, norm_cfg=norm_cfg, with_cp=with_cp, pos_embed=spec))
        for i in self.out_indices:
            self.add_module(f'norm{i}', build_norm_layer(norm_cfg, self.num_features[i])[1])

        self.register_state_dict_post_hook(self._to_mmdet_keys)
        self.register_load_state_dict_pre_hook(self._from_saved_keys)
        self._freeze_stages()

    @staticmethod
    def _check_config(*, spec, pretrain_img_size, embed_dims, patch_size, window_size, depths, num_heads, strides,
                      use_abs_pos_embed, window_fit) -> None:
        """The rules between arguments (each argument's type and range are checked before)."""
        num_stages = len(depths)
        if use_abs_pos_embed:
            raise ValueError("PESwinTransformer: use_abs_pos_embed=True is not supported; "
                             "use pos_embed=dict(type='ape') for a learned absolute encoding")
        if len(num_heads) != num_stages or len(strides) != num_stages:
            raise ValueError(f'PESwinTransformer: depths, num_heads and strides need one entry per stage, got '
                             f'depths={tuple(depths)}, num_heads={tuple(num_heads)}, strides={tuple(strides)}')
        if strides[0] != patch_size:
            raise ValueError(f'PESwinTransformer: strides[0] must equal patch_size (non-overlapping patch '
                             f'embedding), got strides[0]={strides[0]}, patch_size={patch_size}')
        if any(stride != 2 for stride in strides[1:]):
            raise ValueError(f'PESwinTransformer: strides[1:] must be 2 (patch merging of 2x2 neighbours), got '
                             f'strides={tuple(strides)}')
        grid = (pretrain_img_size[0] // patch_size, pretrain_img_size[1] // patch_size)
        if not (is_int(window_size) and 1 <= window_size <= min(grid)):
            raise ValueError(f'PESwinTransformer: window_size must be an int from 1 to the pretraining patch grid '
                             f'{grid[0]}x{grid[1]} (pretrain_img_size={tuple(pretrain_img_size)}, '
                             f'patch_size={patch_size}), got window_size={window_size!r}')
        if window_fit not in ('pad', 'fit'):
            raise ValueError(f"PESwinTransformer: window_fit must be 'pad' or 'fit', got {window_fit!r}")
        for i, (heads, dims) in enumerate(zip(num_heads, (embed_dims * 2 ** i for i in range(num_stages)))):
            if dims % heads:
                raise ValueError(f'PESwinTransformer: stage {i} width embed_dims * 2**{i} = {dims} is not '
                                 f'divisible by num_heads[{i}]={heads}')
            if spec.is_rope and (dims // heads) % 4:
                raise ValueError(f"PESwinTransformer: pos_embed type={spec.type!r} needs a head dimension divisible by "
                                 f"4, but stage {i} has embed_dims * 2**{i} / num_heads[{i}] = {dims} / {heads} "
                                 f"= {dims // heads}; change embed_dims or num_heads")

    # --- state-dict keys: exactly mmdet's -------------------------------------------------
    @staticmethod
    def _to_mmdet_keys(module, state_dict, prefix, local_metadata) -> None:
        """state_dict hook: ``w_msa.pos_embed.relative_position_*`` -> ``w_msa.relative_position_*``."""
        _rename_keys(state_dict, prefix, _OURS_RPB, r'\1\2')

    @staticmethod
    def _from_saved_keys(module, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                         error_msgs) -> None:
        """load_state_dict pre-hook (torch's hook signature): mmdet's ``w_msa.relative_position_*`` ->
        ``w_msa.pos_embed.relative_position_*``, and the token encoding's earlier name ``token_pos_embed.*`` ->
        ``pos_embed.*``."""
        _rename_keys(state_dict, prefix, _MMDET_RPB, r'\1pos_embed.\2')
        old_token = re.compile('^' + re.escape(prefix + _OLD_TOKEN_POS_EMBED))
        _rename_keys(state_dict, prefix, old_token, lambda _: prefix + 'pos_embed.')

    # --- training mode and freezing ------------------------------------------------------
    def train(self, mode: bool = True):
        """Set the mode, keeping frozen stages in eval mode."""
        super().train(mode)
        self._freeze_stages()
        return self

    def _freeze_stages(self) -> None:
        """frozen_stages >= 0 freezes the patch embedding (and token encoding); k >= 1 also
        stages 0..k-1 and their output norms (mmdet's semantics)."""
        if self.frozen_stages < 0:
            return
        frozen = [self.patch_embed, self.drop_after_pos]
        if self.pos_embed is not None:
            frozen.append(self.pos_embed)
        for i in range(self.frozen_stages):
            frozen.append(self.stages[i])
            if i in self.out_indices:
                frozen.append(getattr(self, f'norm{i}'))
        for m in frozen:
            m.eval()
            for param in m.parameters():
                param.requires_grad = False

    # --- weights ------------------------------------------------------------------------------
    def init_weights(self) -> None:
        """From scratch (init_cfg None): mmdet's init (Linear trunc-normal 0.02, LayerNorm 1/0),
        encodings keep their own init. Pretrained: ``load_pretrained`` of init_cfg's checkpoint and prefix
        (``convert_weights`` is not needed: every layout is converted as it needs)."""
        logger = MMLogger.get_current_instance()
        if self.init_cfg is None:
            logger.warning(f'No pre-trained weights for {type(self).__name__}, training starts from scratch')
            encodings = set(self.pos_embed.modules()) if self.pos_embed is not None else set()
            for m in self.modules():
                if m in encodings:
                    continue
                if isinstance(m, nn.Linear):
                    trunc_normal_init(m, std=0.02, bias=0.0)
                elif isinstance(m, nn.LayerNorm):
                    constant_init(m, 1.0, bias=0.0)
            return
        if not (isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained'
                and 'checkpoint' in self.init_cfg):
            raise ValueError(f"{type(self).__name__} init_cfg must be None or dict(type='Pretrained', "
                             f'checkpoint=...), got {self.init_cfg!r}')
        loaded = self.load_pretrained(self.init_cfg['checkpoint'], self.init_cfg.get('prefix'))
        if loaded.layout in ('mmdet', 'mmpe') and self.convert_weights:
            logger.info(f'{type(self).__name__}: convert_weights=True ignored: checkpoint {loaded.checkpoint} is '
                        f'already in the mmdet layout')

    def load_pretrained(self, checkpoint: str, prefix: Optional[str] = None) -> PretrainedLoad:
        """Load a Swin checkpoint of any layout ``mmpe.converters.swin_layout`` detects (mmdet/mmseg, mmpe,
        Microsoft, timm, the RoPE-ViT authors' Swin RoPE), named by path, hf://, timm:// or URL, through
        ``mmpe.converters.load_pretrained`` (layout detected and logged, converted for ``pos_embed_spec``,
        relative position bias tables resized to the window, ignored, missing (but the derived
        relative_position_index) and unexpected keys logged; a checkpoint of another model is an error)."""
        return load_pretrained(self, checkpoint, family='Swin', prefix=prefix, pos_embed=self.pos_embed_spec)

    # --- forward ------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """x (B, in_channels, H, W) -> tuple of NCHW maps at ``out_indices``."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'{type(self).__name__} expects images (B, in_channels={self.in_channels}, H, W), '
                             f'got shape {tuple(x.shape)}')
        images = patch_embed_input(x, self.patch_size)
        x, hw = self.patch_embed(images)
        if self.pos_embed is not None:
            x = self.pos_embed(x, hw, images)
        x = self.drop_after_pos(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x, hw, out, out_hw = stage(x, hw)
            if i in self.out_indices:
                out = getattr(self, f'norm{i}')(out)
                outs.append(out.view(-1, *out_hw, self.num_features[i]).permute(0, 3, 1, 2).contiguous())
        return tuple(outs)
