"""RoPE coordinate modes of the ViT (coords='index' | 'interpolate') and the train-time coordinate
augmentation (coord_aug), against references written here from docs/design.md section 2:
- rotations: channel pairs as complex numbers times torch.polar(1, angle), float64, with angles of
  axial (x mag_k, y mag_k) or mixed (fx x + fy y) RoPE at the given coordinates;
- 'interpolate': x' = (x + 0.5) W_ref / W - 0.5, y' = (y + 0.5) H_ref / H - 0.5;
- augmentation: DINOv3's formula in its normalised coordinates (c = 2 (x + 0.5) / W - 1 per axis,
  then c += u, c *= jitter per axis, c *= rescale), mapped to reference-grid units.
"""
import math

import pytest
import torch

from mmpe.models import PESwinTransformer, PEVisionTransformer
from mmpe.pos_embed import TABLE_CACHES, RoPEAxial, RoPEMixed, parse_pos_embed_cfg
from mmpe.pos_embed.rope import IDENTITY, coords_affine

ROPE_TYPES = ['rope_axial', 'rope_mixed']
IMG, PATCH = (48, 64), 16  # reference grid 3 x 4 (not square)
REF = (IMG[0] // PATCH, IMG[1] // PATCH)
AUG = dict(shift=0.5, jitter=1.5, rescale=2.0)


def grid_xy(hw):
    """float64 column x and row y (H*W,) of a row-major grid."""
    rows, cols = torch.meshgrid(torch.arange(hw[0], dtype=torch.float64), torch.arange(hw[1], dtype=torch.float64),
                                indexing='ij')
    return cols.flatten(), rows.flatten()


def interpolated_xy(hw, ref):
    x, y = grid_xy(hw)
    return (x + 0.5) * ref[1] / hw[1] - 0.5, (y + 0.5) * ref[0] / hw[0] - 0.5


def reference_angles(rope, x, y):
    """(h or 1, N, d/2) float64 angles of docs/design.md section 3 at coordinates x, y (N,)."""
    if isinstance(rope, RoPEAxial):
        mag = rope.theta ** (-4 * torch.arange(rope.head_dim // 4, dtype=torch.float64) / rope.head_dim)
        return torch.cat([x[:, None] * mag, y[:, None] * mag], dim=1)[None]
    fx, fy = rope.freqs.detach().double()
    return fx[:, None] * x[:, None] + fy[:, None] * y[:, None]


def reference_rotate(qk, angles, num_prefix):
    """qk (..., h, P + N, d) with patch pairs turned by angles (h or 1, N, d/2); prefix tokens unchanged."""
    z = torch.view_as_complex(qk[..., num_prefix:, :].double().unflatten(-1, (-1, 2)).contiguous())
    patches = torch.view_as_real(z * torch.polar(torch.ones_like(angles), angles)).flatten(-2)
    return torch.cat([qk[..., :num_prefix, :].double(), patches], dim=-2)


def rope_module(kind, heads=2, head_dim=16):
    return RoPEAxial(head_dim, 100.0) if kind == 'rope_axial' else RoPEMixed(heads, head_dim)


def vit(pos_embed, seed=0, **kwargs):
    """A small ViT whose attention depends strongly on positions (q/k projections scaled up from timm's
    std 0.02 init, under which attention is almost uniform)."""
    torch.manual_seed(seed)
    model = PEVisionTransformer(img_size=IMG, patch_size=PATCH, embed_dims=32, depth=3, num_heads=2,
                                out_indices=(0, 2), pos_embed=pos_embed, **kwargs)
    with torch.no_grad():
        for block in model.blocks:
            block.attn.qkv.weight[:64].mul_(20)
    return model


def outputs(model, images):
    return torch.cat([o.flatten() for o in model(images)])


def dinov3_affine_reference(hw, ref, aug, draw):
    """The transform (a_x, b_x, a_y, b_y) of reference-grid coordinates that DINOv3's RoPE augmentation
    applies, for the draw u_x, u_y, j_x, j_y, r in U(-1, 1): in DINOv3's units c = 2 (x' + 0.5) / W_ref - 1
    of the interpolated x', c -> (c + shift u) * jitter^j * rescale^r, back to x' = (c + 1) W_ref / 2 - 0.5."""
    u_x, u_y, j_x, j_y, r = draw
    result = []
    for size, ref_size, u, j in ((hw[1], ref[1], u_x, j_x), (hw[0], ref[0], u_y, j_y)):
        x = torch.tensor([0.0, 1.0], dtype=torch.float64)  # two points fix an affine map
        c = 2 * ((x + 0.5) / size) - 1  # DINOv3 'separate' normalisation of the current grid
        c = (c + aug['shift'] * u) * aug['jitter'] ** j * aug['rescale'] ** r
        x_new = (c + 1) * ref_size / 2 - 0.5
        result += [(x_new[1] - x_new[0]).item(), x_new[0].item()]
    return tuple(result)


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize('kind', ROPE_TYPES)
def test_parse_fills_defaults(kind):
    assert parse_pos_embed_cfg(dict(type=kind))[1]['coords'] == 'index'
    assert parse_pos_embed_cfg(dict(type=kind))[1]['coord_aug'] is None
    assert parse_pos_embed_cfg(dict(type=kind, coord_aug=dict(jitter=2)))[1]['coord_aug'] == dict(
        shift=0.0, jitter=2.0, rescale=1.0)


@pytest.mark.parametrize('cfg, match', [
    (dict(coords='normalized'), r"coords='normalized' is not supported; accepted: 'index', 'interpolate'"),
    (dict(coord_aug=dict(shift=-0.1)), r'coord_aug shift must be a finite number >= 0, got -0.1'),
    (dict(coord_aug=dict(jitter=0.5)), r'coord_aug jitter must be a finite number >= 1, got 0.5'),
    (dict(coord_aug=dict(rescale=0.9)), r'coord_aug rescale must be a finite number >= 1, got 0.9'),
    (dict(coord_aug=dict(rescale='2')), r"coord_aug rescale must be a finite number >= 1, got '2'"),
    (dict(coord_aug=dict(shift=0.1, scale=2)), r"coord_aug got unknown key\(s\) 'scale'; accepted: 'shift', "
                                               r"'jitter', 'rescale'"),
    (dict(coord_aug=(0.1, 1, 1)), r'coord_aug must be None or a dict'),
])
def test_bad_values_are_rejected(cfg, match):
    for kind in ROPE_TYPES:
        with pytest.raises(ValueError, match=match):
            parse_pos_embed_cfg(dict(type=kind, **cfg))


def test_coords_only_for_rope():
    with pytest.raises(ValueError, match=r"type='ape' got unknown parameter\(s\) 'coords'"):
        parse_pos_embed_cfg(dict(type='ape', coords='interpolate'))


@pytest.mark.parametrize('cfg', [dict(coords='interpolate'), dict(coord_aug=dict(rescale=2))])
def test_window_attention_rejects_coordinate_options(cfg):
    for kind in ROPE_TYPES:
        with pytest.raises(ValueError, match="PESwinTransformer attends in windows with window-local RoPE"):
            PESwinTransformer(embed_dims=16, depths=(2,), num_heads=(2,), strides=(4,), out_indices=(0,),
                              window_size=4, pos_embed=dict(type=kind, **cfg))
        with pytest.raises(ValueError, match="PEVisionTransformer with window_size=2 attends in windows"):
            vit(dict(type=kind, **cfg), window_size=2, global_attn_indices=(1,))
    PESwinTransformer(embed_dims=16, depths=(2,), num_heads=(2,), strides=(4,), out_indices=(0,), window_size=4,
                      pos_embed=dict(type='rope_mixed', coords='index', coord_aug=None))


# ----------------------------------------------------------------------------- 'index'


@pytest.mark.parametrize('kind', ROPE_TYPES)
def test_index_is_unchanged(kind):
    """Explicit coords='index' (with coord_aug=None, or coord_aug in eval) gives exactly the default model's
    outputs, uses the plain-index cache keys, and a training forward draws no random numbers."""
    images = torch.randn(2, 3, 80, 112)
    default = vit(dict(type=kind)).eval()
    expected = outputs(default, images)
    for cfg in (dict(coords='index'), dict(coords='index', coord_aug=AUG)):
        model = vit(dict(type=kind, **cfg)).eval()
        assert torch.equal(outputs(model, images), expected)
    for cache in TABLE_CACHES.values():
        cache.clear()
    model = vit(dict(type=kind, coords='index')).train()
    state = torch.get_rng_state()
    assert torch.equal(outputs(model, images), expected)
    assert torch.equal(torch.get_rng_state(), state)
    assert list(TABLE_CACHES['rope_coords'].entries)[-1] == ((5, 7), 1, torch.device('cpu'))


@pytest.mark.parametrize('kind', ROPE_TYPES)
@pytest.mark.parametrize('affine', [IDENTITY, (0.75, -0.125, 1.5, 0.25)], ids=['identity', 'scaled'])
def test_rotation_matches_polar_reference(kind, affine):
    hw, prefix = (5, 7), 1
    rope = rope_module(kind)
    qk = torch.randn(2, 2, 2, prefix + hw[0] * hw[1], 16)
    x, y = grid_xy(hw)
    angles = reference_angles(rope, affine[0] * x + affine[1], affine[2] * y + affine[3])
    torch.testing.assert_close(rope.rotate(qk, hw, prefix, affine).double(), reference_rotate(qk, angles, prefix),
                               atol=1e-5, rtol=0)


# ----------------------------------------------------------------------------- 'interpolate'


@pytest.mark.parametrize('kind', ROPE_TYPES)
def test_interpolate_equals_index_at_reference_grid(kind):
    images = torch.randn(2, 3, *IMG)
    expected = outputs(vit(dict(type=kind)).eval(), images)
    assert torch.equal(outputs(vit(dict(type=kind, coords='interpolate')).eval(), images), expected)
    assert coords_affine(REF, REF, 'interpolate') == IDENTITY


@pytest.mark.parametrize('kind', ROPE_TYPES)
@pytest.mark.parametrize('size', [(80, 112), (32, 48), (48, 128)])
def test_interpolate_equals_scaled_reference(kind, size):
    """At another grid, the 'interpolate' ViT equals the 'index' ViT (same weights) whose every attention
    rotates by the reference angles at the scaled coordinates."""
    images = torch.randn(2, 3, *size)
    model = vit(dict(type=kind, coords='interpolate')).eval()
    reference = vit(dict(type=kind)).eval()
    hw = (size[0] // PATCH, size[1] // PATCH)
    x, y = interpolated_xy(hw, REF)
    for block in reference.blocks:
        rope = block.attn.pos_embed
        rope.rotate = lambda qk, grid, p, affine, rope=rope: reference_rotate(
            qk, reference_angles(rope, x, y), p).to(qk.dtype)
    expected = outputs(reference, images)
    torch.testing.assert_close(outputs(model, images), expected, atol=1e-5, rtol=1e-5)
    # the scaling matters at this grid
    assert (outputs(vit(dict(type=kind)).eval(), images) - expected).abs().max() > 0.01


# ----------------------------------------------------------------------------- augmentation


@pytest.mark.parametrize('coords', ['index', 'interpolate'])
@pytest.mark.parametrize('hw', [(3, 4), (5, 9)])
def test_augmentation_follows_dinov3(coords, hw):
    """The drawn transform equals DINOv3's augmentation (shift, then jitter and rescale about the grid
    centre) for the same five uniform numbers, the first draw of torch's global generator."""
    torch.manual_seed(3)
    draw = (2 * torch.rand(5, dtype=torch.float64) - 1).tolist()
    torch.manual_seed(3)
    ours = coords_affine(hw, REF, coords, AUG)
    # 'index' is 'interpolate' with the current grid as its own reference grid (scaling about its centre),
    # except that shifts stay in units of the reference grid: add the scaled shift difference.
    expected = dinov3_affine_reference(hw, REF if coords == 'interpolate' else hw, AUG, draw)
    if coords == 'index':
        a_x, b_x, a_y, b_y = expected
        expected = (a_x, b_x + a_x * (REF[1] - hw[1]) * AUG['shift'] * draw[0] / 2,
                    a_y, b_y + a_y * (REF[0] - hw[0]) * AUG['shift'] * draw[1] / 2)
    for value, ref in zip(ours, expected):
        assert value == pytest.approx(ref, rel=1e-12, abs=1e-12)


def test_augmentation_ranges():
    """Over many draws: scales within [1 / (jitter rescale), jitter rescale], shifts within
    shift * reference extent / 2 times the scale, each reaching most of its range."""
    torch.manual_seed(0)
    affines = torch.tensor([coords_affine(REF, REF, 'interpolate', AUG) for _ in range(2000)], dtype=torch.float64)
    scales = affines[:, [0, 2]]
    limit = AUG['jitter'] * AUG['rescale']
    assert scales.min() >= 1 / limit and scales.max() <= limit
    assert scales.log().min() < -0.9 * math.log(limit) and scales.log().max() > 0.9 * math.log(limit)
    # centre (ref - 1) / 2 maps to centre + s t: the shift t = a (centre) + b - centre, divided by s
    centres = torch.tensor([(REF[1] - 1) / 2, (REF[0] - 1) / 2], dtype=torch.float64)
    shifts = (scales * centres + affines[:, [1, 3]] - centres) / scales
    half_extent = AUG['shift'] * torch.tensor([REF[1], REF[0]], dtype=torch.float64) / 2
    assert (shifts.abs() <= half_extent).all() and (shifts.abs().amax(0) > 0.95 * half_extent).all()
    # one draw per call, independent per axis
    assert not torch.allclose(scales[:, 0], scales[:, 1])


@pytest.mark.parametrize('kind', ROPE_TYPES)
def test_augmentation_train_only_and_reproducible(kind):
    images = torch.randn(2, 3, 80, 112)
    plain = vit(dict(type=kind, coords='interpolate'))
    model = vit(dict(type=kind, coords='interpolate', coord_aug=AUG))
    assert torch.equal(outputs(model.eval(), images), outputs(plain.eval(), images))
    model.train()
    plain.train()
    torch.manual_seed(1)
    first = outputs(model, images)
    second = outputs(model, images)
    torch.manual_seed(1)
    assert torch.equal(outputs(model, images), first)
    assert torch.equal(outputs(model, images), second)
    for out in (first, second):
        assert (out - outputs(plain, images)).abs().max() > 0.01
    assert (first - second).abs().max() > 0.01


@pytest.mark.parametrize('kind', ROPE_TYPES)
def test_one_draw_per_forward_shared_by_all_layers(kind):
    """Every block's rotation gets the same non-identity transform, which is the single draw of the
    forward; no shared tables cache gains an entry for it (no later forward would reuse it)."""
    model = vit(dict(type=kind, coords='interpolate', coord_aug=AUG)).train()
    seen = []
    for block in model.blocks:
        rope = block.attn.pos_embed
        rope.rotate = lambda qk, hw, p, affine, rope=rope, original=rope.rotate: (
            seen.append(affine) or original(qk, hw, p, affine))
    for cache in TABLE_CACHES.values():
        cache.clear()
    torch.manual_seed(5)
    outputs(model, torch.randn(2, 3, 80, 112))
    state = torch.get_rng_state()
    torch.manual_seed(5)
    torch.randn(2, 3, 80, 112)
    expected = coords_affine((5, 7), REF, 'interpolate', AUG)
    assert torch.equal(torch.get_rng_state(), state)  # the forward drew exactly what coords_affine draws
    assert seen == [expected] * len(model.blocks) and expected != coords_affine((5, 7), REF, 'interpolate')
    outputs(model, torch.randn(2, 3, 80, 112))
    table = 'rope_axial_tables' if kind == 'rope_axial' else 'rope_coords'
    assert len(TABLE_CACHES[table]) == 0


@pytest.mark.parametrize('kind', ROPE_TYPES)
def test_scores_depend_only_on_offsets_within_a_draw(kind):
    """Same q and same k at every patch, rotated at one drawn transform: patch-patch scores depend only on
    the integer offset between the patches (and the CLS row on nothing)."""
    hw, heads, d = (5, 9), 2, 16
    rope = rope_module(kind, heads, d)
    torch.manual_seed(2)
    affine = coords_affine(hw, REF, 'interpolate', AUG)
    n = 1 + hw[0] * hw[1]
    q = torch.randn(1, heads, 1, d).expand(-1, -1, n, -1)
    k = torch.randn(1, heads, 1, d).expand(-1, -1, n, -1)
    scores = (rope.rotate(q, hw, 1, affine) @ rope.rotate(k, hw, 1, affine).transpose(-1, -2))[0, :, 1:, 1:]
    x, y = grid_xy(hw)
    offset = ((y[:, None] - y[None, :]) * 100 + x[:, None] - x[None, :]).flatten()
    flat = scores.flatten(1)
    spreads = [flat[:, offset == o].amax(1) - flat[:, offset == o].amin(1) for o in offset.unique()]
    assert torch.stack(spreads).max() < 1e-4
    assert (flat.amax(1) - flat.amin(1)).min() > 0.1  # and they do change with the offset


def test_gradient_checkpointing_replays_the_draw():
    """with_cp recomputes the blocks with the forward's transform: outputs and gradients equal those
    without checkpointing for the same seed."""
    images = torch.randn(2, 3, 80, 112)
    results = []
    for with_cp in (False, True):
        model = vit(dict(type='rope_mixed', coords='interpolate', coord_aug=AUG), with_cp=with_cp).train()
        torch.manual_seed(4)
        out = outputs(model, images)
        out.square().sum().backward()
        results.append((out.detach(), {n: p.grad for n, p in model.named_parameters()}))
    assert torch.equal(results[0][0], results[1][0])
    for name, grad in results[0][1].items():
        torch.testing.assert_close(results[1][1][name], grad, msg=name)
