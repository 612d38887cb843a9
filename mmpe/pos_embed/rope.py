"""Rotary position embeddings (RoPE-Axial, RoPE-Mixed) for 2D patch grids.

Pairing: channels (2i, 2i+1) of a head form one complex number ('interleaved', the official
RoPE-ViT code and timm's default), or channels (i, i + d/2) ('half', DINOv3 and timm's
``rotate_half``); pair i is rotated by angle a_i:
``(x0, x1) -> (x0 cos a - x1 sin a, x0 sin a + x1 cos a)``.
Angles, their cosines and sines are float32 whatever the input dtype (AMP included); the
rotation is computed against those float32 tables and the result cast back to the input dtype.

Coordinates: token n of a row-major H x W grid has column x = n % W and row y = n // W
('index'), or an affine transform of them per axis, ``affine = (a_x, b_x, a_y, b_y)``:
x' = a_x x + b_x, y' = a_y y + b_y (``coords_affine``: the 'interpolate' and 'centered' modes and
the train-time coordinate augmentation). The transform is part of the tables' cache keys; the identity
(1, 0, 1, 0) uses exactly the keys and tables of plain indices. A random draw of the augmentation
is a ``OneOffKey``: its tables are built once per forward, shared by its layers, and never cached.

Both rotations are autograd Functions that keep nothing per layer for backward beyond their
(cached or tiny) inputs and, for RoPE-Mixed, their output, which attention keeps anyway:
backward rotates the incoming gradient by the negative angle, and RoPE-Mixed's frequency
gradient is computed in closed form (docs/design.md section 8). Backward is itself differentiable
(``create_graph=True``, double backward). Prefix tokens (CLS) have coordinates
(0, 0), i.e. angle 0: they pass through unchanged and add nothing to the frequency gradient.
"""
import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import nn

from .base import AttentionPosEmbed
from .cache import OneOffKey, table_cache
from .grid import HW, grid_coords


def axial_magnitudes(head_dim: int, theta: float) -> torch.Tensor:
    """(head_dim/4,) frequencies ``theta ** (-4k / head_dim)``."""
    return theta ** (-torch.arange(0, head_dim, 4, dtype=torch.float32) / head_dim)


Affine = Tuple[float, float, float, float]
IDENTITY: Affine = (1.0, 0.0, 1.0, 0.0)
COORDS = ('index', 'interpolate', 'centered')  # coordinate modes (``coords_affine``)
NORMALIZE_COORDS = ('separate', 'min', 'max')  # what 'centered' coordinates are normalised by
PAIRINGS = ('interleaved', 'half')  # channel pairs: (2i, 2i+1) or (i, i + d/2)
AXES = ('xy', 'yx')  # RoPE-Axial's axis blocks: x first or y first
SCALINGS = ('linear', 'ntk', 'yarn')  # test-time frequency scalings (``RoPEScaling``)


