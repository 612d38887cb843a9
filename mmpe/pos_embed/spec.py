"""A ``pos_embed`` config parsed once: ``PosEmbedSpec``, the encoding type and every parameter with its
default, validated. A backbone parses its config into a spec at construction and hands that spec to
everything that needs the encoding (the token and attention builders, its blocks, the checkpoint
converters); nothing parses the dict again."""
import dataclasses
import difflib
import math
import numbers
from dataclasses import dataclass, field
from typing import Optional, Tuple

from .absolute import LOOPE_CONTEXTS
from .rope import AXES, COORDS, NORMALIZE_COORDS, PAIRINGS, SCALINGS, RoPEScaling

# The parameters each encoding type accepts; a spec keeps the others at their field defaults, where they act on
# nothing (e.g. an 'ape' spec's coords='index').
PARAMETERS = {
    'ape': ('embed_prefix',),
    'sincos': (),
    'rope_axial': ('theta', 'with_ape', 'embed_prefix', 'coords', 'normalize_coords', 'coord_aug', 'pairing', 'axes',
                   'scaling'),
    'rope_mixed': ('theta', 'with_ape', 'embed_prefix', 'coords', 'normalize_coords', 'coord_aug', 'scaling'),
    'loope': ('context',),
    'rpb': (),
    'none': (),
}
# Defaults that differ by type from the field defaults of ``PosEmbedSpec``: RoPE-Mixed's initial theta. RoPE-Axial's
# theta stays None, "the backbone's default": each backbone fills in its own (``PosEmbedSpec.parse(axial_theta=)``).
TYPE_DEFAULTS = {'rope_mixed': dict(theta=10.0)}
# The coordinate augmentation's parameters with their no-op values (``mmpe.pos_embed.rope.coords_affine``
# defines them, and the accepted values of coords, normalize_coords, pairing and axes).
COORD_AUG = dict(shift=0.0, jitter=1.0, rescale=1.0)
# The test-time scaling's keys: 'type' and 'train_grid' always, the blend's turn counts with type='yarn' only.
SCALING_KEYS = ('type', 'train_grid', 'beta_fast', 'beta_slow')


def format_choices(values) -> str:
    """'a', 'b', 'c': accepted values as error messages list them."""
    return ', '.join(repr(v) for v in values)


def _closest(name, accepted) -> str:
    """' (did you mean X?)' for the accepted name closest to a misspelled ``name``, else ''."""
    close = difflib.get_close_matches(name, [str(a) for a in accepted], n=1) if isinstance(name, str) else []
    return f' (did you mean {close[0]!r}?)' if close else ''


