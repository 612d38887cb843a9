"""Tests of mmpe.pos_embed against direct formulas (docs/design.md sections 2-3), timm and torch.

References are written here from the definitions, in float64 where it helps:
- RoPE: channel pairs (2i, 2i+1) as complex numbers multiplied by torch.polar(1, angle),
  axial angles x * theta^(-4k/d) then y * theta^(-4k/d), mixed angles fx[j] x + fy[j] y.
- LOOPE: channel 2k = sin(X w_k), 2k+1 = cos(X w_k), w_k = 10000^(-2k/D), X = Gilbert order + offset.
- APE: torch's bicubic interpolation; sin-cos: MAE's layout; RPB: the Swin index formula.
"""
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from timm.layers.pos_embed_sincos import RotaryEmbeddingCat, RotaryEmbeddingMixed, apply_rot_embed_cat
from timm.models.swin_transformer import get_relative_position_index

from mmpe.pos_embed import (
    ENCODINGS,
    AttentionPosEmbed,
    LearnedPosEmbed,
    LOOPEPosEmbed,
    PosEmbedSpec,
    RelativePositionBias,
    RoPEAxial,
    RoPEMixed,
    SinCosPosEmbed,
    TokenPosEmbed,
    build_pos_embed,
    gilbert_order,
)

# ----------------------------------------------------------------------------- references


def reference_coords(hw):
    """float64 column x and row y (H*W,) of a row-major grid."""
    rows, cols = torch.meshgrid(torch.arange(hw[0], dtype=torch.float64), torch.arange(hw[1], dtype=torch.float64),
                                indexing='ij')
    return cols.flatten(), rows.flatten()


