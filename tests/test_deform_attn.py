"""mmpe::ms_deform_attn, the deformable-attention operator: mmcv's PyTorch formula and its autograd
gradients, torch.library.opcheck, and PEMultiScaleDeformableAttention as a drop-in for mmcv's module."""
import pytest
import torch
from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttention, multi_scale_deformable_attn_pytorch

from mmpe.models import deform_attn
from mmpe.models.deform_attn import PEMultiScaleDeformableAttention, ms_deform_attn, use_deformable_attention_op

SHAPES = ((6, 8), (3, 4), (2, 1))  # three levels, one of them a single column


def op_inputs(device, dtype=torch.float32, batch=2, heads=2, channels=4, queries=5, points=2):
    """Arguments of ms_deform_attn: locations also outside [0, 1] (zero padding), weights not summing to 1."""
    gen = torch.Generator().manual_seed(0)
    levels = len(SHAPES)
    shapes = torch.tensor(SHAPES, device=device)
    starts = torch.tensor([0, 48, 60], device=device)
    value = torch.randn(batch, 62, heads, channels, generator=gen, dtype=dtype)
    locations = torch.rand(batch, queries, heads, levels, points, 2, generator=gen, dtype=dtype) * 1.4 - 0.2
    weights = torch.rand(batch, queries, heads, levels, points, generator=gen, dtype=dtype)
    return [value.to(device).requires_grad_(), shapes, starts, locations.to(device).requires_grad_(),
            weights.to(device).requires_grad_(), 64]


def test_op_is_mmcv_formula_with_its_gradients(device):
    """Against autograd through mmcv's multi_scale_deformable_attn_pytorch (float64; on CUDA the op
    runs mmcv's compiled kernels)."""
    value, shapes, starts, locations, weights, step = op_inputs(device, torch.float64)
    out = ms_deform_attn(value, shapes, starts, locations, weights, step)
    expected = multi_scale_deformable_attn_pytorch(value, shapes, locations, weights)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)
    grad = torch.randn_like(out)
    grads = torch.autograd.grad(out, (value, locations, weights), grad)
    expected_grads = torch.autograd.grad(expected, (value, locations, weights), grad)
    for name, got, want in zip(('value', 'locations', 'weights'), grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12, msg=name)


def test_op_gradcheck():
    """Finite differences (float64, CPU: the closed-form backward)."""
    value, shapes, starts, locations, weights, step = op_inputs('cpu', torch.float64, batch=1, queries=3)
    assert torch.autograd.gradcheck(lambda v, loc, w: ms_deform_attn(v, shapes, starts, loc, w, step),
                                    (value, locations, weights))


@pytest.mark.slow  # opcheck traces the operator through AOT autograd
def test_opcheck(device):
    """The forward and backward operators: schema, autograd registration, fake implementations (shapes,
    strides, dtypes of real outputs) and AOT dispatch with dynamic shapes."""
    args = op_inputs(device)
    torch.library.opcheck(ms_deform_attn, args)
    grad_output = torch.randn(2, 5, 8, device=device)
    torch.library.opcheck(torch.ops.mmpe.ms_deform_attn_backward.default,
                          [grad_output] + [a.detach() if torch.is_tensor(a) else a for a in args])


def test_op_casts_to_value_dtype():
    """As mmcv's CUDA Function: locations and weights are cast to value's dtype (autocast gives
    float16/bfloat16 values), gradients come back in each input's dtype."""
    value, shapes, starts, locations, weights, step = op_inputs('cpu')
    value = value.detach().to(torch.bfloat16).requires_grad_()
    out = ms_deform_attn(value, shapes, starts, locations, weights, step)
    assert out.dtype == torch.bfloat16
    out.float().sum().backward()
    assert (value.grad.dtype, locations.grad.dtype, weights.grad.dtype) == (torch.bfloat16, torch.float32,
                                                                             torch.float32)


def test_backward_takes_a_gradient_in_another_dtype():
    """Under autocast the gradient can arrive in float32 for bfloat16 values (DINO's bf16 training step):
    the backward computes in value's dtype and agrees with float32 gradients of the same bfloat16-rounded
    inputs to bfloat16 precision."""
    value, shapes, starts, locations, weights, step = [a.detach() if torch.is_tensor(a) else a
                                                       for a in op_inputs('cpu')]
    value, locations, weights = (t.bfloat16() for t in (value, locations, weights))
    grad = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(1))
    got = torch.ops.mmpe.ms_deform_attn_backward(grad, value, shapes, starts, locations, weights, step)
    want = torch.ops.mmpe.ms_deform_attn_backward(grad.bfloat16().float(), value.float(), shapes, starts,
                                                  locations.float(), weights.float(), step)
    assert [g.dtype for g in got] == [torch.bfloat16] * 3
    for name, g, w in zip(('value', 'locations', 'weights'), got, want):
        torch.testing.assert_close(g.float(), w, rtol=0.02, atol=0.02 * w.abs().max().item(), msg=name)


def test_cuda_kernel_falls_back_without_mmcv_cuda_ops(monkeypatch):
    """The CUDA implementations on an mmcv built without CUDA ops: the PyTorch formula, one warning
    (called directly with CPU tensors: the logic, not the device)."""
    monkeypatch.setattr(deform_attn, 'mmcv_has_cuda_ops', lambda: False)
    deform_attn._warn_no_cuda_kernels.cache_clear()
    logged = []
    monkeypatch.setattr(deform_attn, 'print_log', lambda msg, *args: logged.append(msg))
    value, shapes, starts, locations, weights, step = (a.detach() if torch.is_tensor(a) else a
                                                       for a in op_inputs('cpu'))
    outs = [deform_attn._ms_deform_attn_cuda(value, shapes, starts, locations, weights, step) for _ in range(2)]
    for out in outs:
        torch.testing.assert_close(out, multi_scale_deformable_attn_pytorch(value, shapes, locations, weights),
                                   rtol=0, atol=0)
    assert len(logged) == 1 and 'mmcv was built without CUDA ops' in logged[0]
    grad = torch.randn_like(outs[0])
    torch.testing.assert_close(
        deform_attn._ms_deform_attn_backward_cuda(grad, value, shapes, starts, locations, weights, step),
        deform_attn.pytorch_backward(grad, value, shapes, locations, weights), rtol=0, atol=0)
    deform_attn._warn_no_cuda_kernels.cache_clear()


