"""mmpe.engine.export and tools/deployment/export.py: torch.export of both backbones with every encoding, one
program for every input size (checked at three sizes, non-square ones included, against eager), no table
cache leaking into the graph; ONNX models run by onnxruntime against PyTorch (backbones, a whole UperNet
segmentor in tensor mode); clear refusals where an export would serve the traced size only."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from torch import nn

from mmpe.engine.export import TensorMode, export_program, max_difference, run_onnx
from mmpe.models import PESwinTransformer, PEVisionTransformer
from mmpe.pos_embed.builder import BACKBONE_ENCODINGS, ENCODING_PRESETS
from mmpe.pos_embed.cache import TABLE_CACHES
from mmpe.testing import build_model

ROOT = Path(__file__).resolve().parents[1]
SIZES = [(64, 80), (96, 64), (47, 113)]  # the traced size, then others (non-square, not whole patches)


def backbone(kind: str, encoding: str, **kwargs) -> nn.Module:
    """A small ViT (patch 16) or Swin (window 4, two stages) with ``encoding`` (ENCODING_PRESETS)."""
    torch.manual_seed(0)
    pos_embed = dict(ENCODING_PRESETS[encoding])
    if kind == 'vit':
        return PEVisionTransformer(img_size=64, embed_dims=32, depth=2, num_heads=2, out_indices=(1,),
                                   pos_embed=pos_embed, **kwargs).eval()
    return PESwinTransformer(pretrain_img_size=64, embed_dims=16, depths=(2, 1), num_heads=(2, 4), strides=(4, 2),
                             window_size=4, out_indices=(0, 1), pos_embed=pos_embed, **kwargs).eval()


def cases(kind):
    return [(kind, e) for e in ENCODING_PRESETS if ENCODING_PRESETS[e]['type'] in BACKBONE_ENCODINGS[kind]
            and e != 'loope' and not (kind == 'swin' and e == 'rope_dinov3')]


@torch.no_grad()
def eager(model, images):
    return model(images)


@pytest.mark.slow  # torch.export (about 2-4 s of CPU each)
@pytest.mark.parametrize('kind, encoding', cases('vit') + cases('swin') + [('vitdet', 'rope_mixed')])
def test_torch_export_serves_every_size(kind, encoding):
    kwargs = dict(window_size=2, global_attn_indices=(1,)) if kind == 'vitdet' else {}
    model = backbone('vit' if kind == 'vitdet' else kind, encoding, **kwargs)
    images = [torch.randn(1, 3, *size) for size in SIZES]
    eager(model, images[0])  # fills the table caches at the traced size: none may reach the graph
    cached = {name: len(cache) for name, cache in TABLE_CACHES.items()}
    program = export_program(model, images[0])
    assert {name: len(cache) for name, cache in TABLE_CACHES.items()} == cached
    assert not program.constants  # RoPE tables, masks, resized APE: computed in the graph, none baked in
    for x in images:
        assert max_difference(program.module()(x), eager(model, x)) < 1e-5


@pytest.mark.slow  # torch.export
def test_loope_exports_at_its_size_only():
    model = backbone('vit', 'loope')
    with pytest.raises(ValueError, match='LOOPE computes its Gilbert order in Python .* dynamic=False'):
        export_program(model, torch.randn(1, 3, 64, 80))
    program = export_program(model, torch.randn(1, 3, 64, 80), dynamic=False)
    x = torch.randn(1, 3, 64, 80)
    assert max_difference(program.module()(x), eager(model, x)) < 1e-5
    with pytest.raises(AssertionError, match='Guard failed'):  # refuses another size instead of a wrong order
        program.module()(torch.randn(1, 3, 96, 64))


def test_onnx_refuses_dynamic_adaptive_pooling():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(3))
    with pytest.raises(ValueError, match=r"dynamic=True: ONNX export of adaptive average pooling to sizes other "
                                         r"than 1 \(1, e.g. UperNet's pyramid pooling\)"):
        export_program(model, torch.randn(1, 3, 32, 32), fmt='onnx')
    with pytest.raises(ValueError, match="fmt must be one of 'torch', 'onnx', got 'tflite'"):
        export_program(model, torch.randn(1, 3, 32, 32), fmt='tflite')


@pytest.mark.slow  # ONNX export (about 5-10 s of CPU each)
@pytest.mark.parametrize('kind, encoding', [('vit', 'rope_mixed'), ('vit', 'rope_dinov3'), ('swin', 'rpb')])
def test_onnx_backbone_matches_pytorch(kind, encoding, tmp_path):
    model = backbone(kind, encoding)
    export_program(model, torch.randn(1, 3, *SIZES[0]), fmt='onnx').save(str(tmp_path / 'model.onnx'))
    for size in SIZES[1:]:
        x = torch.randn(1, 3, *size)
        assert max_difference(run_onnx(str(tmp_path / 'model.onnx'), x), eager(model, x)) < 1e-4


@pytest.mark.slow  # exports a whole UperNet twice (about 30 s of CPU)
def test_onnx_upernet_segmentor_matches_pytorch(tmp_path):
    """The demo's UperNet + Swin + RoPE-Mixed in tensor mode (decode head logits), one ONNX model per size."""
    from mmengine.model import revert_sync_batchnorm
    cfg = Config.fromfile(str(ROOT / 'configs/demo/upernet_swin-rope-mixed_synthetic.py'))
    model = TensorMode(revert_sync_batchnorm(build_model(cfg.model, 'mmseg'))).eval()
    for size in [(128, 160), (96, 224)]:
        x = torch.randn(1, 3, *size)
        path = str(tmp_path / f'upernet_{size[0]}x{size[1]}.onnx')
        export_program(model, x, dynamic=False, fmt='onnx').save(path)
        expected = eager(model, x)
        assert expected.shape == (1, 5, size[0] // 4, size[1] // 4)
        assert max_difference(run_onnx(path, x), expected) < 1e-4


@pytest.mark.slow  # subprocess, torch.export
def test_export_tool(tmp_path):
    """The demo's Swin (window 7): traced and checked at sizes where every stage has at least two windows
    per side (docs/user_guides/export.md), at a smaller one the program's guard stops it."""
    out = tmp_path / 'backbone.pt2'
    proc = subprocess.run([sys.executable, 'tools/deployment/export.py',
                           'mmpe::demo/upernet_swin-rope-mixed_synthetic.py',
                           '--backbone', '--format', 'torch', '--shape', '256', '320', '--out', str(out),
                           '--check', '288', '352'], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    difference = float(proc.stdout.split('288x352: largest difference from PyTorch ')[1])
    assert difference < 1e-5 and out.is_file()
    program = torch.export.load(str(out)).module()
    assert [tuple(m.shape) for m in program(torch.randn(1, 3, 320, 256))] == [
        (1, 32, 80, 64), (1, 64, 40, 32), (1, 128, 20, 16), (1, 256, 10, 8)]  # Swin's four stage maps
    with pytest.raises(AssertionError, match='Guard failed'):  # last stage 2 x 3 patches: one window
        program(torch.randn(1, 3, 64, 80))