def axial_reference_angles(hw, head_dim, theta):
    """(N, d/2) float64: pair k < d/4 turns by x * mag_k, pair d/4 + k by y * mag_k, mag_k = theta^(-4k/d)."""
    x, y = reference_coords(hw)
    k = torch.arange(head_dim // 4, dtype=torch.float64)
    mag = theta ** (-4 * k / head_dim)
    return torch.cat([x[:, None] * mag, y[:, None] * mag], dim=1)


def mixed_reference_angles(hw, freqs):
    """(h, N, d/2): pair j of head h turns by fx[h, j] x + fy[h, j] y; freqs (2, h, d/2) = [fx, fy]."""
    x, y = reference_coords(hw)
    x, y = x.to(freqs.dtype), y.to(freqs.dtype)
    return freqs[0][:, None, :] * x[:, None] + freqs[1][:, None, :] * y[:, None]


def polar_rotate(x, angles):
    """Rotate channel pairs (2i, 2i+1) of x (..., N, d) as complex numbers by angles (..., N, d/2), float64."""
    z = torch.view_as_complex(x.double().unflatten(-1, (-1, 2)).contiguous())
    return torch.view_as_real(z * torch.polar(torch.ones_like(angles), angles.double())).flatten(-2)


def loope_reference(position, embed_dims):
    """(..., D) float64: channel 2k = sin(X w_k), 2k+1 = cos(X w_k), w_k = 10000^(-2k/D), X = position (...)."""
    k = torch.arange(embed_dims // 2, dtype=torch.float64)
    angles = position.double()[..., None] * 10000.0 ** (-2 * k / embed_dims)
    out = torch.empty(*position.shape, embed_dims, dtype=torch.float64)
    out[..., 0::2] = angles.sin()
    out[..., 1::2] = angles.cos()
    return out


def rope_module(kind, num_heads=3, head_dim=16, theta=None):
    if kind == 'axial':
        return RoPEAxial(head_dim, 100.0 if theta is None else theta)
    return RoPEMixed(num_heads, head_dim, 10.0 if theta is None else theta)


def rope_reference_angles(module, hw):
    if isinstance(module, RoPEAxial):
        return axial_reference_angles(hw, module.head_dim, module.theta)
    return mixed_reference_angles(hw, module.freqs.detach().double())


ROPE_KINDS = ['axial', 'mixed']


@pytest.fixture(autouse=True)
def seed():
    torch.manual_seed(0)

# ----------------------------------------------------------------------------- RoPE


@pytest.mark.parametrize('kind', ROPE_KINDS)
def test_rope_scores_depend_only_on_offset(kind):
    """Every token holds the same q and the same k: rotated q_i . k_j must depend on p_i - p_j only."""
    hw, heads, d = (5, 9), 3, 16
    rope = rope_module(kind, heads, d)
    n = hw[0] * hw[1]
    q = torch.randn(1, heads, 1, d).expand(-1, -1, n, -1)
    k = torch.randn(1, heads, 1, d).expand(-1, -1, n, -1)
    scores = (rope.rotate(q, hw) @ rope.rotate(k, hw).transpose(-1, -2))[0]  # (h, N, N)
    x, y = reference_coords(hw)
    dx = (x[:, None] - x[None, :]).long() + hw[1] - 1
    dy = (y[:, None] - y[None, :]).long() + hw[0] - 1
    offset_id = (dy * (2 * hw[1] - 1) + dx).flatten().expand(heads, -1)  # (h, N*N)
    groups = (2 * hw[0] - 1) * (2 * hw[1] - 1)
    flat = scores.flatten(1)
    high = flat.new_full((heads, groups), -math.inf).scatter_reduce(1, offset_id, flat, 'amax')
    low = flat.new_full((heads, groups), math.inf).scatter_reduce(1, offset_id, flat, 'amin')
    assert (high - low).abs().max() < 1e-4
    # The scores do change with the offset (a rotation that ignores position would pass the check above).
    assert (high.max(1).values - low.min(1).values).min() > 0.1


@pytest.mark.parametrize('kind', ROPE_KINDS)
def test_rope_preserves_norms_and_prefix_tokens(kind):
    hw, heads, d, num_prefix = (4, 7), 3, 16, 2
    rope = rope_module(kind, heads, d)
    qk = torch.randn(2, 2, heads, num_prefix + hw[0] * hw[1], d)
    out = rope.rotate(qk, hw, num_prefix)
    torch.testing.assert_close(out.norm(dim=-1), qk.norm(dim=-1), atol=1e-5, rtol=1e-5)
    # Each pair keeps its own norm, too.
    torch.testing.assert_close(out.unflatten(-1, (-1, 2)).norm(dim=-1), qk.unflatten(-1, (-1, 2)).norm(dim=-1),
                               atol=1e-5, rtol=1e-5)
    assert torch.equal(out[..., :num_prefix, :], qk[..., :num_prefix, :])
    torch.testing.assert_close(out[..., num_prefix:, :], rope.rotate(qk[..., num_prefix:, :].contiguous(), hw))


@pytest.mark.parametrize('kind', ROPE_KINDS)
@pytest.mark.parametrize('hw', [(5, 9), (9, 5), (1, 6), (3, 3)])
def test_rope_matches_polar_reference(kind, hw):
    """Stacked q/k (2, B, h, P+N, d) rotated as complex numbers by the angles of docs/design.md section 3."""
    heads, d, num_prefix = 3, 16, 1
    rope = rope_module(kind, heads, d)
    qk = torch.randn(2, 2, heads, num_prefix + hw[0] * hw[1], d)
    out = rope.rotate(qk, hw, num_prefix)
    expected = polar_rotate(qk[..., num_prefix:, :], rope_reference_angles(rope, hw))
    torch.testing.assert_close(out[..., num_prefix:, :].double(), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize('theta', [100.0, 50.0])
def test_rope_axial_matches_timm(theta):
    """timm's RotaryEmbeddingCat with inverse-frequency bands theta^(-4k/d) (in_pixels=False) over integer
    patch indices in 'xy' order, applied with apply_rot_embed_cat."""
    hw, heads, d = (5, 9), 4, 32
    rope = RoPEAxial(d, theta)
    timm_rope = RotaryEmbeddingCat(d, temperature=theta, in_pixels=False, grid_indexing='xy')
    torch.testing.assert_close(timm_rope.bands, axial_reference_angles((1, 2), d, theta)[1, :d // 4].float())
    table = timm_rope.get_embed(list(hw))  # (N, 2d): [sin, cos]
    q = torch.randn(2, heads, 1 + hw[0] * hw[1], d)
    expected = torch.cat([q[:, :, :1], apply_rot_embed_cat(q[:, :, 1:], table)], dim=2)
    torch.testing.assert_close(rope.rotate(q, hw, 1), expected, atol=1e-5, rtol=1e-5)


def test_rope_mixed_matches_timm():
    """timm's RotaryEmbeddingMixed (one layer, 'xy' indexing) with its freqs set to ours."""
    hw, heads, d = (5, 9), 4, 32
    rope = RoPEMixed(heads, d)
    timm_rope = RotaryEmbeddingMixed(heads * d, depth=1, num_heads=heads, grid_indexing='xy')
    with torch.no_grad():
        timm_rope.freqs.copy_(rope.freqs[:, None])  # (2, depth=1, h, d/2)
    table = timm_rope.get_embed(list(hw))[0]  # (h, N, 2d)
    q = torch.randn(2, heads, 1 + hw[0] * hw[1], d)
    expected = torch.cat([q[:, :, :1], apply_rot_embed_cat(q[:, :, 1:], table)], dim=2)
    torch.testing.assert_close(rope.rotate(q, hw, 1), expected, atol=1e-5, rtol=1e-5)


def test_rope_mixed_init_follows_design():
    """Per head: fx = [mag cos a, mag cos(a + pi/2)], fy = [mag sin a, mag sin(a + pi/2)], mag = 10^(-4k/d)."""
    heads, d = 6, 32
    freqs = RoPEMixed(heads, d).freqs.detach().double()
    assert freqs.shape == (2, heads, d // 2)
    mag = 10.0 ** (-4 * torch.arange(d // 4, dtype=torch.float64) / d)
    torch.testing.assert_close(freqs.norm(dim=0), mag.repeat(2).expand(heads, -1), atol=1e-6, rtol=1e-6)
    direction = torch.atan2(freqs[1], freqs[0])  # (h, d/2)
    first, second = direction[:, :d // 4], direction[:, d // 4:]
    # One random angle a per head, shared by its first half; the second half at a + pi/2.
    torch.testing.assert_close(torch.cos(first - first[:, :1]), torch.ones_like(first), atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.cos(second - first[:, :1] - math.pi / 2), torch.ones_like(second), atol=1e-6,
                               rtol=0)
    assert first[:, 0].std() > 0  # heads draw different angles


def test_rope_mixed_frequency_gradients():
    """d loss / d freqs equals autograd through the float64 polar reference and a finite difference."""
    hw, heads, d, num_prefix = (4, 6), 2, 8, 1
    rope = RoPEMixed(heads, d)
    qk = torch.randn(2, 2, heads, num_prefix + hw[0] * hw[1], d)
    weight = torch.randn_like(qk)

    def loss_fn(module):
        return (module.rotate(qk, hw, num_prefix).double() * weight.double()).sum()

    loss_fn(rope).backward()
    freqs = rope.freqs.detach().double().requires_grad_()
    patches = slice(num_prefix, None)
    expected = (polar_rotate(qk[..., patches, :], mixed_reference_angles(hw, freqs)) * weight[..., patches, :]).sum()
    expected.backward()
    assert rope.freqs.grad.abs().max() > 1
    torch.testing.assert_close(rope.freqs.grad.double(), freqs.grad, atol=1e-3, rtol=1e-4)

    direction, eps = torch.randn_like(rope.freqs), 1e-3
    base = rope.freqs.detach().clone()
    with torch.no_grad():
        rope.freqs.copy_(base + eps * direction)
        plus = loss_fn(rope)
        rope.freqs.copy_(base - eps * direction)
        minus = loss_fn(rope)
    finite_difference = (plus - minus) / (2 * eps)
    analytic = (rope.freqs.grad.double() * direction.double()).sum()
    torch.testing.assert_close(finite_difference, analytic, rtol=2e-3, atol=1e-2)


HALF_TOLERANCE = {torch.float16: dict(atol=5e-3, rtol=5e-3), torch.bfloat16: dict(atol=4e-2, rtol=2e-2)}


@pytest.mark.parametrize('kind', ROPE_KINDS)
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_rope_half_precision(kind, dtype):
    """Half inputs stay half and match the float32 result; x up to 699, where angles in fp16 (step 0.5)
    or bf16 (step 4) would be off by large fractions of a radian."""
    hw, heads, d = (3, 700), 2, 16
    rope = rope_module(kind, heads, d)
    qk = torch.randn(2, 1, heads, 1 + hw[0] * hw[1], d)
    half = rope.rotate(qk.to(dtype), hw, 1)
    assert half.dtype == dtype
    expected = rope.rotate(qk.to(dtype).float(), hw, 1)
    torch.testing.assert_close(half.float(), expected, **HALF_TOLERANCE[dtype])
    with torch.autocast('cpu', dtype=torch.bfloat16):
        autocast = rope.rotate(qk.to(torch.bfloat16), hw, 1)
    torch.testing.assert_close(autocast.float(), rope.rotate(qk.to(torch.bfloat16).float(), hw, 1),
                               **HALF_TOLERANCE[torch.bfloat16])


def test_rope_state_dicts_hold_no_tables():
    axial, mixed = RoPEAxial(16, 100.0), RoPEMixed(3, 16)
    for rope in (axial, mixed):
        rope.rotate(torch.randn(1, 3, 1 + 20, 16), (4, 5), 1)  # fills any cache
    assert axial.state_dict() == {}
    assert list(mixed.state_dict()) == ['freqs']
    assert [name for name, _ in mixed.named_parameters()] == ['freqs']
    # A RoPE-Mixed checkpoint loads into a fresh layer and rotates the same way at any grid.
    fresh = RoPEMixed(3, 16)
    fresh.load_state_dict(mixed.state_dict())
    q = torch.randn(1, 3, 6 * 11, 16)
    torch.testing.assert_close(fresh.rotate(q, (6, 11)), mixed.rotate(q, (6, 11)))


def test_tables_cached_under_inference_mode_serve_training():
    """A first call under torch.inference_mode (evaluation) must not leave cached tables that a later
    training step cannot save for backward."""
    hw = (3, 4)
    axial, mixed, sincos = RoPEAxial(16, 100.0), RoPEMixed(2, 16), SinCosPosEmbed(16)
    with torch.inference_mode():
        axial.rotate(torch.randn(1, 2, 12, 16), hw)
        mixed.rotate(torch.randn(1, 2, 12, 16), hw)
        sincos(torch.randn(1, 12, 16), hw)
    qk = torch.randn(1, 2, 12, 16, requires_grad=True)
    (axial.rotate(qk, hw) + mixed.rotate(qk, hw)).square().sum().backward()
    assert qk.grad.abs().sum() > 0 and mixed.freqs.grad.abs().sum() > 0
    x = torch.randn(1, 12, 16, requires_grad=True)
    sincos(x, hw).square().sum().backward()
    assert x.grad.abs().sum() > 0


# ----------------------------------------------------------------------------- LOOPE


def loope_inputs(hw, patch_size=4, embed_dims=32, num_prefix=1, batch=2):
    x = torch.randn(batch, num_prefix + hw[0] * hw[1], embed_dims)
    images = torch.randn(batch, 3, hw[0] * patch_size, hw[1] * patch_size)
    return x, images


@pytest.mark.parametrize('hw', [(1, 1), (3, 5), (8, 8), (7, 12), (12, 7)])
def test_loope_shapes_and_init_formula(hw):
    """At init X_C = 0, so patches get exactly E(gilbert order) and the CLS token its zero vector."""
    loope = LOOPEPosEmbed(32, patch_size=4, num_prefix_tokens=1)
    x, images = loope_inputs(hw)
    out = loope(x, hw, images)
    assert out.shape == x.shape
    assert torch.equal(loope.context(images), torch.zeros(2, hw[0] * hw[1]))
    expected = loope_reference(gilbert_order(*hw).flatten(), 32)
    torch.testing.assert_close((out[:, 1:] - x[:, 1:]).double(), expected.expand(2, -1, -1), atol=1e-5, rtol=0)
    assert torch.equal(out[:, 0], x[:, 0])


def test_loope_encoding_with_offsets_and_cls_vector():
    """E(X_G + X_C) for a non-zero context output, and the learned CLS vector."""
    hw = (5, 8)
    loope = LOOPEPosEmbed(32, patch_size=4, num_prefix_tokens=1)
    with torch.no_grad():
        loope.context.head.weight.fill_(0.7)
        loope.context.head.bias.fill_(-0.2)
        loope.prefix_pos_embed.normal_()
    x, images = loope_inputs(hw)
    offsets = loope.context(images)
    assert offsets.shape == (2, hw[0] * hw[1])
    assert offsets.abs().min() > 0 and offsets.abs().max() < 1
    assert offsets.std() > 0.05  # the offset varies per patch and image
    out = loope(x, hw, images)
    expected = loope_reference(gilbert_order(*hw).flatten().double() + offsets.double(), 32)
    torch.testing.assert_close((out[:, 1:] - x[:, 1:]).double(), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(out[:, 0], x[:, 0] + loope.prefix_pos_embed[0])
    assert 'prefix_pos_embed' in loope.state_dict()


def test_loope_context_learns():
    """The zero-initialised head gets gradients first; after one optimizer step every context parameter does."""
    hw = (6, 9)
    loope = LOOPEPosEmbed(32, patch_size=4, num_prefix_tokens=1)
    optimizer = torch.optim.SGD(loope.parameters(), lr=0.5)
    x, images = loope_inputs(hw)
    target = torch.randn_like(x)

    def backward():
        optimizer.zero_grad()
        (loope(x, hw, images) * target).sum().backward()

    backward()
    assert loope.context.head.bias.grad.abs() > 0
    assert loope.prefix_pos_embed.grad.abs().sum() > 0
    optimizer.step()
    assert loope.context(images).abs().max() > 0
    backward()
    for name, param in loope.context.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_loope_mlp_context_is_bound_to_its_grid():
    loope = LOOPEPosEmbed(32, patch_size=4, num_prefix_tokens=0, context='mlp', grid_size=(3, 5))
    x, images = loope_inputs((3, 5), num_prefix=0)
    assert loope(x, (3, 5), images).shape == x.shape
    x, images = loope_inputs((4, 5), num_prefix=0)
    with pytest.raises(ValueError, match=r"context='mlp'.*3x5.*4x5.*context='conv'"):
        loope(x, (4, 5), images)


def test_loope_mlp_context_needs_grid_size():
    with pytest.raises(ValueError, match=r"grid_size"):
        build_pos_embed(dict(type='loope', context='mlp'), 'token', embed_dims=32, patch_size=4)


def test_loope_input_errors():
    loope = LOOPEPosEmbed(32, patch_size=4)
    x, images = loope_inputs((3, 5), num_prefix=0)
    with pytest.raises(ValueError, match='images'):
        loope(x, (3, 5), None)
    with pytest.raises(ValueError, match=r'20-patch grid.*\(3, 5\)'):
        loope(x, (3, 5), loope_inputs((4, 5))[1])


def test_loope_state_dict_holds_no_order():
    loope = LOOPEPosEmbed(32, patch_size=4, num_prefix_tokens=1)
    x, images = loope_inputs((3, 5))
    loope(x, (3, 5), images)
    params = {name for name, _ in loope.named_parameters()}
    batchnorm_stats = {name for name, _ in loope.named_buffers()}
    assert all(name.rsplit('.', 1)[1] in ('running_mean', 'running_var', 'num_batches_tracked')
               for name in batchnorm_stats)
    assert set(loope.state_dict()) == params | batchnorm_stats


# ----------------------------------------------------------------------------- APE and sin-cos


def test_ape_resize_is_torch_bicubic():
    src, dst, c = (6, 8), (5, 11), 16
    ape = LearnedPosEmbed(c, src, num_prefix_tokens=1)
    x = torch.randn(2, 1 + dst[0] * dst[1], c)
    out = ape(x, dst)
    grid = ape.pos_embed.detach().reshape(1, *src, c).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=dst, mode='bicubic', align_corners=False).permute(0, 2, 3, 1).reshape(1, -1, c)
    torch.testing.assert_close(out[:, 1:] - x[:, 1:], expected.expand(2, -1, -1))
    assert torch.equal(out[:, 0], x[:, 0])  # no prefix encoding by default (DeiT-III style)
    x = torch.randn(2, 1 + src[0] * src[1], c)
    torch.testing.assert_close(ape(x, src)[:, 1:], x[:, 1:] + ape.pos_embed)
    # Gradients reach the table through the resize.
    ape(torch.randn(1, 1 + dst[0] * dst[1], c), dst).sum().backward()
    assert ape.pos_embed.grad.abs().sum() > 0


def test_ape_prefix_vector():
    ape = LearnedPosEmbed(16, (3, 4), num_prefix_tokens=2, embed_prefix=True)
    assert set(ape.state_dict()) == {'pos_embed', 'prefix_pos_embed'}
    assert ape.pos_embed.shape == (1, 12, 16) and ape.prefix_pos_embed.shape == (1, 2, 16)
    x = torch.randn(2, 2 + 12, 16)
    torch.testing.assert_close(ape(x, (3, 4)), x + torch.cat([ape.prefix_pos_embed, ape.pos_embed], dim=1))


def test_sincos_is_fixed_and_follows_mae_layout():
    hw, c = (6, 11), 32
    sincos = SinCosPosEmbed(c, num_prefix_tokens=1)
    x = torch.zeros(2, 1 + hw[0] * hw[1], c)
    first, second = sincos(x, hw), sincos(x, hw)
    assert list(sincos.parameters()) == [] and sincos.state_dict() == {}
    assert torch.equal(first, second)
    assert torch.equal(first[:, 0], x[:, 0])
    table = first[0, 1:]
    distances = torch.cdist(table, table) + torch.eye(len(table)) * 1e3
    assert distances.min() > 1e-2, 'every cell must get a distinct encoding'
    # MAE: [sin(x w), cos(x w), sin(y w), cos(y w)], w_k = 10000^(-k / (C/4)).
    xs, ys = reference_coords(hw)
    omega = 10000.0 ** (-torch.arange(c // 4, dtype=torch.float64) / (c // 4))
    ax, ay = xs[:, None] * omega, ys[:, None] * omega
    expected = torch.cat([ax.sin(), ax.cos(), ay.sin(), ay.cos()], dim=1)
    torch.testing.assert_close(table.double(), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_token_encodings_half_precision(dtype):
    """Half tokens stay half and match float32; positions reach ~1400, so half-precision angles would show."""
    hw, c = (2, 700), 32
    tolerance = HALF_TOLERANCE[dtype]
    loope = LOOPEPosEmbed(c, patch_size=2, num_prefix_tokens=1)
    with torch.no_grad():
        loope.context.head.bias.fill_(0.3)  # offset 2 sigmoid(0.3) - 1 ~ 0.15
    modules = [LearnedPosEmbed(c, (3, 5), num_prefix_tokens=1), SinCosPosEmbed(c, num_prefix_tokens=1), loope]
    x = torch.randn(2, 1 + hw[0] * hw[1], c).to(dtype)
    images = torch.randn(2, 3, hw[0] * 2, hw[1] * 2)
    for module in modules:
        out = module(x, hw, images)
        assert out.dtype == dtype, type(module).__name__
        expected = module(x.float(), hw, images)
        torch.testing.assert_close(out.float(), expected, **tolerance)
    # Under autocast (conv in bf16), LOOPE still encodes order + offset in float32.
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = loope(x.to(torch.bfloat16), hw, images)
    torch.testing.assert_close(out.float(), loope(x.to(torch.bfloat16).float(), hw, images),
                               **HALF_TOLERANCE[torch.bfloat16])


# ----------------------------------------------------------------------------- RPB


def swin_index(window):
    """mmdet WindowMSA's index: double_step_seq, its transpose, flipped."""
    wh, ww = window
    seq = (torch.arange(0, (2 * ww - 1) * wh, 2 * ww - 1)[:, None] + torch.arange(ww)[None, :]).reshape(1, -1)
    return (seq + seq.T).flip(1)


@pytest.mark.parametrize('window', [(3, 5), (7, 7), (4, 2)])
def test_rpb_table_index_and_bias(window):
    heads = 3
    rpb = RelativePositionBias(window, heads)
    n = window[0] * window[1]
    assert rpb.relative_position_bias_table.shape == ((2 * window[0] - 1) * (2 * window[1] - 1), heads)
    assert rpb.relative_position_index.shape == (n, n)
    assert torch.equal(rpb.relative_position_index, swin_index(window))
    assert torch.equal(rpb.relative_position_index, get_relative_position_index(*window))
    assert set(rpb.state_dict()) == {'relative_position_bias_table', 'relative_position_index'}
    bias = rpb.bias(window)
    assert bias.shape == (heads, n, n)
    i, j = n - 1, 1
    assert torch.equal(bias[:, i, j], rpb.relative_position_bias_table[rpb.relative_position_index[i, j]])
    # Equal offsets give equal biases.
    rows, cols = torch.div(torch.arange(n), window[1], rounding_mode='floor'), torch.arange(n) % window[1]
    same = (rows[:, None] - rows[None, :] == 1) & (cols[:, None] - cols[None, :] == -1)
    values = bias[:, same]
    assert torch.equal(values, values[:, :1].expand_as(values))
    with pytest.raises(ValueError, match='window'):
        rpb.bias((window[1] + 1, window[0]))


# ----------------------------------------------------------------------------- builder

CONTEXT = dict(embed_dims=64, grid_size=(4, 6), patch_size=4, in_channels=3, num_prefix_tokens=1, num_heads=4,
               head_dim=16, window_size=(3, 5), axial_theta=100.0)
BUILT = [
    (dict(type='ape'), LearnedPosEmbed, None),
    (dict(type='sincos'), SinCosPosEmbed, None),
    (dict(type='rope_axial'), None, RoPEAxial),
    (dict(type='rope_axial', with_ape=True), LearnedPosEmbed, RoPEAxial),
    (dict(type='rope_mixed'), None, RoPEMixed),
    (dict(type='rope_mixed', with_ape=True, embed_prefix=True), LearnedPosEmbed, RoPEMixed),
    (dict(type='loope'), LOOPEPosEmbed, None),
    (dict(type='rpb'), None, RelativePositionBias),
    (dict(type='none'), None, None),
]


def test_builder_cases_cover_every_type():
    assert {cfg['type'] for cfg, _, _ in BUILT} == set(ENCODINGS)


@pytest.mark.parametrize('cfg, token_cls, attention_cls', BUILT)
def test_builder_builds_both_roles(cfg, token_cls, attention_cls):
    token = build_pos_embed(cfg, 'token', **CONTEXT)
    attention = build_pos_embed(cfg, 'attention', **CONTEXT)
    assert (token is None) if token_cls is None else (type(token) is token_cls)
    assert (attention is None) if attention_cls is None else (type(attention) is attention_cls)
    if isinstance(token, LearnedPosEmbed):
        assert token.pos_embed.shape == (1, 24, 64)
        assert (token.prefix_pos_embed is not None) == cfg.get('embed_prefix', False)
    if isinstance(token, LOOPEPosEmbed):
        assert token.context.features[0].kernel_size == (4, 4)
        assert token.prefix_pos_embed.shape == (1, 1, 64)
    if isinstance(attention, RoPEMixed):
        assert attention.freqs.shape == (2, 4, 8)
    if isinstance(attention, RelativePositionBias):
        assert attention.window_size == (3, 5)
        assert attention.relative_position_bias_table.shape == (5 * 9, 4)


def test_built_encodings_implement_their_roles_base_class():
    """What the builder returns for each role implements that role's interface (base.py); the token base
    has no encoding of its own to add, the attention base leaves q and k unchanged and adds no bias."""
    for cfg, _, _ in BUILT:
        token = build_pos_embed(cfg, 'token', **CONTEXT)
        attention = build_pos_embed(cfg, 'attention', **CONTEXT)
        assert token is None or isinstance(token, TokenPosEmbed), cfg
        assert attention is None or isinstance(attention, AttentionPosEmbed), cfg
    with pytest.raises(NotImplementedError):
        TokenPosEmbed()(torch.zeros(1, 5, 8), (2, 2))
    qk = torch.randn(2, 1, 2, 5, 8)
    base = AttentionPosEmbed()
    assert base.rotate(qk, (2, 2), num_prefix_tokens=1) is qk and base.bias((2, 2)) is None


def test_builder_theta():
    """RoPE-Axial's theta: the config's, else the backbone's default (axial_theta), which the builder must be given;
    RoPE-Mixed's: 10 unless given."""
    assert build_pos_embed(dict(type='rope_axial'), 'attention', **CONTEXT).theta == 100.0
    assert build_pos_embed(dict(type='rope_axial'), 'attention', **{**CONTEXT, 'axial_theta': 50.0}).theta == 50.0
    given = build_pos_embed(dict(type='rope_axial', theta=10), 'attention', **{**CONTEXT, 'axial_theta': 50.0})
    assert given.theta == 10
    without_default = {k: v for k, v in CONTEXT.items() if k != 'axial_theta'}
    with pytest.raises(ValueError, match=r"pos_embed type='rope_axial' has no theta: give theta, or axial_theta"):
        build_pos_embed(dict(type='rope_axial'), 'attention', **without_default)
    assert build_pos_embed(dict(type='rope_mixed'), 'attention', **without_default).theta == 10.0
    mixed = build_pos_embed(dict(type='rope_mixed', theta=100.0), 'attention', **CONTEXT)
    torch.testing.assert_close(mixed.freqs.detach().norm(dim=0)[0, :4], 100.0 ** (-torch.arange(0, 16, 4) / 16))
    assert build_pos_embed(dict(type='loope', context='mlp'), 'token', **CONTEXT).context.grid_size == (4, 6)


@pytest.mark.parametrize('cfg, role, context, match', [
    (dict(type='rope2d'), 'attention', {}, r"type='rope2d'.*accepted types: 'ape', 'sincos', 'rope_axial', "
                                           r"'rope_mixed', 'loope', 'rpb', 'none'"),
    (dict(theta=10.0), 'attention', {}, r"'type'.*'rope_mixed'"),
    ('rope_mixed', 'attention', {}, r"'type'.*'rope_mixed'"),
    (dict(type='rope_axial', thetta=10.0), 'attention', {}, r"'thetta'.*accepted: .*'theta'"),
    (dict(type='ape', context='conv'), 'token', {}, r"type='ape'.*'context'.*accepted: 'embed_prefix'"),
    (dict(type='none', theta=1.0), 'token', {}, r"'theta'.*accepted: none"),
    (dict(type='loope', context='linear'), 'token', {}, r"context='linear'.*accepted: 'conv', 'mlp'"),
    (dict(type='rope_mixed', theta=0), 'attention', {}, r'theta.*positive number.*0'),
    (dict(type='rope_axial', theta=-1.0), 'attention', {}, r'theta.*positive number.*-1'),
    (dict(type='rope_axial', theta='100'), 'attention', {}, r"theta.*positive number.*'100'"),
    (dict(type='rope_axial'), 'attention', dict(head_dim=18), r'head_dim=18.*divisible by 4|divisible by 4.*18'),
    (dict(type='rope_mixed'), 'attention', dict(head_dim=6), r'head_dim=6.*divisible by 4|divisible by 4.*6'),
    (dict(type='rpb'), 'attention', dict(window_size=None), r"'rpb'.*window.*'rope_mixed'"),
    (dict(type='sincos'), 'token', dict(embed_dims=30), r'embed_dims.*divisible by 4.*30'),
    (dict(type='loope'), 'token', dict(embed_dims=31), r'loope.*embed_dims.*31'),
    (dict(type='ape'), 'block', {}, r"role='block'.*accepted: 'token', 'attention'"),
])
def test_builder_errors_name_parameter_and_accepted_values(cfg, role, context, match):
    with pytest.raises(ValueError, match=match):
        build_pos_embed(cfg, role, **{**CONTEXT, **context})


# ----------------------------------------------------------------------------- the parsed config


def test_encodings_table_is_the_documented_one():
    """ENCODINGS (derived from PosEmbedSpec's fields) is docs/design.md section 3's table, written out here."""
    rope = dict(with_ape=False, embed_prefix=False, coords='index', normalize_coords='separate', coord_aug=None)
    assert ENCODINGS == {
        'ape': dict(embed_prefix=False), 'sincos': {},
        'rope_axial': dict(theta=None, **rope, pairing='interleaved', axes='xy', scaling=None),
        'rope_mixed': dict(theta=10.0, **rope, scaling=None), 'loope': dict(context='conv'), 'rpb': {}, 'none': {}}


def test_spec_holds_every_parameter_with_its_default():
    """A spec has the type and every parameter (those the type does not take at their no-op defaults); a spec
    passes through parse as it is; a given config dict is copied, the spec cannot be changed."""
    cfg = dict(type='rope_mixed', with_ape=True, coord_aug=dict(jitter=2))
    spec = PosEmbedSpec.parse(cfg)
    assert spec == PosEmbedSpec(type='rope_mixed', theta=10.0, with_ape=True, embed_prefix=False, coords='index',
                                normalize_coords='separate', coord_aug=dict(shift=0.0, jitter=2.0, rescale=1.0),
                                pairing='interleaved', axes='xy', scaling=None, context='conv')
    assert spec.is_rope and spec.has_learned_ape and PosEmbedSpec.parse(spec) is spec
    cfg['coord_aug']['jitter'] = 3
    assert spec.coord_aug['jitter'] == 2.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.coords = 'interpolate'
    ape = PosEmbedSpec.parse(dict(type='ape'))
    assert (ape.theta, ape.coords, ape.coord_aug, ape.is_rope, ape.has_learned_ape) == \
        (None, 'index', None, False, True)
    loope = PosEmbedSpec.parse(dict(type='loope', context='mlp'))
    assert loope.params == dict(context='mlp') and not loope.has_learned_ape


def test_spec_theta_default_is_the_backbones():
    """RoPE-Axial's theta stays None until the backbone's default is filled in (a given theta wins); RoPE-Mixed's
    is 10 whatever the backbone."""
    assert PosEmbedSpec.parse(dict(type='rope_axial')).theta is None
    assert PosEmbedSpec.parse(dict(type='rope_axial'), axial_theta=50.0).theta == 50.0
    assert PosEmbedSpec.parse(dict(type='rope_axial', theta=10), axial_theta=50.0).theta == 10
    assert PosEmbedSpec.parse(dict(type='rope_mixed'), axial_theta=50.0).theta == 10.0
    assert PosEmbedSpec(type='rope_mixed').theta == 10.0
    spec = PosEmbedSpec.parse(dict(type='rope_axial', pairing='half'), axial_theta=50.0)
    rope = build_pos_embed(spec, 'attention', **{**CONTEXT, 'axial_theta': 100.0})
    assert (rope.theta, rope.pairing) == (50.0, 'half')


@pytest.mark.parametrize('kwargs, match', [
    (dict(type='rope2d'), r"pos_embed type='rope2d' is not supported; accepted types: 'ape', 'sincos', 'rope_axial'"),
    (dict(type='rope_axial', coords='dinov3'), r"pos_embed coords='dinov3' is not supported; accepted: 'index', "
                                               r"'interpolate', 'centered'"),
    (dict(type='rope_mixed', theta=-1.0), r'pos_embed theta must be a finite positive number, got -1.0'),
    (dict(type='rope_axial', coord_aug=dict(jitter=0.5)), r'coord_aug jitter must be a finite number >= 1, got 0.5'),
    (dict(type='ape', coords='interpolate'), r"pos_embed type='ape' got unknown parameter\(s\) 'coords'; "
                                             r"accepted: 'embed_prefix'"),
])
def test_spec_built_directly_is_validated_alike(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PosEmbedSpec(**kwargs)
