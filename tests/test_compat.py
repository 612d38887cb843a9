"""mmpe.compat: mmcv's deformable attention without CUDA kernels, AmpOptimWrapper on CPU."""
from types import SimpleNamespace

import pytest
import torch
from mmcv.ops import MultiScaleDeformableAttention
from mmcv.ops import multi_scale_deform_attn as msda

from mmpe import compat


class FakeCuda(torch.Tensor):
    """A CPU tensor that says it is on CUDA: drives mmcv's CUDA branch on a CPU machine."""

    @property
    def is_cuda(self):
        return True


def deformable_attention_inputs():
    torch.manual_seed(0)
    attn = MultiScaleDeformableAttention(embed_dims=32, num_heads=2, num_levels=2, num_points=2,
                                         batch_first=True).eval()  # no dropout
    with torch.no_grad():  # mmcv zero-initialises the offsets: give them a value
        attn.sampling_offsets.weight.normal_(std=0.1)
    shapes = torch.tensor([[6, 8], [3, 4]])
    starts = torch.tensor([0, 48])
    value = torch.randn(2, 60, 32)
    query = torch.randn(2, 5, 32)
    reference_points = torch.rand(2, 5, 2, 2)
    inputs = dict(query=query, value=value, reference_points=reference_points, spatial_shapes=shapes,
                  level_start_index=starts)
    return attn, inputs


@pytest.fixture
def missing_cuda_kernels(monkeypatch):
    """mmcv as built without CUDA ops on a machine where mmcv takes its CUDA branch, with
    ``import mmpe``'s routing applied (restored afterwards)."""
    monkeypatch.setattr(compat, 'mmcv_has_cuda_ops', lambda: False)
    monkeypatch.setattr(msda, 'MultiScaleDeformableAttnFunction', msda.MultiScaleDeformableAttnFunction)
    monkeypatch.setattr(compat.PyTorchDeformableAttnFunction, 'warned', False)
    monkeypatch.setattr(msda, 'IS_CUDA_AVAILABLE', True)
    kernel = msda.MultiScaleDeformableAttnFunction
    if kernel is compat.PyTorchDeformableAttnFunction:  # already routed by import mmpe (CPU-ops mmcv)
        kernel = compat.PyTorchDeformableAttnFunction.kernel
        monkeypatch.setattr(msda, 'MultiScaleDeformableAttnFunction', kernel)
    return kernel


def run_as_cuda(attn, inputs):
    """Forward with mmcv's projected values reported as CUDA tensors; returns a plain tensor."""
    project = attn.value_proj.forward
    attn.value_proj.forward = lambda x: project(x).as_subclass(FakeCuda)
    try:
        return attn(**inputs).as_subclass(torch.Tensor)
    finally:
        attn.value_proj.forward = project


def test_cuda_tensors_route_to_pytorch_when_mmcv_has_no_cuda_kernels(missing_cuda_kernels, monkeypatch):
    attn, inputs = deformable_attention_inputs()
    with torch.no_grad():
        with pytest.raises(RuntimeError):  # unpatched: mmcv calls its compiled kernel, absent for this device
            run_as_cuda(attn, inputs)
        compat.route_deformable_attention()
        assert msda.MultiScaleDeformableAttnFunction is compat.PyTorchDeformableAttnFunction
        logged = []
        monkeypatch.setattr('mmengine.logging.print_log', lambda msg, *args, **kwargs: logged.append(msg))
        routed = [run_as_cuda(attn, inputs) for _ in range(2)]
        monkeypatch.setattr(msda, 'IS_CUDA_AVAILABLE', False)  # mmcv's own CPU branch: the pytorch function
        expected = attn(**inputs)
    assert len(logged) == 1 and 'mmcv was built without CUDA ops' in logged[0]
    for out in routed:
        torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_other_devices_keep_mmcv_function(monkeypatch):
    """Only CUDA tensors are rerouted; others (mmcv's MLU branch) still reach mmcv's function."""
    calls = []
    monkeypatch.setattr(compat.PyTorchDeformableAttnFunction, 'kernel', SimpleNamespace(apply=lambda *a: calls.append(a)))
    value = torch.zeros(1, 4, 2, 8)
    compat.PyTorchDeformableAttnFunction.apply(value, None, None, None, None, 64)
    assert len(calls) == 1 and calls[0][0] is value


def test_compiled_kernel_kept_when_present(monkeypatch):
    monkeypatch.setattr(compat, 'mmcv_has_cuda_ops', lambda: True)
    monkeypatch.setattr(msda, 'MultiScaleDeformableAttnFunction', compat.PyTorchDeformableAttnFunction.kernel
                        or msda.MultiScaleDeformableAttnFunction)
    kernel = msda.MultiScaleDeformableAttnFunction
    compat.route_deformable_attention()
    assert msda.MultiScaleDeformableAttnFunction is kernel


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU autocast path: only without a GPU')
def test_amp_optim_wrapper_runs_bfloat16_on_cpu():
    from mmengine.optim import AmpOptimWrapper
    model = torch.nn.Linear(4, 2)
    wrapper = AmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1), dtype='bfloat16')
    before = model.weight.detach().clone()
    with wrapper.optim_context(model):
        out = model(torch.randn(3, 4))
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().square().mean())
    assert not torch.equal(model.weight, before)
    with pytest.raises(ValueError, match="dtype='bfloat16'"):
        AmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1), dtype='float16')


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU: compares mmcv\'s CUDA kernel with its PyTorch path')
def test_cuda_kernel_matches_pytorch(monkeypatch):
    """On a GPU (tools/check_gpu.sh): mmcv was built with CUDA ops, and its kernel gives the
    outputs and gradients of the pure-PyTorch function."""
    assert compat.mmcv_has_cuda_ops(), 'mmcv has no CUDA ops: run bash tools/setup_env.sh --cuda'
    attn, inputs = deformable_attention_inputs()
    attn.cuda()
    inputs = {k: v.cuda() for k, v in inputs.items()}
    results = []
    for kernel in (True, False):
        monkeypatch.setattr(msda, 'IS_CUDA_AVAILABLE', kernel)
        attn.zero_grad()
        out = attn(**inputs)
        out.square().sum().backward()
        results.append([out] + [p.grad for p in attn.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
