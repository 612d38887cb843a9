"""One builder from a config dict to the modules a backbone needs."""
from typing import Optional, Tuple

from torch import nn

from .absolute import LearnedPosEmbed, LOOPEPosEmbed, SinCosPosEmbed
from .rope import AXES, COORDS, NORMALIZE_COORDS, PAIRINGS, RoPEAxial, RoPEMixed
from .rpb import RelativePositionBias

# Accepted parameters of each encoding type, with their defaults.
ENCODINGS = {
    'ape': dict(embed_prefix=False),
    'sincos': dict(),
    'rope_axial': dict(theta=None, with_ape=False, embed_prefix=False, coords='index', normalize_coords='separate',
                       coord_aug=None, pairing='interleaved', axes='xy'),
    'rope_mixed': dict(theta=10.0, with_ape=False, embed_prefix=False, coords='index', normalize_coords='separate',
                       coord_aug=None),
    'loope': dict(context='conv'),
    'rpb': dict(),
    'none': dict(),
}
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
# The coordinate augmentation's parameters with their no-op values (``mmpe.pos_embed.rope.coords_affine``
# defines them, and the accepted values of coords, normalize_coords, pairing and axes).
COORD_AUG = dict(shift=0.0, jitter=1.0, rescale=1.0)


def _fmt(values) -> str:
    return ', '.join(repr(v) for v in values)


def _check_choice(name: str, value, accepted) -> None:
    if value not in accepted:
        raise ValueError(f'pos_embed {name}={value!r} is not supported; accepted: {_fmt(accepted)}')


def parse_pos_embed_cfg(cfg: dict) -> Tuple[str, dict]:
    """Validate ``cfg`` and return (type, parameters with defaults filled in).

    Raises ValueError naming the bad parameter and what is accepted.
    """
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise ValueError(f"pos_embed must be a dict with a 'type' key, one of {_fmt(ENCODINGS)}; got {cfg!r}")
    params = dict(cfg)
    kind = params.pop('type')
    if kind not in ENCODINGS:
        raise ValueError(f'pos_embed type={kind!r} is not supported; accepted types: {_fmt(ENCODINGS)}')
    unknown = sorted(set(params) - set(ENCODINGS[kind]))
    if unknown:
        accepted = _fmt(ENCODINGS[kind]) if ENCODINGS[kind] else 'none'
        raise ValueError(f'pos_embed type={kind!r} got unknown parameter(s) {_fmt(unknown)}; accepted: {accepted}')
    params = {**ENCODINGS[kind], **params}
    theta = params.get('theta')
    if theta is not None and not (isinstance(theta, (int, float)) and theta > 0):
        raise ValueError(f'pos_embed theta must be a positive number, got {theta!r}')
    if kind.startswith('rope'):
        _check_choice('coords', params['coords'], COORDS)
        _check_choice('normalize_coords', params['normalize_coords'], NORMALIZE_COORDS)
        if params['normalize_coords'] != 'separate' and params['coords'] != 'centered':
            raise ValueError(f"pos_embed normalize_coords={params['normalize_coords']!r} needs coords='centered', "
                             f"got coords={params['coords']!r}")
        params['coord_aug'] = _parse_coord_aug(params['coord_aug'])
    if kind == 'rope_axial':
        _check_choice('pairing', params['pairing'], PAIRINGS)
        _check_choice('axes', params['axes'], AXES)
    return kind, params