@dataclass(frozen=True)
class RoPEScaling:
    """Test-time extension of a RoPE trained in index coordinates on one patch grid to larger grids, applied
    in eval mode only (docs/design.md section 3, "Test-time resolution"). Per axis a (x: columns, y: rows),
    s_a = max(G_a / T_a, 1), G the test grid and T = ``train_grid`` = (T_y, T_x); smaller grids are left as
    they are. Each frequency f of that axis (RoPE-Axial: mag_k; RoPE-Mixed: fx or fy of a pair) becomes:

    - 'linear' (position interpolation): f / s_a, i.e. coordinates divided by s_a.
    - 'ntk' (NTK-aware, RoPE-Axial only): theta_a = theta s_a^(D / (D - 2)), D = d/2 channels per axis, so
      mag_k becomes mag_k s_a^(-2k / (D - 2)): the highest frequency kept, the lowest interpolated.
    - 'yarn': f ((1 - g) / s_a + g), g = clamp((r - beta_slow) / (beta_fast - beta_slow), 0, 1) of
      r = T_a abs(f) / (2 pi), the turns f makes across the training grid: frequencies that turn more than
      beta_fast times are kept, fewer than beta_slow interpolated, a linear blend in r between; q and k
      are also multiplied by 0.1 ln(max(s_x, s_y)) + 1 (YaRN's attention temperature).
    """
    type: str
    train_grid: Tuple[int, int]
    beta_fast: float = 32.0
    beta_slow: float = 1.0

    def factors(self, hw: HW) -> HW:
        """(s_y, s_x) on an (H, W) grid."""
        return tuple(max(size / train, 1.0) for size, train in zip(hw, self.train_grid))

    def applies(self, hw: HW) -> bool:
        """Whether the (H, W) grid exceeds the training grid along an axis (else nothing changes)."""
        return any(size > train for size, train in zip(hw, self.train_grid))

    def attention_factor(self, hw: HW) -> float:
        """The factor of q and k: 0.1 ln(max(s_x, s_y)) + 1 for 'yarn', 1 otherwise."""
        return 0.1 * math.log(max(self.factors(hw))) + 1.0 if self.type == 'yarn' else 1.0

    def scaled(self, freqs: torch.Tensor, s: float, train_len: int) -> torch.Tensor:
        """``freqs`` (..., n) of one axis scaled for factor ``s`` of a training grid ``train_len`` long along it
        ('ntk': the n RoPE-Axial magnitudes mag_0 .. mag_(n-1), so D = 2n)."""
        if s <= 1.0:
            return freqs
        if self.type == 'linear':
            return freqs / s
        if self.type == 'ntk':
            k = torch.arange(freqs.shape[-1], dtype=freqs.dtype, device=freqs.device)
            return freqs * s ** (-2 * k / (2 * freqs.shape[-1] - 2))
        turns = train_len * freqs.abs() / (2 * math.pi)
        blend = ((turns - self.beta_slow) / (self.beta_fast - self.beta_slow)).clamp(0, 1)
        return freqs * ((1 - blend) / s + blend)


def normalizing_sizes(hw: HW, normalize_coords: str) -> HW:
    """(H_n, W_n), the sizes 'centered' coordinates divide by: (H, W) ('separate'), min(H, W) or max(H, W)
    for both ('min', 'max')."""
    if normalize_coords == 'separate':
        return hw
    if normalize_coords in ('min', 'max'):
        n = torch.sym_min(*hw) if normalize_coords == 'min' else torch.sym_max(*hw)  # no guard on traced sizes
        return n, n
    raise ValueError(f'normalize_coords must be one of {", ".join(map(repr, NORMALIZE_COORDS))}, '
                     f'got {normalize_coords!r}')


