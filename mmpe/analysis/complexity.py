"""FLOPs and parameter counts of backbones with mmengine's ``FlopAnalyzer``, attention and RoPE included.

Convention (fvcore / mmengine): one FLOP is one multiply-add; convolutions and linear layers
count their multiply-adds without bias, LayerNorm 5 per element, elementwise operations
(activations, residual additions, softmax, scaling) nothing. On top of mmengine's handles:

- ``aten::scaled_dot_product_attention`` with q (..., L, E), k (..., S, E), v (..., S, Ev):
  ``prod(...) * L * S * (E + Ev)``, the two matrix products q k^T and softmax(.) v (the
  softmax, scale and mask/bias addition are elementwise and not counted, as elsewhere).
- The RoPE rotation (``mmpe.pos_embed.rope``'s autograd Functions, traced as
  ``prim::PythonOp.RotateFixed`` / ``prim::PythonOp.RotateMixed``): ``ROPE_FLOPS_PER_ELEMENT``
  = 2 per rotated element of q and k (prefix tokens included, they go through the
  identity rotation): ``y0 = x0 cos - x1 sin`` is one multiply and one multiply-add.
  RoPE-Mixed also computes its angles ``fx x + fy y`` in every call: 2 per angle,
  h * (P + N) * d/2 angles per layer. cos and sin are elementwise (not counted); RoPE-Axial's
  cached tables cost nothing per call.
"""
from collections import Counter
from math import prod
from typing import Dict, List, Tuple

import torch
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape
from torch import nn

ROPE_FLOPS_PER_ELEMENT = 2
ROPE_ANGLE_FLOPS = 2
ROPE_OPS = ('prim::PythonOp.RotateFixed', 'prim::PythonOp.RotateMixed')


def sdpa_flop_jit(inputs: List, outputs: List) -> int:
    """FLOPs of ``aten::scaled_dot_product_attention``: q k^T and attention times v."""
    q, k, v = (get_shape(x) for x in inputs[:3])
    out = get_shape(outputs[0])
    return prod(out[:-2]) * q[-2] * k[-2] * (q[-1] + v[-1])


def rope_fixed_flop_jit(inputs: List, outputs: List) -> int:
    """FLOPs of ``RotateFixed(x, cos, sin)``: ``ROPE_FLOPS_PER_ELEMENT`` per rotated element."""
    return ROPE_FLOPS_PER_ELEMENT * prod(get_shape(outputs[0]))


def rope_mixed_flop_jit(inputs: List, outputs: List) -> int:
    """FLOPs of ``RotateMixed(x, freqs (2, h, d/2), coords (2, N))``: the rotation as
    ``rope_fixed_flop_jit`` plus ``ROPE_ANGLE_FLOPS`` per angle fx x + fy y (h * N * d/2)."""
    _, heads, pairs = get_shape(inputs[1])
    return rope_fixed_flop_jit(inputs, outputs) + ROPE_ANGLE_FLOPS * heads * pairs * get_shape(inputs[2])[1]


def flop_analyzer(model: nn.Module, inputs: Tuple[torch.Tensor, ...]) -> FlopAnalyzer:
    """mmengine's FlopAnalyzer of ``model(*inputs)`` with the attention and RoPE handles added
    (module docstring); warnings about uncounted (elementwise) operators are off, see
    ``analyzer.unsupported_ops()``."""
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle(**{'aten::scaled_dot_product_attention': sdpa_flop_jit,
                              ROPE_OPS[0]: rope_fixed_flop_jit, ROPE_OPS[1]: rope_mixed_flop_jit})
    return analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def model_complexity(model: nn.Module, input_hw: Tuple[int, int], batch: int = 1) -> Dict:
    """``params``, ``flops`` (multiply-adds of one forward of a (batch, 3, H, W) input, eval
    mode), ``flops_by_operator`` (Counter) and ``not_counted`` (Counter of operators without a
    FLOP handle, e.g. elementwise ones) of an image model such as a backbone."""
    model.eval()
    analyzer = flop_analyzer(model, (torch.zeros(batch, 3, *input_hw),))
    return dict(params=count_parameters(model), flops=analyzer.total(),
                flops_by_operator=Counter(analyzer.by_operator()), not_counted=analyzer.unsupported_ops())


def build_backbone(cfg) -> nn.Module:
    """The backbone of a full mmdet/mmseg config (its ``default_scope`` registry), initialised
    without pretrained weights (``init_cfg`` dropped)."""
    import importlib
    backbone_cfg = cfg.model.backbone.copy()
    backbone_cfg.pop('init_cfg', None)
    scope = cfg.get('default_scope')
    if scope not in ('mmdet', 'mmseg'):
        raise ValueError(f"config default_scope must be 'mmdet' or 'mmseg', got {scope!r}")
    importlib.import_module(f'{scope}.utils').register_all_modules()
    model = importlib.import_module(f'{scope}.registry').MODELS.build(backbone_cfg)
    model.init_weights()
    return model
