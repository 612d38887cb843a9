"""One builder from a ``pos_embed`` config (a dict or a ``PosEmbedSpec``) to the modules a backbone needs, and the
encodings by name."""
from typing import Optional

from torch import nn

from .absolute import LearnedPosEmbed, LOOPEPosEmbed, SinCosPosEmbed
from .rope import RoPEAxial, RoPEMixed
from .rpb import RelativePositionBias
from .spec import PosEmbedSpec, format_choices

# The encoding types each backbone accepts: RPB needs Swin's windows.
BACKBONE_ENCODINGS = {'swin': ('rpb', 'rope_axial', 'rope_mixed', 'ape', 'sincos', 'loope', 'none'),
                      'vit': ('ape', 'sincos', 'rope_axial', 'rope_mixed', 'loope', 'none')}
# Encodings by name, the one list the study, the tools, the tests and the README use: every type,
# RoPE with a learned APE as well (the RoPE-ViT paper's RoPE + APE rows), and DINOv3's RoPE (timm's
# rope_type='dinov3': axial, centred [-1, 1] coordinates, rotate_half pairing, rows first; window-local
# coordinates 'centered' are PEVisionTransformer's only, so PESwinTransformer refuses it).
ENCODING_PRESETS = {
    'ape': dict(type='ape'),
    'sincos': dict(type='sincos'),
    'rope_axial': dict(type='rope_axial'),
    'rope_mixed': dict(type='rope_mixed'),
    'rope_axial+ape': dict(type='rope_axial', with_ape=True),
    'rope_mixed+ape': dict(type='rope_mixed', with_ape=True),
    'rope_dinov3': dict(type='rope_axial', theta=100.0, coords='centered', pairing='half', axes='yx'),
    'loope': dict(type='loope'),
    'rpb': dict(type='rpb'),
    'none': dict(type='none'),
}
ROLES = ('token', 'attention')


def build_pos_embed(cfg, role: str, *, embed_dims: Optional[int] = None, grid_size=None,
                    patch_size: Optional[int] = None, in_channels: int = 3, num_prefix_tokens: int = 0,
                    num_heads: Optional[int] = None, head_dim: Optional[int] = None, window_size=None,
                    axial_theta: Optional[float] = None) -> Optional[nn.Module]:
    """Build the part of encoding ``cfg`` (a ``PosEmbedSpec``, or a dict such as
    ``dict(type='rope_mixed', with_ape=True)``, parsed here) that acts in ``role``; None when the encoding has
    no part there.

    role='token': an additive ``TokenPosEmbed`` (APE, sin-cos, LOOPE, or the APE of a
        ``with_ape`` RoPE). Context: embed_dims, grid_size (reference patch grid),
        patch_size and in_channels (LOOPE), num_prefix_tokens.
    role='attention': an ``AttentionPosEmbed`` for one attention layer (RoPE, RPB).
        Context: num_heads, head_dim, window_size (RPB; the window the layer attends in),
        axial_theta (RoPE-Axial's theta when the spec has none: the backbone's default, e.g.
        ``mmpe.models.vit.VIT_AXIAL_THETA``).
    """
    spec = PosEmbedSpec.parse(cfg, axial_theta=axial_theta)
    kind = spec.type
    if role == 'token':
        if spec.has_learned_ape:
            return LearnedPosEmbed(embed_dims, grid_size, num_prefix_tokens, spec.embed_prefix)
        if kind == 'sincos':
            if embed_dims % 4:
                raise ValueError(f'sincos needs embed_dims divisible by 4, got {embed_dims}')
            return SinCosPosEmbed(embed_dims, num_prefix_tokens)
        if kind == 'loope':
            if embed_dims % 2:
                raise ValueError(f'loope needs an even embed_dims, got {embed_dims}')
            return LOOPEPosEmbed(embed_dims, patch_size=patch_size, in_channels=in_channels,
                                 num_prefix_tokens=num_prefix_tokens, context=spec.context, grid_size=grid_size)
        return None
    if role == 'attention':
        if spec.is_rope and head_dim % 4:
            raise ValueError(f'{kind} needs a head dimension divisible by 4, got head_dim={head_dim}')
        if kind == 'rope_axial':
            if spec.theta is None:
                raise ValueError("pos_embed type='rope_axial' has no theta: give theta, or axial_theta (the "
                                 "backbone's default) to build_pos_embed")
            return RoPEAxial(head_dim, spec.theta, spec.pairing, spec.axes, spec.scaling)
        if kind == 'rope_mixed':
            return RoPEMixed(num_heads, head_dim, spec.theta, spec.scaling)
        if kind == 'rpb':
            if window_size is None:
                raise ValueError("pos_embed type='rpb' needs window attention (a Swin backbone); "
                                 "for global attention use 'ape', 'sincos', 'rope_axial', 'rope_mixed' or 'loope'")
            return RelativePositionBias(window_size, num_heads)
        return None
    raise ValueError(f'build_pos_embed role={role!r} is not supported; accepted: {format_choices(ROLES)}')