def module_pair(batch_first, **kwargs):
    """mmcv's module and the drop-in with mmcv's initialisation and the same (perturbed) weights, no dropout."""
    torch.manual_seed(0)
    mmcv_attn = MultiScaleDeformableAttention(embed_dims=32, num_heads=4, num_levels=3, num_points=2,
                                              batch_first=batch_first, **kwargs)
    with torch.no_grad():  # mmcv zero-initialises the offsets and weights: give them values
        for p in mmcv_attn.parameters():
            p.add_(0.1 * torch.randn_like(p))
    ours = PEMultiScaleDeformableAttention(embed_dims=32, num_heads=4, num_levels=3, num_points=2,
                                           batch_first=batch_first, **kwargs)
    assert list(ours.state_dict()) == list(mmcv_attn.state_dict())
    ours.load_state_dict(mmcv_attn.state_dict())
    return mmcv_attn.eval(), ours.eval()


def attention_inputs(batch_first, box_references, device='cpu'):
    gen = torch.Generator().manual_seed(1)
    batch, queries, values = 2, 7, sum(h * w for h, w in SHAPES)

    def seq(n):  # (B, n, C) or (n, B, C)
        x = torch.randn(batch, n, 32, generator=gen)
        return (x if batch_first else x.transpose(0, 1)).to(device)

    references = torch.rand(batch, queries, len(SHAPES), 4 if box_references else 2, generator=gen)
    padding = torch.zeros(batch, values, dtype=torch.bool)
    padding[1, 40:48] = True
    return dict(query=seq(queries), value=seq(values), query_pos=seq(queries), reference_points=references.to(device),
                key_padding_mask=padding.to(device), spatial_shapes=torch.tensor(SHAPES, device=device),
                level_start_index=torch.tensor([0, 48, 60], device=device))


@pytest.mark.parametrize('batch_first', [True, False])
@pytest.mark.parametrize('box_references', [False, True], ids=['points', 'boxes'])
def test_drop_in_matches_mmcv_module(batch_first, box_references, device):
    """Same state-dict keys, outputs and parameter gradients as mmcv's module (on CUDA: mmcv's
    kernel in both), with spatial_shapes as mmcv's tensor or as Python ints (level_start_index
    then optional)."""
    mmcv_attn, ours = (m.to(device) for m in module_pair(batch_first))
    inputs = attention_inputs(batch_first, box_references, device)
    expected = mmcv_attn(**inputs)
    expected.square().sum().backward()
    python_shapes = dict(inputs, spatial_shapes=SHAPES, level_start_index=None)
    for variant in (inputs, python_shapes):
        ours.zero_grad()
        out = ours(**variant)
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
        out.square().sum().backward()
        for (name, p), q in zip(ours.named_parameters(), mmcv_attn.parameters()):
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-5, msg=name)


def test_drop_in_rejects_shapes_that_do_not_cover_the_values():
    _, ours = module_pair(batch_first=True)
    inputs = dict(attention_inputs(True, False), spatial_shapes=((6, 8), (3, 4)), level_start_index=None)
    with pytest.raises(ValueError, match=r'spatial_shapes=\(\(6, 8\), \(3, 4\)\) cover 60 positions, but value has 62'):
        ours(**inputs)
    with pytest.raises(ValueError, match='reference_points must end in 2'):
        ours(**dict(attention_inputs(True, False), reference_points=torch.rand(2, 7, 3, 3)))


def test_use_deformable_attention_op_keeps_parameters_and_init():
    """The mmcv modules of a model become the drop-in in place: same objects and parameters. The
    drop-in is registered (configs can name it)."""
    from mmdet.registry import MODELS
    model = torch.nn.Sequential(MultiScaleDeformableAttention(embed_dims=32, num_heads=4),
                                torch.nn.Linear(2, 2), MultiScaleDeformableAttention(embed_dims=32, num_heads=4))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    first = model[0]
    assert use_deformable_attention_op(model) == 2
    assert model[0] is first and type(first) is PEMultiScaleDeformableAttention
    assert list(model.state_dict()) == list(state)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert use_deformable_attention_op(model) == 0
    assert MODELS.module_dict['PEMultiScaleDeformableAttention'] is PEMultiScaleDeformableAttention


@pytest.mark.slow  # torch.compile
def test_drop_in_compiles_without_graph_breaks():
    """With the levels' sizes as Python ints: one graph (mmcv's module breaks it at its extension
    and at reading the sizes back), and inductor's outputs and gradients are the eager ones."""
    torch._dynamo.reset()
    _, ours = module_pair(batch_first=True)
    inputs = dict(attention_inputs(True, box_references=True), spatial_shapes=SHAPES)
    explanation = torch._dynamo.explain(ours)(**inputs)
    assert (explanation.graph_count, explanation.graph_break_count) == (1, 0), explanation.break_reasons
    torch._dynamo.reset()
    results = []
    for run in (ours, torch.compile(ours)):
        ours.zero_grad()
        out = run(**inputs)
        out.square().sum().backward()
        results.append([out] + [p.grad for p in ours.parameters()])
    for got, want in zip(*results):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