def coords_affine(hw: HW, ref_hw: HW, coords: str = 'index', aug: Optional[dict] = None,
                  normalize_coords: str = 'separate') -> Affine:
    """The per-axis transform ``(a_x, b_x, a_y, b_y)`` of the patch coordinates of an H x W grid
    (docs/design.md section 2); ``ref_hw`` = (H_ref, W_ref) is the backbone's pretraining grid.

    coords='index': x, y unchanged. coords='interpolate': x' = (x + 0.5) W_ref / W - 0.5 and
    y' = (y + 0.5) H_ref / H - 0.5 (cell centres: every grid spans the reference grid's extent;
    the identity at the reference grid). coords='centered': DINOv3's patch centres in [-1, 1],
    x_n = 2 (x + 0.5) / W_n - 1, y_n = 2 (y + 0.5) / H_n - 1, times 2 pi (x' = 2 pi x_n), so that
    RoPE-Axial's angle x' theta^(-4k/d) is DINOv3's 2 pi x_n / period_k; (H_n, W_n) = (H, W) for
    normalize_coords='separate', both min(H, W) for 'min', both max(H, W) for 'max'.
    aug=dict(shift, jitter, rescale) (DINOv3's coordinate augmentation; pass it in training only):
    one random draw, then, in DINOv3's order, a shift by u * shift per axis, u ~ U(-1, 1), in
    DINOv3's units (one unit: half the reference grid, W_ref / 2 and H_ref / 2 index steps; 2 pi
    with 'centered'), and a scaling by s_x = j_x r and s_y = j_y r, j_x, j_y = exp(U(-ln jitter,
    ln jitter)) per axis, r = exp(U(-ln rescale, ln rescale)), about the grid centre (about the
    origin with 'centered', as DINOv3).
    The draw (five numbers, always) comes from torch's global CPU generator, which mmengine's
    ``randomness.seed`` seeds and ``mmpe.engine.hooks.RandomStateHook`` saves and restores, so seeded and
    resumed runs repeat it. It is returned as a ``OneOffKey``: no later forward repeats it, so its
    tables are kept on it for this forward instead of in the shared caches.
    """
    (h, w), (h_ref, w_ref) = hw, ref_hw
    if coords == 'index':
        a_x, b_x, a_y, b_y = IDENTITY
    elif coords == 'interpolate':
        a_x, a_y = w_ref / w, h_ref / h
        b_x, b_y = 0.5 * a_x - 0.5, 0.5 * a_y - 0.5
    elif coords == 'centered':
        n_y, n_x = normalizing_sizes(hw, normalize_coords)
        a_x, a_y = 4 * math.pi / n_x, 4 * math.pi / n_y
        b_x, b_y = 0.5 * a_x - 2 * math.pi, 0.5 * a_y - 2 * math.pi
    else:
        raise ValueError(f'coords must be one of {", ".join(map(repr, COORDS))}, got {coords!r}')
    if aug is None:
        return a_x, b_x, a_y, b_y
    u_x, u_y, j_x, j_y, r = (2 * torch.rand(5, dtype=torch.float64) - 1).tolist()  # U(-1, 1)
    scale = math.exp(r * math.log(aug['rescale']))
    s_x, s_y = (math.exp(j * math.log(aug['jitter'])) * scale for j in (j_x, j_y))
    # x'' = m + s (x' + t - m): shift by t, then scale about m
    if coords == 'centered':
        m_x = m_y = 0.0
        t_x, t_y = 2 * math.pi * u_x * aug['shift'], 2 * math.pi * u_y * aug['shift']
    else:
        m_x, m_y = a_x * (w - 1) / 2 + b_x, a_y * (h - 1) / 2 + b_y
        t_x, t_y = u_x * aug['shift'] * w_ref / 2, u_y * aug['shift'] * h_ref / 2
    return OneOffKey((s_x * a_x, s_x * (b_x + t_x - m_x) + m_x, s_y * a_y, s_y * (b_y + t_y - m_y) + m_y))


def _affine_key(affine: Affine) -> tuple:
    """Extra cache-key arguments of ``affine``: none for the identity (the plain-index tables), a
    random draw as it is (a ``OneOffKey``, never cached)."""
    if isinstance(affine, OneOffKey):
        return (affine,)
    if torch.compiler.is_compiling():  # no cache; under torch.export the values may be symbolic (no float())
        return (tuple(affine),)
    affine = tuple(float(v) for v in affine)
    return () if affine == IDENTITY else (affine,)


@table_cache(maxsize=64)
def rope_coords(hw: HW, num_prefix_tokens: int, device: torch.device, affine: Affine = IDENTITY) -> torch.Tensor:
    """(2, P + H*W) float32 coordinates [x; y] of the tokens: zeros for the P prefix tokens,
    then column and row of each patch of the row-major grid, transformed by ``affine``
    (a_x x + b_x, a_y y + b_y, computed in float64)."""
    x, y = grid_coords(hw, device)
    if torch.compiler.is_compiling() or tuple(affine) != IDENTITY:  # traced: no branch on a symbolic transform
        a_x, b_x, a_y, b_y = affine
        x, y = (x.double() * a_x + b_x).float(), (y.double() * a_y + b_y).float()
    return nn.functional.pad(torch.stack([x, y]), (num_prefix_tokens, 0))


