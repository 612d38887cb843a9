"""The RoPE autograd Functions: gradients against autograd of the plain formula (float64
gradcheck, and gradgradcheck for double backward), for ViT shapes (global grid, with and without
a CLS token) and Swin shapes (windows in the batch dimension), and nothing per layer saved for
backward beyond the rotated q/k."""
import pytest
import torch

from mmpe.pos_embed import RoPEAxial, RoPEMixed, RotateFixed, RotateMixed, rope_axial_tables, rope_coords

# (leading dims of q/k, heads, hw, prefix tokens): ViT global attention with and without CLS,
# and Swin windows (batch * windows in the leading dimension, window-local 3x3 grid).
SHAPES = [((2, 2), 2, (3, 4), 1), ((2, 2), 2, (3, 4), 0), ((2, 2 * 6), 2, (3, 3), 0), ((2,), 3, (1, 5), 2)]


def plain_rotation(x, angles):
    """Autograd-differentiable reference: complex multiplication of the channel pairs."""
    z = torch.view_as_complex(x.unflatten(-1, (-1, 2)).contiguous())
    return torch.view_as_real(z * torch.polar(torch.ones_like(angles), angles)).flatten(-2)


@pytest.mark.parametrize('lead, heads, hw, prefix', SHAPES)
def test_rotate_mixed_gradcheck(lead, heads, hw, prefix):
    d, n = 8, hw[0] * hw[1]
    x = torch.randn(*lead, heads, prefix + n, d, dtype=torch.float64, requires_grad=True)
    freqs = torch.randn(2, heads, d // 2, dtype=torch.float64, requires_grad=True)
    coords = rope_coords(hw, prefix, torch.device('cpu')).double()
    assert torch.autograd.gradcheck(RotateMixed.apply, (x, freqs, coords))


@pytest.mark.parametrize('lead, heads, hw, prefix', SHAPES)
def test_rotate_mixed_gradients_equal_plain_formula(lead, heads, hw, prefix):
    """The closed-form gradients equal autograd through angles = fx x + fy y and a complex product."""
    d, n = 8, hw[0] * hw[1]
    x = torch.randn(*lead, heads, prefix + n, d, dtype=torch.float64, requires_grad=True)
    freqs = torch.randn(2, heads, d // 2, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(*lead, heads, prefix + n, d, dtype=torch.float64)
    coords = rope_coords(hw, prefix, torch.device('cpu')).double()
    (RotateMixed.apply(x, freqs, coords) * weight).sum().backward()
    ours = x.grad.clone(), freqs.grad.clone()

    x.grad, freqs.grad = None, None
    angles = coords[0, :, None] * freqs[0, :, None] + coords[1, :, None] * freqs[1, :, None]  # (h, P+N, d/2)
    (plain_rotation(x, angles) * weight).sum().backward()
    torch.testing.assert_close(ours[0], x.grad)
    torch.testing.assert_close(ours[1], freqs.grad)
    assert freqs.grad.abs().max() > 0.1


@pytest.mark.parametrize('lead, heads, hw, prefix', SHAPES)
def test_rotate_fixed_gradcheck(lead, heads, hw, prefix):
    d = 8
    x = torch.randn(*lead, heads, prefix + hw[0] * hw[1], d, dtype=torch.float64, requires_grad=True)
    cos, sin = rope_axial_tables(hw, prefix, d, 100.0, torch.device('cpu'))
    assert torch.autograd.gradcheck(RotateFixed.apply, (x, cos.double(), sin.double()))


@pytest.mark.parametrize('lead, heads, hw, prefix', SHAPES)
def test_rotate_mixed_gradgradcheck(lead, heads, hw, prefix):
    """Double backward (create_graph=True, e.g. gradient penalties) through RoPE-Mixed, w.r.t. q/k and freqs.
    fast_mode compares random projections of the Jacobians (ms instead of 16 s for the Swin shape)."""
    d, n = 8, hw[0] * hw[1]
    x = torch.randn(*lead, heads, prefix + n, d, dtype=torch.float64, requires_grad=True)
    freqs = torch.randn(2, heads, d // 2, dtype=torch.float64, requires_grad=True)
    coords = rope_coords(hw, prefix, torch.device('cpu')).double()
    assert torch.autograd.gradgradcheck(RotateMixed.apply, (x, freqs, coords), fast_mode=True)


@pytest.mark.parametrize('lead, heads, hw, prefix', SHAPES)
def test_rotate_fixed_gradgradcheck(lead, heads, hw, prefix):
    d = 8
    x = torch.randn(*lead, heads, prefix + hw[0] * hw[1], d, dtype=torch.float64, requires_grad=True)
    cos, sin = rope_axial_tables(hw, prefix, d, 100.0, torch.device('cpu'))
    assert torch.autograd.gradgradcheck(RotateFixed.apply, (x, cos.double(), sin.double()), fast_mode=True)


@pytest.mark.parametrize('rope', [RoPEAxial(16, 100.0), RoPEMixed(4, 16)], ids=['axial', 'mixed'])
def test_rotation_saves_no_per_token_tensor_but_its_output(rope):
    """What autograd keeps for backward of one rotation: at most the rotated q/k (which attention
    saves anyway) plus tables of size (P + N, d/2) or smaller; never a (heads, N, d) table."""
    hw, heads, d, prefix = (6, 7), 4, 16, 1
    qk = torch.randn(2, 3, heads, prefix + hw[0] * hw[1], d, requires_grad=True)
    saved = []

    def pack(t):
        saved.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = rope.rotate(qk, hw, prefix)
    for t in saved:
        same_as_output = t.shape == out.shape and t.data_ptr() == out.data_ptr()
        assert same_as_output or t.numel() <= (prefix + hw[0] * hw[1]) * d // 2, tuple(t.shape)
