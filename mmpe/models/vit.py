"""Plain Vision Transformer backbone (ViT / ViTDet) whose positional encoding is one config key."""
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from timm.layers import DropPath, LayerScale, Mlp, PatchEmbed, SwiGLU
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..converters.backbone import PretrainedLoad, load_pretrained
from ..pos_embed import BACKBONE_ENCODINGS, PosEmbedSpec, build_pos_embed
from ..pos_embed.cache import table_cache
from ..pos_embed.grid import HW, crop_to_tokens, pad_to_multiple, patch_embed_input
from ..pos_embed.rope import IDENTITY, Affine, coords_affine
from .attention import PosAttention
from .checks import check_bool, check_drop_rates, check_int, check_ints, check_number, check_size, is_int
from .registry import register_model

VIT_ENCODINGS = BACKBONE_ENCODINGS['vit']
# RoPE-Axial's theta when pos_embed gives none: the RoPE-ViT authors' ViT (and timm's) value.
VIT_AXIAL_THETA = 100.0
MLP_TYPES = ('mlp', 'swiglu')
# RoPE coordinate modes of window attention: window-local indices, or 'centered' over the window
WINDOW_COORDS = ('index', 'centered')


@table_cache(maxsize=16)
def window_padding_mask(hw: HW, window_size: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Additive key mask (num_windows, 1, 1, ws*ws): 0 for grid cells, -inf for the padding
    that rounds the H x W grid up to whole windows (windows in row-major order)."""
    ws = window_size
    rows, cols = (hw[0] + ws - 1) // ws, (hw[1] + ws - 1) // ws
    # comparisons, not a slice assignment: no branch on the size under torch.compile
    valid = ((torch.arange(rows * ws, device=device) < hw[0])[:, None]
             & (torch.arange(cols * ws, device=device) < hw[1])[None, :])
    valid = valid.view(rows, ws, cols, ws).transpose(1, 2).reshape(rows * cols, 1, 1, ws * ws)
    return torch.zeros(valid.shape, dtype=dtype, device=device).masked_fill(~valid, float('-inf'))


class PEViTBlock(nn.Module):
    """Pre-norm transformer block: x + LS1(Attn(LN1(x))), then x + LS2(MLP(LN2(x))).

    Global attention sees all P + H*W tokens, RoPE at the patch coordinates transformed by
    ``affine`` (see ``PEVisionTransformer``). With ``window_size`` > 0 (ViTDet) the grid is
    padded to whole windows, each window attends inside itself (padding masked out, RoPE at the
    window-local coordinates 0 .. ws-1 transformed by ``window_affine``, the forward's ``affine``
    not used), and the result is cropped back; prefix tokens (CLS, registers) skip the attention of
    such a block (its residual leaves them unchanged) but still go through the MLP.

    Args:
        embed_dims: C.  num_heads: h.  mlp_ratio: MLP hidden width / C.  qkv_bias: qkv bias.
        layer_scale_init_value: LayerScale init (timm ``ls1/ls2.gamma``), None for no LayerScale.
        drop_rate: dropout after attention projection and in the MLP.  attn_drop_rate: attention dropout.
        drop_path: stochastic depth rate.  window_size: 0 for global attention.
        pos_embed: the backbone's encoding (``PosEmbedSpec``, RoPE-Axial theta filled in) or None; the block
            builds its attention part (``attn.pos_embed``: RoPE, or None) and, with windows, the RoPE
            coordinate transform of the window grid ``window_affine`` (``coords_affine``).
        num_prefix_tokens: P.  norm_eps: LayerNorm eps.
        mask_k_bias: the k part of the qkv bias fixed at zero (``KMaskedBiasLinear``).
        mlp_type: 'mlp' (timm ``Mlp``, GELU) or 'swiglu' (timm ``SwiGLU``: ``fc1_g``, ``fc1_x``, ``fc2``,
            hidden width int(C mlp_ratio) rounded up to a multiple of ``swiglu_align_to`` if > 0).
    """

    def __init__(self, embed_dims: int, num_heads: int, *, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 layer_scale_init_value: Optional[float] = None, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path: float = 0.0, window_size: int = 0, pos_embed: Optional[PosEmbedSpec] = None,
                 num_prefix_tokens: int = 0, norm_eps: float = 1e-6, mask_k_bias: bool = False,
                 mlp_type: str = 'mlp', swiglu_align_to: int = 0):
        super().__init__()
        attn_pos_embed = None if pos_embed is None else build_pos_embed(
            pos_embed, 'attention', num_heads=num_heads, head_dim=embed_dims // num_heads)
        self.window_size = window_size
        self.window_affine = IDENTITY
        if window_size and pos_embed is not None:
            self.window_affine = coords_affine((window_size, window_size), (window_size, window_size),
                                               pos_embed.coords, None, pos_embed.normalize_coords)
        self.num_prefix_tokens = num_prefix_tokens
        self.norm1 = nn.LayerNorm(embed_dims, eps=norm_eps)
        self.attn = PosAttention(embed_dims, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop_rate,
                                 proj_drop=drop_rate, pos_embed=attn_pos_embed, mask_k_bias=mask_k_bias)
        self.ls1 = LayerScale(embed_dims, layer_scale_init_value) if layer_scale_init_value else nn.Identity()
        self.norm2 = nn.LayerNorm(embed_dims, eps=norm_eps)
        hidden = int(embed_dims * mlp_ratio)
        if mlp_type == 'swiglu':
            self.mlp = SwiGLU(embed_dims, hidden, drop=drop_rate, align_to=swiglu_align_to)
        else:
            self.mlp = Mlp(embed_dims, hidden, drop=drop_rate)
        self.ls2 = LayerScale(embed_dims, layer_scale_init_value) if layer_scale_init_value else nn.Identity()
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, hw: HW, affine: Affine = IDENTITY) -> torch.Tensor:
        """x (B, P + H*W, C) -> (B, P + H*W, C); hw the (H, W) patch grid; affine (a_x, b_x, a_y, b_y)
        the RoPE coordinate transform of global attention."""
        y = self.norm1(x)
        if self.window_size:
            y = self.window_attention(y, hw)
        else:
            y = self.attn(y, hw, self.num_prefix_tokens, affine=affine)
        x = x + self.drop_path(self.ls1(y))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))

    def window_attention(self, x: torch.Tensor, hw: HW) -> torch.Tensor:
        """Attention inside ws x ws windows of the grid tokens; zeros for the prefix tokens."""
        b, _, c = x.shape
        (h, w), ws, p = hw, self.window_size, self.num_prefix_tokens
        grid = pad_to_multiple(x[:, p:].reshape(b, h, w, c), (ws, ws), channels_last=True)
        rows, cols = grid.shape[1] // ws, grid.shape[2] // ws
        windows = grid.reshape(b, rows, ws, cols, ws, c).transpose(2, 3).reshape(b * rows * cols, ws * ws, c)
        mask = None
        # compiled: one graph for every size (a zero mask when the grid fills the windows)
        if torch.compiler.is_compiling() or grid.shape[1:3] != (h, w):
            mask = window_padding_mask((h, w), ws, x.device, x.dtype).repeat(b, 1, 1, 1)
        out = self.attn(windows, (ws, ws), 0, mask, self.window_affine)
        out = out.view(b, rows, cols, ws, ws, c).transpose(2, 3).reshape(b, rows * ws, cols * ws, c)
        out = crop_to_tokens(out, hw)
        return F.pad(out, (0, 0, p, 0)) if p else out


@register_model
class PEVisionTransformer(BaseModule):
    """Vision Transformer backbone for mmdet/mmseg with a one-key positional encoding.

    Input (B, in_channels, H, W), any H, W >= patch_size: padded right/bottom to a multiple
    of the patch; output a tuple of NCHW maps (B, embed_dims, ceil(H/p), ceil(W/p)), one per
    ``out_indices`` block.

    Args:
        img_size: reference image size (int or (H, W)); its patch grid is the grid of the
            learned APE table and of LOOPE's context='mlp' head. Inputs may have any size.
        patch_size, in_channels, embed_dims, depth, num_heads, mlp_ratio, qkv_bias: as in ViT.
        mask_k_bias: keep the k part of the qkv bias at zero (DINOv3's ``LinearKMaskedBias``, timm
            Eva's q_bias / v_bias); needs qkv_bias.
        mlp_type: 'mlp' (GELU MLP) or 'swiglu' (timm's ``SwiGLU``, DINOv3 S+ / H+); its hidden width
            int(embed_dims * mlp_ratio) is rounded up to a multiple of ``swiglu_align_to`` (timm
            Eva's ``swiglu_align_to``; 8 for DINOv3) when > 0.
        layer_scale_init_value: LayerScale init value (DeiT-III 1e-6, RoPE-ViT 1e-5), None: off.
        drop_rate, attn_drop_rate, drop_path_rate: dropout, attention dropout, stochastic depth
            (linearly increasing over blocks up to drop_path_rate).
        with_cls_token: prepend a CLS token (dropped from the output maps).
        num_reg_tokens: register ('storage') tokens after the CLS token (timm ``reg_token``, DINOv3: 4),
            dropped from the output maps. Like CLS, they are prefix tokens: never rotated by RoPE,
            and given APE only with ``embed_prefix=True``.
        pos_embed: the encoding, ``dict(type=..., ...)`` with type one of 'ape', 'sincos',
            'rope_axial', 'rope_mixed' (both RoPE also ``with_ape=True``), 'loope', 'none'.
            RoPE-Axial uses theta ``VIT_AXIAL_THETA`` (100) unless given. RoPE coordinates:
            ``coords='index'`` (default) the patch column and row; ``coords='interpolate'``
            (x + 0.5) W_ref / W - 0.5 and (y + 0.5) H_ref / H - 0.5 on an H x W grid, where
            (H_ref, W_ref) = img_size // patch_size: every grid spans the reference grid's
            extent, and at the reference grid it equals 'index'; ``coords='centered'`` DINOv3's
            patch centres in [-1, 1] (times 2 pi), normalised per ``normalize_coords``.
            RoPE-Axial's ``pairing='half'`` and ``axes='yx'`` give DINOv3's channel layout; DINOv3
            is ``dict(type='rope_axial', theta=100, coords='centered', pairing='half', axes='yx')``.
            ``coord_aug=dict(shift=s, jitter=j, rescale=r)`` (DINOv3's augmentation; default None)
            transforms them at random in training only (never in eval): one draw per forward,
            shared by every block and every image (its RoPE tables are built once per forward, not
            cached), from torch's global generator (seeded by mmengine's
            ``randomness.seed``, saved and restored by ``mmpe.engine.hooks.RandomStateHook``, so
            resumed runs repeat); see ``mmpe.pos_embed.rope.coords_affine``.
        window_size: 0 for global attention in every block; > 0 for ViTDet window attention
            in all blocks except ``global_attn_indices`` (padding is masked; prefix tokens only
            take part in the attention of global blocks, see ``PEViTBlock``). Windows use
            window-local RoPE coordinates: indices 0 .. ws-1, or with ``coords='centered'``
            centred coordinates normalised over the ws x ws window; window_size > 0 needs RoPE
            ``coords`` 'index' or 'centered' and ``coord_aug=None`` (ValueError otherwise).
        out_indices: blocks (int or sequence, negative from the end) whose outputs are returned.
        final_norm: apply the final LayerNorm ``norm`` to the output of the last block.
        norm_eps: LayerNorm epsilon (1e-6 as timm).
        frozen_stages: -1 trains all; k >= 0 freezes patch embedding, CLS and register tokens and token
            encoding, plus blocks 0..k-1 (and ``norm`` when k == depth).
        with_cp: gradient checkpointing of every block in training.
        init_cfg: mmengine init config. ``dict(type='Pretrained', checkpoint=..., prefix=None)``
            with a path, URL, ``hf://`` or ``timm://`` name (``mmpe.converters.checkpoint``): the layout is
            detected (timm Eva: RoPE-ViT, DINOv3; timm VisionTransformer, the RoPE-ViT authors' DeiT-III,
            mmpe's own; .pth or .safetensors) and converted on the fly; missing, unexpected and
            ignored keys are logged.

    The encoding's modules, named as in ``PESwinTransformer``: ``pos_embed`` acts on the tokens after the patch
    embedding (``TokenPosEmbed``: APE, sin-cos, LOOPE, a RoPE's ``with_ape`` table; None otherwise) and
    ``blocks.i.attn.pos_embed`` in each attention layer (``AttentionPosEmbed``: RoPE; None otherwise). The
    parsed config they were built from is ``pos_embed_spec`` (a ``PosEmbedSpec``, RoPE-Axial theta filled in).

    Weight decay: every encoding parameter lives under a module named ``pos_embed`` (the
    token encoding ``pos_embed.*`` and each attention's ``blocks.i.attn.pos_embed.freqs``),
    so an optimizer config can exclude them, the CLS token and the norms with::

        paramwise_cfg=dict(custom_keys={'pos_embed': dict(decay_mult=0.),
                                        'cls_token': dict(decay_mult=0.),
                                        'norm': dict(decay_mult=0.)})
    """

    def __init__(self, *, img_size: Union[int, Sequence[int]] = 224, patch_size: int = 16, in_channels: int = 3,
                 embed_dims: int = 768, depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, layer_scale_init_value: Optional[float] = None, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0, with_cls_token: bool = True,
                 pos_embed: dict = dict(type='ape'), window_size: int = 0, global_attn_indices: Sequence[int] = (),
                 out_indices: Union[int, Sequence[int]] = -1, final_norm: bool = True, norm_eps: float = 1e-6,
                 frozen_stages: int = -1, with_cp: bool = False, num_reg_tokens: int = 0, mask_k_bias: bool = False,
                 mlp_type: str = 'mlp', swiglu_align_to: int = 0, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        spec = PosEmbedSpec.parse(pos_embed, axial_theta=VIT_AXIAL_THETA)
        if spec.type not in VIT_ENCODINGS:
            raise ValueError(f'PEVisionTransformer pos_embed type={spec.type!r} is not supported; accepted: '
                             f'{", ".join(map(repr, VIT_ENCODINGS))}')
        owner = 'PEVisionTransformer'
        for name, value in (('patch_size', patch_size), ('in_channels', in_channels), ('embed_dims', embed_dims),
                            ('depth', depth), ('num_heads', num_heads)):
            check_int(owner, name, value, 1)
        if embed_dims % num_heads:
            raise ValueError(f'{owner}: embed_dims={embed_dims} must be divisible by num_heads={num_heads}')
        img_size = check_size(owner, 'img_size', img_size, patch_size, 'patch_size')
        check_number(owner, 'mlp_ratio', mlp_ratio, 0.0, low_open=True)
        check_drop_rates(owner, drop_rate=drop_rate, attn_drop_rate=attn_drop_rate, drop_path_rate=drop_path_rate)
        if layer_scale_init_value is not None:
            check_number(owner, 'layer_scale_init_value', layer_scale_init_value, 0.0, low_open=True)
        check_number(owner, 'norm_eps', norm_eps, 0.0, low_open=True)
        for name, value in (('qkv_bias', qkv_bias), ('with_cls_token', with_cls_token), ('final_norm', final_norm),
                            ('with_cp', with_cp), ('mask_k_bias', mask_k_bias)):
            check_bool(owner, name, value)
        check_int(owner, 'window_size', window_size, 0)
        check_int(owner, 'num_reg_tokens', num_reg_tokens, 0)
        check_int(owner, 'swiglu_align_to', swiglu_align_to, 0)
        out_indices = [out_indices] if is_int(out_indices) else out_indices
        check_ints(owner, 'out_indices', out_indices, -depth, depth - 1)
        check_ints(owner, 'global_attn_indices', global_attn_indices, 0, depth - 1, min_len=0)
        check_int(owner, 'frozen_stages', frozen_stages, -1, depth)
        if window_size:
            spec.check_window_local_coords(f'PEVisionTransformer with window_size={window_size}', WINDOW_COORDS)
        if mlp_type not in MLP_TYPES:
            raise ValueError(f'mlp_type={mlp_type!r} is not supported; accepted: {", ".join(map(repr, MLP_TYPES))}')
        if swiglu_align_to and mlp_type != 'swiglu':
            raise ValueError(f"swiglu_align_to={swiglu_align_to} must be 0, or positive with mlp_type='swiglu' "
                             f'(got mlp_type={mlp_type!r})')

        self.pos_embed_spec = spec
        self.patch_size = patch_size
        self.in_channels = in_channels
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.num_prefix_tokens = int(with_cls_token) + num_reg_tokens
        self.out_indices = sorted(i % depth for i in out_indices)
        self.frozen_stages = frozen_stages
        self.with_cp = with_cp
        self.ref_grid = (img_size[0] // patch_size, img_size[1] // patch_size)

        self.patch_embed = PatchEmbed(None, patch_size, in_channels, embed_dims, output_fmt='NHWC',
                                      strict_img_size=False)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dims)) if with_cls_token else None
        self.reg_token = nn.Parameter(torch.zeros(1, num_reg_tokens, embed_dims)) if num_reg_tokens else None
        self.pos_embed = build_pos_embed(
            spec, 'token', embed_dims=embed_dims, grid_size=self.ref_grid,
            patch_size=patch_size, in_channels=in_channels, num_prefix_tokens=self.num_prefix_tokens)
        self.pos_drop = nn.Dropout(drop_rate)
        drop_paths = torch.linspace(0, drop_path_rate, depth).tolist()
        self.blocks = nn.ModuleList(
            PEViTBlock(embed_dims, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                       layer_scale_init_value=layer_scale_init_value, drop_rate=drop_rate,
                       attn_drop_rate=attn_drop_rate, drop_path=drop_paths[i],
                       window_size=0 if i in global_attn_indices else window_size, pos_embed=spec,
                       num_prefix_tokens=self.num_prefix_tokens, norm_eps=norm_eps, mask_k_bias=mask_k_bias,
                       mlp_type=mlp_type, swiglu_align_to=swiglu_align_to)
            for i in range(depth))
        self.norm = nn.LayerNorm(embed_dims, eps=norm_eps) if final_norm else None
        self._init_default_weights()
        self._freeze_stages()

    def _init_default_weights(self) -> None:
        """timm's ViT init: truncated normal (std .02) for block Linears, the CLS and register tokens;
        encodings keep their own init (e.g. LOOPE's zero head)."""
        for m in self.blocks.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for token in (self.cls_token, self.reg_token):
            if token is not None:
                nn.init.trunc_normal_(token, std=0.02)

    def init_weights(self) -> None:
        if isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained':
            self.load_pretrained(self.init_cfg['checkpoint'], self.init_cfg.get('prefix'))
        else:
            super().init_weights()

    def load_pretrained(self, checkpoint: str, prefix: Optional[str] = None) -> PretrainedLoad:
        """Load a ViT checkpoint of any layout ``mmpe.converters.timm_vit_layout`` detects (timm Eva
        or VisionTransformer, the RoPE-ViT authors' DeiT-III, Meta's and transformers' DINOv3, mmpe), named by
        path, hf://, timm:// or URL, through ``mmpe.converters.load_pretrained`` (layout detected and logged,
        converted; a learned APE table of another square grid resized (bicubic) to this model's reference grid;
        ignored, missing and unexpected keys logged; a checkpoint of another model is an error)."""
        return load_pretrained(self, checkpoint, family='ViT', prefix=prefix, num_heads=self.num_heads,
                               grid_size=self.ref_grid)

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        modules = [self.patch_embed, self.pos_embed, *self.blocks[:self.frozen_stages]]
        if self.frozen_stages == len(self.blocks):
            modules.append(self.norm)
        for m in modules:
            if m is not None:
                m.eval()
                m.requires_grad_(False)
        for token in (self.cls_token, self.reg_token):
            if token is not None:
                token.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        return self

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """x (B, in_channels, H, W) -> maps (B, embed_dims, ceil(H/p), ceil(W/p)) per out index."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'PEVisionTransformer expects input (B, in_channels={self.in_channels}, H, W), '
                             f'got shape {tuple(x.shape)}')
        p = self.patch_size
        if x.shape[2] < p or x.shape[3] < p:
            raise ValueError(f'input {x.shape[2]}x{x.shape[3]} is smaller than one patch (patch_size={p})')
        images = patch_embed_input(x, p)
        tokens = self.patch_embed(images)  # (B, H', W', C)
        b, h, w, c = tokens.shape
        hw = (h, w)
        tokens = tokens.reshape(b, h * w, c)
        prefix = [t.expand(b, -1, -1) for t in (self.cls_token, self.reg_token) if t is not None]
        if prefix:
            tokens = torch.cat([*prefix, tokens], dim=1)
        if self.pos_embed is not None:
            tokens = self.pos_embed(tokens, hw, images)
        tokens = self.pos_drop(tokens)
        spec = self.pos_embed_spec
        affine = coords_affine(hw, self.ref_grid, spec.coords, spec.coord_aug if self.training else None,
                               spec.normalize_coords)
        outs = []
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            if self.with_cp and self.training and tokens.requires_grad:
                tokens = checkpoint(block, tokens, hw, affine, use_reentrant=False)
            else:
                tokens = block(tokens, hw, affine)
            if i == last and self.norm is not None:
                tokens = self.norm(tokens)
            if i in self.out_indices:
                outs.append(tokens[:, self.num_prefix_tokens:].transpose(1, 2).reshape(b, c, h, w))
        return tuple(outs)