def _table_options(axes: str, affine: Affine) -> tuple:
    """Extra cache-key arguments of ``rope_axial_tables``: the axis order unless 'xy', then
    ``_affine_key(affine)``; the default tables keep the plain keys."""
    return (() if axes == 'xy' else (axes,)) + _affine_key(affine)


@table_cache(maxsize=64)
def rope_axial_tables(hw: HW, num_prefix_tokens: int, head_dim: int, theta: float, device: torch.device,
                      *options):
    """RoPE-Axial ``(cos, sin)``, each (P + H*W, d/2) float32: pair k < d/4 turns by x * mag_k,
    pair d/4 + k by y * mag_k (coordinates of ``rope_coords``), or y first with the option 'yx'.
    ``options`` (``_table_options``): an axis order 'yx', then a coordinate transform ``affine``.
    Shared by every layer with the same grid, head_dim, theta, axis order and affine."""
    axes, affine = (options[0], options[1:]) if options[:1] == ('yx',) else ('xy', options)
    angles = axial_angles(rope_coords(hw, num_prefix_tokens, device, *affine), head_dim, theta, axes)
    return angles.cos(), angles.sin()


def axial_angles(coords: torch.Tensor, head_dim: int, theta: float, axes: str = 'xy',
                 scaling: Optional[RoPEScaling] = None, hw: Optional[HW] = None) -> torch.Tensor:
    """(N, d/2) RoPE-Axial angles of coords (2, N) = [x; y]: x * mag_k for pair k < d/4, then
    y * mag_k ('xy'); y first, then x for 'yx' (DINOv3). With ``scaling``, the magnitudes of each axis
    are those ``scaling`` gives on the ``hw`` grid."""
    mag = axial_magnitudes(head_dim, theta).to(coords.device)
    mag_x = mag_y = mag
    if scaling is not None:
        (s_y, s_x), (train_y, train_x) = scaling.factors(hw), scaling.train_grid
        mag_x, mag_y = scaling.scaled(mag, s_x, train_x), scaling.scaled(mag, s_y, train_y)
    x, y = coords[0][:, None] * mag_x, coords[1][:, None] * mag_y
    return torch.cat([x, y] if axes == 'xy' else [y, x], dim=-1)


@table_cache(maxsize=16)
def rope_axial_scaled_tables(hw: HW, num_prefix_tokens: int, head_dim: int, theta: float, device: torch.device,
                             axes: str, scaling: RoPEScaling):
    """``rope_axial_tables`` at index coordinates with each axis's magnitudes scaled by ``scaling`` for the
    (H, W) grid; (cos, sin), each (P + H*W, d/2) float32."""
    angles = axial_angles(rope_coords(hw, num_prefix_tokens, device), head_dim, theta, axes, scaling, hw)
    return angles.cos(), angles.sin()