def _parse_coord_aug(aug) -> Optional[dict]:
    """None, or ``dict(shift=s, jitter=j, rescale=r)`` with the missing keys at their no-op values."""
    if aug is None:
        return None
    if not isinstance(aug, dict):
        raise ValueError(f'pos_embed coord_aug must be None or a dict with keys {_fmt(COORD_AUG)}, got {aug!r}')
    unknown = sorted(set(aug) - set(COORD_AUG))
    if unknown:
        raise ValueError(f'pos_embed coord_aug got unknown key(s) {_fmt(unknown)}; accepted: {_fmt(COORD_AUG)}')
    aug = {**COORD_AUG, **aug}
    for key, low in (('shift', 0.0), ('jitter', 1.0), ('rescale', 1.0)):
        value = aug[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value < float('inf'):
            raise ValueError(f'pos_embed coord_aug {key} must be a finite number >= {low:g}, got {value!r}')
        aug[key] = float(value)
    return aug


def check_window_local_coords(kind: str, params: dict, owner: str, coords=('index',)) -> None:
    """Raise unless a RoPE encoding uses one of ``coords`` (the modes ``owner`` implements in windows)
    without augmentation: ``owner`` attends in windows, whose RoPE coordinates are window-local
    (index: 0 .. window-1; 'centered': normalised over the window), so 'interpolate' (relative to the
    pretraining grid) and coord_aug have no meaning there."""
    if kind.startswith('rope') and (params['coords'] not in coords or params['coord_aug'] is not None):
        raise ValueError(f"{owner} attends in windows with window-local RoPE coordinates: pos_embed needs "
                         f"coords in ({_fmt(coords)}) and coord_aug=None, got coords={params['coords']!r}, "
                         f"coord_aug={params['coord_aug']!r} (the other options are for global attention: "
                         f"PEVisionTransformer with window_size=0)")


def build_pos_embed(cfg: dict, role: str, *, embed_dims: Optional[int] = None, grid_size=None,
                    patch_size: Optional[int] = None, in_channels: int = 3, num_prefix_tokens: int = 0,
                    num_heads: Optional[int] = None, head_dim: Optional[int] = None, window_size=None,
                    axial_theta: float = 100.0) -> Optional[nn.Module]:
    """Build the part of encoding ``cfg`` (e.g. ``dict(type='rope_mixed', with_ape=True)``)
    that acts in ``role``; None when the encoding has no part there.

    role='token': an additive ``TokenPosEmbed`` (APE, sin-cos, LOOPE, or the APE of a
        ``with_ape`` RoPE). Context: embed_dims, grid_size (reference patch grid),
        patch_size and in_channels (LOOPE), num_prefix_tokens.
    role='attention': an ``AttentionPosEmbed`` for one attention layer (RoPE, RPB).
        Context: num_heads, head_dim, window_size (RPB; the window the layer attends in),
        axial_theta (the backbone's default RoPE-Axial theta: 100 for ViT, 50 for Swin).
    """
    kind, p = parse_pos_embed_cfg(cfg)
    if role == 'token':
        if kind == 'ape' or (kind.startswith('rope') and p['with_ape']):
            return LearnedPosEmbed(embed_dims, grid_size, num_prefix_tokens, p['embed_prefix'])
        if kind == 'sincos':
            if embed_dims % 4:
                raise ValueError(f'sincos needs embed_dims divisible by 4, got {embed_dims}')
            return SinCosPosEmbed(embed_dims, num_prefix_tokens)
        if kind == 'loope':
            if embed_dims % 2:
                raise ValueError(f'loope needs an even embed_dims, got {embed_dims}')
            return LOOPEPosEmbed(embed_dims, patch_size, in_channels, num_prefix_tokens, p['context'], grid_size)
        return None
    if role == 'attention':
        if kind.startswith('rope') and head_dim % 4:
            raise ValueError(f'{kind} needs a head dimension divisible by 4, got head_dim={head_dim}')
        if kind == 'rope_axial':
            return RoPEAxial(head_dim, p['theta'] if p['theta'] is not None else axial_theta, p['pairing'], p['axes'])
        if kind == 'rope_mixed':
            return RoPEMixed(num_heads, head_dim, p['theta'])
        if kind == 'rpb':
            if window_size is None:
                raise ValueError("pos_embed type='rpb' needs window attention (a Swin backbone); "
                                 "for global attention use 'ape', 'sincos', 'rope_axial', 'rope_mixed' or 'loope'")
            return RelativePositionBias(window_size, num_heads)
        return None
    raise ValueError(f'build_pos_embed role={role!r} is not supported; accepted: {_fmt(ROLES)}')
