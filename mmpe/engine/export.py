"""Leaving PyTorch: ``torch.export`` programs and ONNX models (``torch.onnx.export(..., dynamo=True)``) of
the backbones and of whole segmentors in tensor mode, one program for every input height and width.

What traces: RoPE's autograd Functions export as their forward formula (an inference graph has no
backward); the table caches are bypassed while tracing (``torch.compiler.is_compiling()``), so RoPE
tables, Swin's shift masks and resized APE tables are computed in the graph from the input size,
never baked in as constants of the traced size. What does not: LOOPE's Gilbert order is computed
in Python per grid (a constant of the traced size), so LOOPE exports at fixed sizes only; ONNX's
translation of adaptive average pooling to sizes other than 1 (UperNet's pyramid pooling) gathers
with kernel extents of the traced size, so such models go to ONNX at fixed sizes only; DINO does
not export (docs/user_guides/export.md says why). Both are refused here rather than exported wrong.
"""
from typing import Optional, Sequence, Tuple

import torch
from torch import nn

from ..pos_embed.absolute import LOOPEPosEmbed

FORMATS = ('torch', 'onnx')


class TensorMode(nn.Module):
    """An mmseg segmentor (or any OpenMMLab model) as ``forward(images) = model(images, mode='tensor')``:
    images (B, 3, H, W), normalised as the model's data preprocessor would; a segmentor returns the decode
    head's logits (B, classes, H/4, W/4). A backbone needs no wrapper."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor):
        return self.model(images, mode='tensor')


def _check_dynamic(model: nn.Module, fmt: str) -> None:
    """ValueError for a model whose export would serve only the traced size (module docstring)."""
    if any(isinstance(m, LOOPEPosEmbed) for m in model.modules()):
        raise ValueError('dynamic=True: LOOPE computes its Gilbert order in Python for each patch grid, so an '
                         'exported program holds the order of the traced size only; export LOOPE models with '
                         'dynamic=False, one program per input size')
    pools = [name for name, m in model.named_modules()
             if isinstance(m, nn.AdaptiveAvgPool2d) and m.output_size not in (1, (1, 1))]
    if fmt == 'onnx' and pools:
        raise ValueError(f'dynamic=True: ONNX export of adaptive average pooling to sizes other than 1 ({pools[0]}, '
                         f'e.g. UperNet\'s pyramid pooling) is exact at the traced input size only; export with '
                         f'dynamic=False, one model per input size (mmseg\'s slide inference uses one crop size)')


def export_program(model: nn.Module, example: torch.Tensor, *, dynamic: bool = True,
                   size_range: Tuple[int, int] = (32, 2048), fmt: str = 'torch'):
    """``model`` (in eval mode, parameters frozen) traced on ``example`` images (B, C, H, W): a
    ``torch.export.ExportedProgram`` (fmt='torch') or a ``torch.onnx.ONNXProgram`` (fmt='onnx'; needs
    onnx and onnxscript). ``dynamic``: H and W may be anything in ``size_range`` (the batch size stays
    the example's); else the program serves the example's size only.

    Parameters are frozen while tracing: torch 2.14 picks scaled_dot_product_attention's kernel by
    requires_grad, and ONNX's decomposition of Swin's attention with a relative position bias fails
    when the two tracing passes pick differently ("Cannot view a tensor ... as a tensor with shape").
    """
    if fmt not in FORMATS:
        raise ValueError(f'fmt must be one of {", ".join(map(repr, FORMATS))}, got {fmt!r}')
    if dynamic:
        _check_dynamic(model, fmt)
    size = torch.export.Dim.DYNAMIC(min=size_range[0], max=size_range[1])
    shapes = ({2: size, 3: size},) if dynamic else None
    training, frozen = model.training, [p for p in model.parameters() if p.requires_grad]
    model.eval().requires_grad_(False)
    try:
        if fmt == 'torch':
            return torch.export.export(model, (example,), dynamic_shapes=shapes)
        return torch.onnx.export(model, (example,), dynamo=True, dynamic_shapes=shapes, verbose=False)
    finally:
        model.train(training)
        for p in frozen:
            p.requires_grad_(True)


def run_onnx(path: str, images: torch.Tensor) -> Sequence[torch.Tensor]:
    """The outputs of the ONNX model ``path`` on ``images``, run by onnxruntime on the CPU."""
    import onnxruntime
    session = onnxruntime.InferenceSession(path, providers=['CPUExecutionProvider'])
    return [torch.from_numpy(out) for out in session.run(None, {session.get_inputs()[0].name: images.numpy()})]


def max_difference(outputs: Sequence[torch.Tensor], expected, where: Optional[str] = None) -> float:
    """The largest absolute difference between ``outputs`` and ``expected`` (a tensor or tuple of them)."""
    expected = (expected,) if isinstance(expected, torch.Tensor) else tuple(expected)
    if len(outputs) != len(expected) or any(a.shape != b.shape for a, b in zip(outputs, expected)):
        raise ValueError(f'{where or "outputs"}: shapes {[tuple(a.shape) for a in outputs]}, expected '
                         f'{[tuple(b.shape) for b in expected]}')
    return max((a.float() - b.float()).abs().max().item() for a, b in zip(outputs, expected))