def empty_in_layout_of(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised tensor of x's shape whose dimensions lie in memory in the order of x's
    (e.g. q/k permuted from a (B, N, 3, h, d) projection keep a token-major layout, in which
    attention's output is laid out for the projection that follows without a copy)."""
    order = sorted(range(x.dim()), key=lambda i: x.stride(i), reverse=True)  # outermost first
    buffer = torch.empty([x.shape[i] for i in order], dtype=dtype, device=x.device)
    return buffer.permute([order.index(i) for i in range(x.dim())])


def channel_pairs(x: torch.Tensor, pairing: str = 'interleaved'):
    """The two members of every channel pair of x (..., d), views (..., d/2) each: channels 2i and
    2i+1 ('interleaved'), or i and i + d/2 ('half')."""
    if pairing == 'half':
        return x.chunk(2, dim=-1)
    return x.unflatten(-1, (-1, 2)).unbind(-1)


def rotate_pairs(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, pairing: str = 'interleaved') -> torch.Tensor:
    """Rotate the channel pairs (``channel_pairs``) of x (..., N, d) by angles given as cos, sin
    (..., N, d/2) (broadcast over leading dimensions). Computed and returned in the tables'
    precision when x has a lower one (float32 tables for a bfloat16 x). Differentiable when autograd
    records it (e.g. the rotations' backward under ``create_graph=True``)."""
    x0, x1 = channel_pairs(x, pairing)
    recorded = torch.is_grad_enabled() and (x.requires_grad or cos.requires_grad or sin.requires_grad)
    if recorded or torch.compiler.is_compiling():  # differentiable, traceable; inductor fuses it into one kernel
        y0, y1 = x0 * cos - x1 * sin, x0 * sin + x1 * cos
        return torch.cat([y0, y1], dim=-1) if pairing == 'half' else torch.stack([y0, y1], dim=-1).flatten(-2)
    # eager, not recorded (out= is not differentiable): write both members in place, half the
    # memory passes of the form above
    out = empty_in_layout_of(x, torch.promote_types(x.dtype, cos.dtype))
    out0, out1 = channel_pairs(out, pairing)
    torch.mul(x0, cos, out=out0).addcmul_(x1, sin, value=-1)
    torch.mul(x0, sin, out=out1).addcmul_(x1, cos)
    return out


class RotateFixed(torch.autograd.Function):
    """x (..., N, d) rotated by fixed angles (cos, sin (..., N, d/2), float32, no gradient), channel
    pairs as ``pairing`` ('interleaved' or 'half'). Saves only the tables (cached, shared by the
    layers); backward rotates by the negative angle, differentiably when autograd records it
    (double backward)."""

    @staticmethod
    def forward(ctx, x, cos, sin, pairing='interleaved'):
        ctx.save_for_backward(cos, sin)
        ctx.pairing = pairing
        return rotate_pairs(x, cos, sin, pairing).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        cos, sin = ctx.saved_tensors
        return rotate_pairs(grad, cos, -sin, ctx.pairing).to(grad.dtype), None, None, None


def at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """t in float32 if it is in a lower precision (float16, bfloat16), else as it is (float64)."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def mixed_cos_sin(freqs: torch.Tensor, coords: torch.Tensor):
    """RoPE-Mixed (cos, sin), each (h, N, d/2) in float32 (or float64 for float64 inputs), of the
    angles fx[h, j] x_n + fy[h, j] y_n for freqs (2, h, d/2) = [fx, fy] and coords (2, N) = [x; y]."""
    angles = mixed_angles(freqs, coords)
    return angles.cos(), angles.sin()


def mixed_angles(freqs: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """(h, N, d/2) angles fx[h, j] x_n + fy[h, j] y_n, in float32 (float64 for float64 inputs)."""
    freqs = at_least_float32(freqs)
    coords = coords.to(freqs.dtype)
    # elementwise, which autocast leaves in float32 (an einsum would run in bfloat16)
    return freqs[0, :, None] * coords[0, :, None] + freqs[1, :, None] * coords[1, :, None]


class RotateMixed(torch.autograd.Function):
    """x (..., h, N, d) rotated by the learnable angles fx x + fy y (``mixed_cos_sin``).

    Saves the rotated output (the q/k attention saves anyway), freqs and coords; backward
    recomputes cos/sin, rotates the gradient back, and forms d loss / d freqs in closed form:
    d loss / d angle = g1 y0 - g0 y1 (the output pair turned by 90 degrees, against the gradient),
    summed over all leading dimensions (batch, windows, q/k) first, then times x (fx) and y (fy).
    Under ``create_graph=True`` autograd records this backward (through the saved output, whose
    gradient is this Function's backward again), so double backward works.
    """

    @staticmethod
    def forward(ctx, x, freqs, coords):
        cos, sin = mixed_cos_sin(freqs, coords)
        out = rotate_pairs(x, cos, sin).to(x.dtype)
        ctx.save_for_backward(out, freqs, coords)
        return out

    @staticmethod
    def backward(ctx, grad):
        out, freqs, coords = ctx.saved_tensors
        cos, sin = mixed_cos_sin(freqs, coords)
        grad_x = rotate_pairs(grad, cos, -sin).to(grad.dtype) if ctx.needs_input_grad[0] else None
        grad_freqs = None
        if ctx.needs_input_grad[1]:
            g0, g1 = at_least_float32(grad).unflatten(-1, (-1, 2)).unbind(-1)
            y0, y1 = at_least_float32(out).unflatten(-1, (-1, 2)).unbind(-1)
            with torch.autocast(grad.device.type, enabled=False):  # reductions stay in float32
                # elementwise, then one sum over the leading dimensions: an einsum here ran as a batched
                # matmul of h*n*j dot products, copying each operand (about 5x slower on Swin's windows)
                d_angle = (g1 * y0).addcmul_(g0, y1, value=-1)  # (..., h, n, j)
                if d_angle.dim() > 3:  # (an empty dim would sum everything)
                    d_angle = d_angle.sum(dim=tuple(range(d_angle.dim() - 3)))
                grad_freqs = torch.einsum('hnj,cn->chj', d_angle, coords.to(d_angle.dtype)).to(freqs.dtype)
        return grad_x, grad_freqs, None


class RoPEAxial(AttentionPosEmbed):
    """Fixed axial RoPE: pairs 0..d/4-1 rotate by x * mag_k, pairs d/4..d/2-1 by y * mag_k
    (axes='xy'), or y first (axes='yx', DINOv3); mag_k = theta ** (-4k/d).

    Args:
        head_dim: attention head dimension d (multiple of 4).
        theta: frequency base; mag_k = theta ** (-4k/d).
        pairing: 'interleaved' (channels 2i, 2i+1) or 'half' (channels i, i + d/2; DINOv3).
        axes: 'xy' (x block first) or 'yx' (y block first; DINOv3).
        scaling: a ``RoPEScaling`` applied in eval mode on grids larger than its training grid, or None.
    Holds no state: its tables live in the shared caches of ``rope_axial_tables`` and ``rope_axial_scaled_tables``.
    """

    def __init__(self, head_dim: int, theta: float, pairing: str = 'interleaved', axes: str = 'xy',
                 scaling: Optional[RoPEScaling] = None):
        super().__init__()
        if pairing not in PAIRINGS:
            raise ValueError(f'pairing must be one of {", ".join(map(repr, PAIRINGS))}, got {pairing!r}')
        if axes not in AXES:
            raise ValueError(f'axes must be one of {", ".join(map(repr, AXES))}, got {axes!r}')
        if scaling is not None and scaling.type == 'ntk' and head_dim < 8:
            raise ValueError(f"scaling type='ntk' needs head_dim >= 8 (two frequencies per axis), got {head_dim}")
        self.head_dim = head_dim
        self.theta = theta
        self.pairing = pairing
        self.axes = axes
        self.scaling = scaling

    def extra_repr(self) -> str:
        scaling = f', scaling={self.scaling}' if self.scaling is not None else ''
        return f'head_dim={self.head_dim}, theta={self.theta}, pairing={self.pairing!r}, axes={self.axes!r}{scaling}'

    def angles(self, hw: HW, device=None) -> torch.Tensor:
        """(1, H*W, d/2) float32 angles for a row-major grid."""
        coords = rope_coords(tuple(hw), 0, torch.device(device or 'cpu'))
        return axial_angles(coords, self.head_dim, self.theta, self.axes)[None]

    def rotate(self, qk: torch.Tensor, hw: HW, num_prefix_tokens: int = 0, affine: Affine = IDENTITY) -> torch.Tensor:
        """Rotate q/k of shape (..., heads, P + H*W, d) at patch coordinates transformed by
        ``affine`` (``coords_affine``); prefix tokens stay as they are. In eval mode, on a grid larger than
        its training grid, a ``scaling`` rotates at index coordinates by its scaled frequencies instead."""
        if self.scaling is not None and not self.training and self.scaling.applies(hw):
            cos, sin = rope_axial_scaled_tables(tuple(hw), num_prefix_tokens, self.head_dim, self.theta, qk.device,
                                                self.axes, self.scaling)
            if self.scaling.type == 'yarn':
                qk = qk * self.scaling.attention_factor(hw)
            return RotateFixed.apply(qk, cos, sin, self.pairing)
        cos, sin = rope_axial_tables(tuple(hw), num_prefix_tokens, self.head_dim, self.theta, qk.device,
                                     *_table_options(self.axes, affine))
        return RotateFixed.apply(qk, cos, sin, self.pairing)


def mixed_init_freqs(num_heads: int, head_dim: int, theta: float = 10.0) -> torch.Tensor:
    """RoPE-Mixed initial frequencies (2, heads, d/2): [fx, fy], each head at a random angle.

    fx = [mag cos(a), mag cos(a + pi/2)], fy = [mag sin(a), mag sin(a + pi/2)], a ~ U(0, 2 pi).
    """
    mag = axial_magnitudes(head_dim, theta)
    a = torch.rand(num_heads, 1) * 2 * math.pi
    fx = torch.cat([mag * torch.cos(a), mag * torch.cos(a + math.pi / 2)], dim=-1)
    fy = torch.cat([mag * torch.sin(a), mag * torch.sin(a + math.pi / 2)], dim=-1)
    return torch.stack([fx, fy])


class RoPEMixed(AttentionPosEmbed):
    """Learnable mixed-axis RoPE of one attention layer: pair j rotates by fx[j] x + fy[j] y.

    Args:
        num_heads: attention heads h.
        head_dim: head dimension d (multiple of 4).
        theta: base of the initial magnitudes (10 in the paper).
        scaling: a ``RoPEScaling`` ('linear' or 'yarn') applied in eval mode on grids larger than its training
            grid, or None.
    Parameter ``freqs`` (2, h, d/2) holds fx and fy. Angles are computed from the current
    frequencies in every call (float32); gradients reach them in closed form (``RotateMixed``).
    """

    def __init__(self, num_heads: int, head_dim: int, theta: float = 10.0, scaling: Optional[RoPEScaling] = None):
        super().__init__()
        if scaling is not None and scaling.type == 'ntk':
            raise ValueError("RoPE-Mixed has no theta to rescale at test time: scaling type='ntk' is RoPE-Axial's; "
                             "use 'linear' or 'yarn'")
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.theta = theta
        self.scaling = scaling
        self.freqs = nn.Parameter(mixed_init_freqs(num_heads, head_dim, theta))

    def extra_repr(self) -> str:
        scaling = f', scaling={self.scaling}' if self.scaling is not None else ''
        return f'num_heads={self.num_heads}, head_dim={self.head_dim}, theta={self.theta}{scaling}'

    def angles(self, hw: HW) -> torch.Tensor:
        """(h, H*W, d/2) float32 angles ``fx x + fy y``."""
        return mixed_angles(self.freqs, rope_coords(tuple(hw), 0, self.freqs.device))

    def rotate(self, qk: torch.Tensor, hw: HW, num_prefix_tokens: int = 0, affine: Affine = IDENTITY) -> torch.Tensor:
        """Rotate q/k of shape (..., h, P + H*W, d) at patch coordinates transformed by ``affine``
        (``coords_affine``); prefix tokens stay as they are. In eval mode, on a grid larger than its training
        grid, a ``scaling`` scales fx and fy (``RoPEScaling.scaled`` per axis) at index coordinates."""
        freqs = self.freqs
        if self.scaling is not None and not self.training and self.scaling.applies(hw):
            (s_y, s_x), (train_y, train_x) = self.scaling.factors(hw), self.scaling.train_grid
            freqs = torch.stack([self.scaling.scaled(freqs[0], s_x, train_x),
                                 self.scaling.scaled(freqs[1], s_y, train_y)])
            if self.scaling.type == 'yarn':
                qk = qk * self.scaling.attention_factor(hw)
        coords = rope_coords(tuple(hw), num_prefix_tokens, qk.device, *_affine_key(affine))
        return RotateMixed.apply(qk, freqs, coords)
