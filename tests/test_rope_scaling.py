"""Test-time resolution options of RoPE trained at index coordinates (``pos_embed.scaling``: position
interpolation, NTK-aware theta, YaRN-style blend), each against its formula written out here; where they apply
(eval mode, grids beyond the training grid) and the errors where they do not."""
import math

import pytest
import torch

from mmpe.models import PESwinTransformer, PEVisionTransformer
from mmpe.pos_embed import PosEmbedSpec, build_pos_embed

HEAD_DIM, HEADS, TRAIN = 16, 2, (6, 8)  # train_grid (H', W')
GRIDS = [(9, 8), (12, 20), (6, 13)]  # taller, both larger, wider only


def rotated(qk, angles):
    """qk (..., N, d) with interleaved channel pairs turned by angles (..., N, d/2) (complex multiplication)."""
    pairs = torch.view_as_complex(qk.double().unflatten(-1, (-1, 2)).contiguous())
    return torch.view_as_real(pairs * torch.polar(torch.ones_like(angles), angles)).flatten(-2)


def grid_xy(hw):
    h, w = hw
    return torch.arange(w, dtype=torch.float64).repeat(h), torch.arange(h, dtype=torch.float64).repeat_interleave(w)


def axial_expected(kind, hw, theta):
    """(N, d/2) angles and the q/k factor of RoPE-Axial under ``kind``, from FiT's / YaRN's formulas."""
    x, y = grid_xy(hw)
    big_d = HEAD_DIM // 2  # rotary channels per axis
    k = torch.arange(big_d // 2, dtype=torch.float64)
    s_y, s_x = (max(g / t, 1.0) for g, t in zip(hw, TRAIN))
    blocks = []
    for coord, s, train in ((x, s_x, TRAIN[1]), (y, s_y, TRAIN[0])):
        base = theta ** (-2 * k / big_d)
        if kind == 'linear':
            freqs = base / s
        elif kind == 'ntk':  # base change: theta' = theta s^(D / (D - 2))
            freqs = (theta * s ** (big_d / (big_d - 2))) ** (-2 * k / big_d)
        else:
            turns = train * base / (2 * math.pi)
            blend = torch.tensor([min(max((r - 1.0) / (32.0 - 1.0), 0.0), 1.0) for r in turns.tolist()],
                                 dtype=torch.float64)
            freqs = base * ((1 - blend) / s + blend)
        blocks.append(coord[:, None] * freqs)
    factor = 0.1 * math.log(max(s_x, s_y)) + 1 if kind == 'yarn' else 1.0
    return torch.cat(blocks, dim=-1), factor


@pytest.mark.parametrize('hw', GRIDS)
@pytest.mark.parametrize('kind', ['linear', 'ntk', 'yarn'])
def test_rope_axial_scaling_formulas(kind, hw):
    spec = PosEmbedSpec.parse(dict(type='rope_axial', theta=100.0, scaling=dict(type=kind, train_grid=TRAIN)))
    rope = build_pos_embed(spec, 'attention', num_heads=HEADS, head_dim=HEAD_DIM).eval()
    qk = torch.randn(2, 1, HEADS, hw[0] * hw[1], HEAD_DIM)
    angles, factor = axial_expected(kind, hw, 100.0)
    expected = rotated(qk * factor, angles)
    assert torch.allclose(rope.rotate(qk, hw).double(), expected, atol=1e-5)


@pytest.mark.parametrize('kind', ['linear', 'yarn'])
def test_rope_mixed_scaling_formulas(kind):
    """Each learned fx (fy) is scaled as a frequency of the x (y) axis: turns r = T |f| / (2 pi)."""
    hw = (12, 20)
    spec = PosEmbedSpec.parse(dict(type='rope_mixed', scaling=dict(type=kind, train_grid=TRAIN, beta_fast=4.0,
                                                                    beta_slow=0.5) if kind == 'yarn'
                                   else dict(type=kind, train_grid=TRAIN)))
    torch.manual_seed(0)
    rope = build_pos_embed(spec, 'attention', num_heads=HEADS, head_dim=HEAD_DIM).eval()
    with torch.no_grad():
        rope.freqs.mul_(torch.rand_like(rope.freqs) * 20)  # spread the turns across the ramp
    fx, fy = rope.freqs.detach().double()
    s_y, s_x = hw[0] / TRAIN[0], hw[1] / TRAIN[1]
    factor = 1.0
    if kind == 'linear':
        fx, fy = fx / s_x, fy / s_y
    else:
        def scale(f, s, train):
            blend = ((train * f.abs() / (2 * math.pi) - 0.5) / (4.0 - 0.5)).clamp(0, 1)
            return f * ((1 - blend) / s + blend)
        fx, fy = scale(fx, s_x, TRAIN[1]), scale(fy, s_y, TRAIN[0])
        factor = 0.1 * math.log(max(s_x, s_y)) + 1
    x, y = grid_xy(hw)
    angles = fx[:, None] * x[None, :, None] + fy[:, None] * y[None, :, None]  # (h, N, d/2)
    qk = torch.randn(2, 1, HEADS, hw[0] * hw[1], HEAD_DIM)
    with torch.no_grad():
        assert torch.allclose(rope.rotate(qk, hw).double(), rotated(qk * factor, angles), atol=1e-4)


@pytest.mark.parametrize('encoding', ['rope_axial', 'rope_mixed'])
def test_scaling_applies_in_eval_beyond_the_training_grid_only(encoding):
    """A ViT switched to a scaling (same state dict: no parameters added) gives its unscaled outputs in training
    mode and on grids no larger than the training grid; beyond it, in eval mode, other outputs."""
    cfg = dict(img_size=32, patch_size=8, embed_dims=32, depth=2, num_heads=2)
    torch.manual_seed(0)
    plain = PEVisionTransformer(**cfg, pos_embed=dict(type=encoding))
    scaled = PEVisionTransformer(**cfg, pos_embed=dict(type=encoding, scaling=dict(type='yarn', train_grid=4)))
    assert scaled.load_state_dict(plain.state_dict(), strict=True)
    small, large = torch.randn(1, 3, 32, 24), torch.randn(1, 3, 48, 64)
    with torch.no_grad():
        for mode in (True, False):
            plain.train(mode), scaled.train(mode)
            assert torch.equal(plain(small)[0], scaled(small)[0])
        plain.train(), scaled.train()
        assert torch.equal(plain(large)[0], scaled(large)[0])
        plain.eval(), scaled.eval()
        assert not torch.allclose(plain(large)[0], scaled(large)[0], atol=1e-4)


@pytest.mark.parametrize('pos_embed, message', [
    (dict(type='rope_mixed', scaling=dict(type='ntk', train_grid=8)), r"type='ntk' rescales RoPE-Axial's theta"),
    (dict(type='rope_axial', coords='interpolate', scaling=dict(type='linear', train_grid=8)),
     r"coords='interpolate' is resolution-independent already"),
    (dict(type='rope_axial', scaling=dict(type='pi', train_grid=8)), r"scaling type='pi' is not supported; "
                                                                      r"accepted: 'linear', 'ntk', 'yarn'"),
    (dict(type='rope_axial', scaling=dict(type='linear')), r"needs 'type' .* and 'train_grid'"),
    (dict(type='rope_axial', scaling=dict(type='linear', train_grid=(8, 0))), r'train_grid must be a positive int'),
    (dict(type='rope_axial', scaling=dict(type='linear', train_grid=8, beta_fast=8)),
     r"'beta_fast' belong to type='yarn'"),
    (dict(type='rope_axial', scaling=dict(type='yarn', train_grid=8, beta_fast=1, beta_slow=2)),
     r'beta_fast must exceed beta_slow'),
    (dict(type='rope_axial', scaling=dict(type='yarn', train_grid=8, factor=2)), r"unknown key\(s\) 'factor'"),
    (dict(type='ape', scaling=dict(type='linear', train_grid=8)), r"type='ape' got unknown parameter\(s\) 'scaling'"),
])
def test_scaling_errors(pos_embed, message):
    with pytest.raises(ValueError, match=message):
        PosEmbedSpec.parse(pos_embed)


def test_scaling_refused_in_windows():
    """Windows keep their size at every input size: Swin and ViTDet window blocks refuse a scaling."""
    rope = dict(type='rope_axial', scaling=dict(type='ntk', train_grid=8))
    with pytest.raises(ValueError, match=r'PESwinTransformer attends in windows .* scaling=None'):
        PESwinTransformer(embed_dims=16, depths=(2,), num_heads=(2,), strides=(4,), out_indices=(0,),
                          pos_embed=rope)
    with pytest.raises(ValueError, match=r'window_size=4 attends in windows .* scaling=None'):
        PEVisionTransformer(img_size=32, patch_size=8, embed_dims=32, depth=2, num_heads=2, window_size=4,
                            pos_embed=rope)
