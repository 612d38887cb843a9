"""torch.compile: the backbones trace without graph breaks, and the compiled RoPE path (inductor)
gives the eager outputs and gradients."""
import pytest
import torch

from mmpe.models import PESwinTransformer, PEVisionTransformer
from mmpe.models.attention import PosAttention
from mmpe.pos_embed import RoPEMixed


def tiny_vit(encoding):
    return PEVisionTransformer(img_size=64, patch_size=16, embed_dims=32, depth=2, num_heads=2,
                               pos_embed=dict(type=encoding))


def tiny_swin(encoding):
    return PESwinTransformer(embed_dims=16, depths=(2, 2), num_heads=(2, 4), strides=(4, 2), out_indices=(0, 1),
                             window_size=4, drop_path_rate=0.0, pos_embed=dict(type=encoding))


@pytest.mark.parametrize('build, encoding', [
    (tiny_vit, 'ape'), (tiny_vit, 'sincos'), (tiny_vit, 'rope_axial'), (tiny_vit, 'rope_mixed'),
    (tiny_swin, 'rpb'), (tiny_swin, 'rope_axial'), (tiny_swin, 'rope_mixed')])
def test_forward_has_no_graph_break(build, encoding):
    torch._dynamo.reset()
    model = build(encoding).train()
    explanation = torch._dynamo.explain(model)(torch.randn(2, 3, 72, 100))
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


def eager_and_compiled(module, inputs, backend):
    """Outputs and parameter gradients (loss: mean square of the output) eager and compiled."""
    results = []
    for run in (module, torch.compile(module, backend=backend)):
        module.zero_grad()
        out = run(*inputs)
        out = out[0] if isinstance(out, tuple) else out
        out.square().mean().backward()
        results.append((out.detach(), {name: p.grad.clone() for name, p in module.named_parameters()}))
    return results


@pytest.mark.parametrize('encoding', ['rope_mixed', 'rope_axial'])
def test_traced_rope_vit_matches_eager(encoding):
    """The whole backbone through dynamo and AOT autograd (the custom Functions' forward and backward
    traced), without code generation."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    (eager, eager_grads), (traced, traced_grads) = eager_and_compiled(
        tiny_vit(encoding).train(), (torch.randn(2, 3, 48, 80),), 'aot_eager')
    torch.testing.assert_close(traced, eager, atol=1e-5, rtol=1e-5)
    for name, grad in eager_grads.items():
        torch.testing.assert_close(traced_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)


def test_inductor_rope_attention_matches_eager():
    """One attention layer with RoPE-Mixed and a CLS token compiled by inductor (generated C++ here,
    Triton on GPU): the fused rotation gives the eager outputs and gradients (frequencies included)."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    layer = PosAttention(32, 2, pos_embed=RoPEMixed(2, 16))
    (eager, eager_grads), (fused, fused_grads) = eager_and_compiled(
        layer, (torch.randn(2, 1 + 5 * 7, 32), (5, 7), 1), 'inductor')
    torch.testing.assert_close(fused, eager, atol=1e-5, rtol=1e-5)
    for name, grad in eager_grads.items():
        torch.testing.assert_close(fused_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)
