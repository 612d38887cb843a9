"""Backbones on each device (``device`` fixture: CPU, and CUDA where a GPU is present) and under
autocast, and one mixed-precision training step of DINO and UperNet through tools/misc/smoke_train.py
(bfloat16 on CPU; tools/check_gpu.sh runs every encoding in float16 on CUDA)."""
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from mmpe.models import PESwinTransformer, PEVisionTransformer
from mmpe.pos_embed import BACKBONE_ENCODINGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Autocast against float32: ||out - ref|| / ||ref|| per output map. Measured on CPU for the cases of
# test_autocast_forward_matches_float32: float16 at most 9.1e-4, bfloat16 at most 7.5e-3 (float16
# keeps 11 significant bits, bfloat16 8); the bounds leave about 3x.
AUTOCAST_TOLERANCE = {torch.float16: 3e-3, torch.bfloat16: 2e-2}


VIT = dict(img_size=64, patch_size=16, embed_dims=32, depth=2, num_heads=2, layer_scale_init_value=0.1,
           out_indices=(0, 1))
SWIN = dict(embed_dims=32, depths=(2, 2), num_heads=(2, 4), strides=(4, 2), window_size=4, drop_path_rate=0.0,
            out_indices=(0, 1))


def build(backbone: str, encoding: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    if backbone == 'vit':
        model = PEVisionTransformer(**{**VIT, **kwargs}, pos_embed=dict(type=encoding))
    else:
        model = PESwinTransformer(**{**SWIN, **kwargs}, pos_embed=dict(type=encoding))
    with torch.no_grad():  # move every parameter off its init (zero LOOPE head, zero RPB tables)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def forward_backward(model: nn.Module, x: torch.Tensor):
    """Output maps and the gradients of every parameter for a fixed loss."""
    model.zero_grad()
    outs = model(x)
    sum(o.square().mean() for o in outs).backward()
    return [o.detach() for o in outs], {n: p.grad for n, p in model.named_parameters()}


@pytest.mark.parametrize('backbone, encoding',
                         [(backbone, e) for backbone in ('vit', 'swin') for e in BACKBONE_ENCODINGS[backbone]])
def test_forward_backward_on_device(device, backbone, encoding):
    """On ``device``: output maps of the right size on that device, a finite gradient for every
    parameter, and, twice at two sizes (cached tables), the CPU model's outputs and gradients."""
    model = build(backbone, encoding).train()
    ref = build(backbone, encoding).train()
    model.to(device)
    for h, w in [(64, 96), (97, 131), (64, 96)]:
        x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(h))
        outs, grads = forward_backward(model, x.to(device))
        ref_outs, ref_grads = forward_backward(ref, x)
        maps = [(32, 16), (32, 16)] if backbone == 'vit' else [(32, 4), (64, 8)]  # (channels, stride)
        assert [tuple(o.shape) for o in outs] == [(2, c, -(-h // s), -(-w // s)) for c, s in maps]
        assert all(o.device.type == device.type for o in outs)
        for out, ref_out in zip(outs, ref_outs):
            torch.testing.assert_close(out.cpu(), ref_out, rtol=1e-4, atol=1e-5)
        for name, grad in grads.items():
            assert grad is not None and torch.isfinite(grad).all(), name
            torch.testing.assert_close(grad.cpu(), ref_grads[name], rtol=1e-3, atol=1e-5, msg=name)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16], ids=['fp16', 'bf16'])
@pytest.mark.parametrize('backbone, encoding', [('vit', 'rope_axial'), ('vit', 'rope_mixed'), ('vit', 'loope'),
                                                ('vit', 'ape'), ('swin', 'rope_mixed'), ('swin', 'rpb'),
                                                ('swin', 'loope')])
def test_autocast_forward_matches_float32(device, dtype, backbone, encoding):
    """Autocast output maps equal float32 ones within AUTOCAST_TOLERANCE (relative L2) on a
    40x56 patch grid (ViT, patch 4) / 40x56 Swin stage-1 map."""
    kwargs = dict(patch_size=4) if backbone == 'vit' else {}
    model = build(backbone, encoding, **kwargs).eval().to(device)
    x = torch.randn(1, 3, 160, 224, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast(device.type, dtype=dtype):
            outs = model(x)
    for out, r in zip(outs, ref):
        error = ((out.float() - r).norm() / r.norm()).item()
        assert error < AUTOCAST_TOLERANCE[dtype], f'{dtype} relative error {error:.2e}'


@pytest.mark.slow
def test_amp_training_steps(device):
    """One AmpOptimWrapper step (what tools/train.py --amp runs) of DINO and UperNet, Swin and ViT."""
    dtype = 'bfloat16' if device.type == 'cpu' else 'float16'
    proc = subprocess.run([sys.executable, 'tools/misc/smoke_train.py', '--device', device.type, '--dtype', dtype,
                           '--encodings', 'rope_mixed'], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert 'smoke_train: 4 passed, 0 failed of 4' in proc.stdout