def _is_number(value) -> bool:
    """A finite real number (not a bool)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _check_choice(name: str, value, accepted) -> None:
    if not isinstance(value, str) or value not in accepted:
        raise ValueError(f'pos_embed {name}={value!r} is not supported; accepted: {format_choices(accepted)}'
                         f'{_closest(value, accepted)}')


def _check_type(kind) -> None:
    if not isinstance(kind, str) or kind not in PARAMETERS:
        raise ValueError(f'pos_embed type={kind!r} is not supported; '
                         f'accepted types: {format_choices(PARAMETERS)}{_closest(kind, PARAMETERS)}')


def _check_parameters(kind: str, names) -> None:
    """ValueError when ``names`` (given parameters) hold one that type ``kind`` does not take; a misspelled
    one names the closest accepted name."""
    unknown = sorted(set(names) - set(PARAMETERS[kind]), key=repr)
    if unknown:
        accepted = format_choices(PARAMETERS[kind]) if PARAMETERS[kind] else 'none'
        raise ValueError(f'pos_embed type={kind!r} got unknown parameter(s) {format_choices(unknown)}; '
                         f'accepted: {accepted}' + ''.join(_closest(name, PARAMETERS[kind]) for name in unknown))


def _parse_coord_aug(aug) -> Optional[dict]:
    """None, or ``dict(shift=s, jitter=j, rescale=r)`` (a new dict, floats) with the missing keys at their no-op
    values."""
    if aug is None:
        return None
    if not isinstance(aug, dict):
        raise ValueError(f'pos_embed coord_aug must be None or a dict with keys {format_choices(COORD_AUG)}, '
                         f'got {aug!r}')
    unknown = sorted(set(aug) - set(COORD_AUG), key=repr)
    if unknown:
        raise ValueError(f'pos_embed coord_aug got unknown key(s) {format_choices(unknown)}; '
                         f'accepted: {format_choices(COORD_AUG)}' + ''.join(_closest(k, COORD_AUG) for k in unknown))
    aug = {**COORD_AUG, **aug}
    for key, low in COORD_AUG.items():  # each no-op value is also the lowest accepted one
        value = aug[key]
        if not (_is_number(value) and value >= low):
            raise ValueError(f'pos_embed coord_aug {key} must be a finite number >= {low:g}, got {value!r}')
        aug[key] = float(value)
    return aug


def _parse_scaling(scaling, kind: str) -> Optional[RoPEScaling]:
    """None, or the ``RoPEScaling`` of ``dict(type=..., train_grid=(H', W') or G, [beta_fast, beta_slow])``."""
    if scaling is None:
        return None
    if isinstance(scaling, RoPEScaling):  # validated again, as a dict (the betas are yarn's)
        cfg = {k: v for k, v in vars(scaling).items() if scaling.type == 'yarn' or not k.startswith('beta')}
    elif isinstance(scaling, dict):
        cfg = dict(scaling)
    else:
        raise ValueError(f"pos_embed scaling must be None or a dict with keys 'type' and 'train_grid' (and "
                         f"'beta_fast', 'beta_slow' for type='yarn'), got {scaling!r}")
    unknown = sorted(set(cfg) - set(SCALING_KEYS))
    if unknown:
        raise ValueError(f'pos_embed scaling got unknown key(s) {format_choices(unknown)}; '
                         f'accepted: {format_choices(SCALING_KEYS)}')
    if 'type' not in cfg or 'train_grid' not in cfg:
        raise ValueError(f"pos_embed scaling needs 'type' (one of {format_choices(SCALINGS)}) and 'train_grid' (the "
                         f"patch grid (H', W') the model was trained at), got {scaling!r}")
    _check_choice('scaling type', cfg['type'], SCALINGS)
    if cfg['type'] == 'ntk' and kind != 'rope_axial':
        raise ValueError(f"pos_embed scaling type='ntk' rescales RoPE-Axial's theta; type={kind!r} has none: use "
                         f"'linear' or 'yarn'")
    grid = cfg['train_grid']
    grid = (grid, grid) if isinstance(grid, int) and not isinstance(grid, bool) else grid
    if not (isinstance(grid, (tuple, list)) and len(grid) == 2
            and all(isinstance(g, int) and not isinstance(g, bool) and g > 0 for g in grid)):
        raise ValueError(f"pos_embed scaling train_grid must be a positive int or two (H', W'), the patch grid "
                         f'trained at, got {cfg["train_grid"]!r}')
    cfg['train_grid'] = tuple(grid)
    betas = {k: cfg[k] for k in ('beta_fast', 'beta_slow') if k in cfg}
    if cfg['type'] != 'yarn' and betas:
        raise ValueError(f"pos_embed scaling {format_choices(betas)} belong to type='yarn', got type={cfg['type']!r}")
    for key, value in betas.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float('inf'):
            raise ValueError(f'pos_embed scaling {key} must be a positive number, got {value!r}')
        cfg[key] = float(value)
    if cfg['type'] == 'yarn' and not cfg.get('beta_fast', 32.0) > cfg.get('beta_slow', 1.0):
        raise ValueError(f"pos_embed scaling beta_fast must exceed beta_slow, got beta_fast={cfg.get('beta_fast')}, "
                         f"beta_slow={cfg.get('beta_slow')}")
    return RoPEScaling(**cfg)


@dataclass(frozen=True)
class PosEmbedSpec:
    """One positional encoding, validated: its ``type`` and every parameter, defaults filled in.

    Make one from a config dict with ``PosEmbedSpec.parse(cfg)`` (``cfg`` as a backbone's ``pos_embed``,
    e.g. ``dict(type='rope_mixed', with_ape=True)``); construction validates either way, with errors that name
    the parameter, the value and what is accepted. Parameters the type does not take keep the defaults below
    (another value is an error), where they do nothing. ``coord_aug`` is a dict (read it, do not change it).

    Fields (docs/design.md sections 2-3): type ('ape', 'sincos', 'rope_axial', 'rope_mixed', 'loope', 'rpb',
    'none'); theta (RoPE base: RoPE-Mixed's init, 10 by default; RoPE-Axial's, None = the backbone's default,
    which the backbone fills in); with_ape, embed_prefix (a learned APE beside RoPE; APE for prefix tokens);
    coords, normalize_coords, coord_aug (RoPE coordinates); pairing, axes (RoPE-Axial's channel layout);
    scaling (a ``RoPEScaling`` of index-trained RoPE at test time, from ``dict(type='linear' | 'ntk' | 'yarn',
    train_grid=(H', W'), [beta_fast, beta_slow])``); context (LOOPE's context head).
    """

    type: str
    theta: Optional[float] = None
    with_ape: bool = False
    embed_prefix: bool = False
    coords: str = 'index'
    normalize_coords: str = 'separate'
    coord_aug: Optional[dict] = field(default=None, hash=False)
    pairing: str = 'interleaved'
    axes: str = 'xy'
    scaling: Optional[RoPEScaling] = None
    context: str = 'conv'

    def __post_init__(self):
        _check_type(self.type)
        _check_parameters(self.type, [f.name for f in dataclasses.fields(self)
                                      if f.name != 'type' and getattr(self, f.name) != f.default])
        for name, value in TYPE_DEFAULTS.get(self.type, {}).items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        theta = self.theta
        if theta is not None and not (_is_number(theta) and theta > 0):
            raise ValueError(f'pos_embed theta must be a finite positive number, got {theta!r}')
        for name in ('with_ape', 'embed_prefix'):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f'pos_embed {name} must be True or False, got {getattr(self, name)!r}')
        if self.type == 'loope':
            _check_choice('context', self.context, LOOPE_CONTEXTS)
        if self.is_rope:
            _check_choice('coords', self.coords, COORDS)
            _check_choice('normalize_coords', self.normalize_coords, NORMALIZE_COORDS)
            if self.normalize_coords != 'separate' and self.coords != 'centered':
                raise ValueError(f'pos_embed normalize_coords={self.normalize_coords!r} needs coords=\'centered\', '
                                 f'got coords={self.coords!r}')
            object.__setattr__(self, 'coord_aug', _parse_coord_aug(self.coord_aug))
            object.__setattr__(self, 'scaling', _parse_scaling(self.scaling, self.type))
            if self.scaling is not None and self.coords != 'index':
                raise ValueError(f"pos_embed scaling extends RoPE trained at index coordinates; coords="
                                 f"{self.coords!r} is resolution-independent already: give scaling=None or "
                                 f"coords='index'")
        if self.type == 'rope_axial':
            _check_choice('pairing', self.pairing, PAIRINGS)
            _check_choice('axes', self.axes, AXES)

    @classmethod
    def parse(cls, cfg, axial_theta: Optional[float] = None) -> 'PosEmbedSpec':
        """The spec of ``cfg``, a ``pos_embed`` dict (validated here) or a spec (returned as it is).

        axial_theta: the backbone's default RoPE-Axial theta, filled in when a 'rope_axial' spec has none.
        Raises ValueError naming the bad parameter and what is accepted.
        """
        if not isinstance(cfg, cls):
            if not isinstance(cfg, dict) or 'type' not in cfg:
                raise ValueError(f"pos_embed must be a dict with a 'type' key, one of "
                                 f'{format_choices(PARAMETERS)}; got {cfg!r}')
            params = dict(cfg)
            kind = params.pop('type')
            _check_type(kind)
            _check_parameters(kind, params)
            cfg = cls(type=kind, **params)
        if cfg.type == 'rope_axial' and cfg.theta is None and axial_theta is not None:
            cfg = dataclasses.replace(cfg, theta=axial_theta)
        return cfg

    @property
    def params(self) -> dict:
        """The parameters this type accepts with their values (a new dict)."""
        return {name: value for name, value in dataclasses.asdict(self).items() if name in PARAMETERS[self.type]}

    @property
    def is_rope(self) -> bool:
        """True for the rotary encodings (RoPE-Axial, RoPE-Mixed), which rotate q/k at RoPE coordinates."""
        return self.type in ('rope_axial', 'rope_mixed')

    @property
    def has_learned_ape(self) -> bool:
        """True when the encoding has a learned APE table ('ape', or a RoPE ``with_ape``)."""
        return self.type == 'ape' or (self.is_rope and self.with_ape)

    def check_window_local_coords(self, owner: str, coords: Tuple[str, ...] = ('index',)) -> None:
        """Raise unless a RoPE encoding uses one of ``coords`` (the modes ``owner`` implements in windows)
        without augmentation: ``owner`` attends in windows, whose RoPE coordinates are window-local
        (index: 0 .. window-1; 'centered': normalised over the window), so 'interpolate' (relative to the
        pretraining grid) and coord_aug have no meaning there."""
        if self.is_rope and (self.coords not in coords or self.coord_aug is not None or self.scaling is not None):
            raise ValueError(f'{owner} attends in windows with window-local RoPE coordinates: pos_embed needs '
                             f'coords in ({format_choices(coords)}), coord_aug=None and scaling=None (a window keeps '
                             f'its size at every input size), got coords={self.coords!r}, '
                             f'coord_aug={self.coord_aug!r}, scaling={self.scaling!r} (the other options are for '
                             f'global attention: PEVisionTransformer with window_size=0)')


# Accepted parameters of each encoding type, with their defaults (those of ``PosEmbedSpec`` and ``TYPE_DEFAULTS``).
_FIELD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(PosEmbedSpec)}
ENCODINGS = {kind: {name: TYPE_DEFAULTS.get(kind, {}).get(name, _FIELD_DEFAULTS[name]) for name in names}
             for kind, names in PARAMETERS.items()}


def parse_pos_embed_cfg(cfg) -> Tuple[str, dict]:
    """Validate ``cfg`` (a ``pos_embed`` dict or a ``PosEmbedSpec``) and return (type, parameters with defaults
    filled in): ``PosEmbedSpec.parse(cfg)`` as a pair. Raises ValueError naming the bad parameter and what is
    accepted."""
    spec = PosEmbedSpec.parse(cfg)
    return spec.type, spec.params
