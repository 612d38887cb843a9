"""Mixed-precision training steps of DINO and UperNet for each backbone and encoding.

Each case takes the CPU demo config (configs/demo/*_synthetic.py: small DINO / UperNet), keeps
its small Swin or swaps in a small ViT (PESimpleFPN for DINO, mmseg's MultiLevelNeck for
UperNet), sets the encoding, wraps the optimizer in mmengine's AmpOptimWrapper as
``tools/train.py --amp`` does, and runs ``model.train_step`` (the Runner's iteration) on a
random batch until the optimizer has stepped (fp16's dynamic loss scaler may skip the first
steps). A case passes when the losses and weights stay finite, the backbone's weights moved
and, if the encoding has parameters, so did they. Prints one line per case and a summary;
exit code 1 if any case failed.

    python tools/misc/smoke_train.py --device cuda --dtype float16       # GPU: every case
    python tools/misc/smoke_train.py --device cpu --dtype bfloat16 --encodings rope_mixed
"""
import argparse
import os.path as osp
import sys
import time
import traceback

import torch
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper

import mmpe  # noqa: F401  (compatibility fixes and model registration)
from mmpe.pos_embed import BACKBONE_ENCODINGS
from mmpe.testing import build_model, det_batch, seg_batch

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TASKS = {'dino': 'configs/demo/dino_swin-rope-mixed_synthetic.py',
         'upernet': 'configs/demo/upernet_swin-rope-mixed_synthetic.py'}
IMAGE = (3, 128, 160)  # small, yet enough encoder tokens for the demo DINO's 100 queries
MAX_STEPS = 5
VIT = dict(type='PEVisionTransformer', img_size=(128, 160), patch_size=16, embed_dims=64, depth=4, num_heads=2,
           layer_scale_init_value=0.1, drop_path_rate=0.0, with_cls_token=True, init_cfg=None)


def smoke_config(task: str, backbone: str, encoding: str) -> Config:
    """The demo config of ``task`` with a small ``backbone`` ('swin' or 'vit') using ``encoding``."""
    cfg = Config.fromfile(osp.join(ROOT, TASKS[task]))
    if backbone == 'swin':
        cfg.model.backbone.pos_embed = dict(type=encoding)
        cfg.model.backbone.drop_path_rate = 0.0
    elif task == 'dino':
        cfg.model.backbone = dict(VIT, pos_embed=dict(type=encoding), out_indices=(3,), final_norm=True)
        cfg.model.neck = dict(type='PESimpleFPN', in_channels=64, out_channels=256, scale_factors=(2.0, 1.0, 0.5),
                              num_outs=4, norm_cfg=dict(type='GN', num_groups=32))
    else:
        cfg.model.backbone = dict(VIT, pos_embed=dict(type=encoding), out_indices=(0, 1, 2, 3), final_norm=False)
        cfg.model.neck = dict(type='MultiLevelNeck', in_channels=[64] * 4, out_channels=64, scales=[4, 2, 1, 0.5])
        cfg.model.decode_head.in_channels = [64] * 4
        cfg.model.auxiliary_head.in_channels = 64
    return cfg


def run_case(task: str, backbone: str, encoding: str, device: str, dtype: str) -> str:
    """One case; returns a short report, raises AssertionError when a check fails."""
    cfg = smoke_config(task, backbone, encoding)
    if task == 'upernet':
        cfg.model.data_preprocessor.size = IMAGE[1:]  # the demo pads to 256x320
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.default_scope).to(device)
    cfg.optim_wrapper.type = 'AmpOptimWrapper'  # what tools/train.py --amp does
    cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    cfg.optim_wrapper.dtype = dtype
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    if task == 'dino':
        batch = det_batch([IMAGE, IMAGE], num_classes=cfg.model.bbox_head.num_classes)
    else:
        batch = seg_batch([IMAGE, IMAGE], num_classes=cfg.model.decode_head.num_classes)
    weights = {n: p.detach().clone() for n, p in model.backbone.named_parameters() if p.requires_grad}
    encoding_weights = [n for n in weights if 'pos_embed' in n]
    for step in range(1, MAX_STEPS + 1):
        losses = model.train_step(batch, optim_wrapper)
        bad = [k for k, v in losses.items() if not torch.isfinite(v).all()]
        assert not bad, f'step {step}: non-finite losses {bad}'
        params = dict(model.backbone.named_parameters())
        moved = {n for n, w in weights.items() if not torch.equal(params[n].detach(), w)}
        if moved:
            break
    else:
        raise AssertionError(f'no backbone weight changed in {MAX_STEPS} steps (loss scaler skipped every step)')
    assert all(torch.isfinite(p).all() for p in model.parameters()), 'non-finite weights after the step'
    assert not encoding_weights or moved & set(encoding_weights), f'encoding weights did not move: {encoding_weights}'
    return f'{step} step(s), loss {float(sum(losses.values())):.3f}, {len(moved)}/{len(weights)} backbone tensors moved'


def main():
    parser = argparse.ArgumentParser(description='AMP training steps of DINO and UperNet per backbone and encoding')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--dtype', default=None, choices=['float16', 'bfloat16'],
                        help='autocast dtype (default: float16 on CUDA, bfloat16 on CPU, the only CPU choice)')
    parser.add_argument('--tasks', nargs='+', default=list(TASKS), choices=list(TASKS))
    parser.add_argument('--backbones', nargs='+', default=list(BACKBONE_ENCODINGS), choices=list(BACKBONE_ENCODINGS))
    parser.add_argument('--encodings', nargs='+', default=None,
                        help='default: every encoding the backbone supports')
    args = parser.parse_args()
    MMLogger.get_instance('smoke_train', log_level='WARNING')  # not mmengine's per-parameter optimizer log
    dtype = args.dtype or ('float16' if args.device.startswith('cuda') else 'bfloat16')
    failed = []
    cases = [(t, b, e) for t in args.tasks for b in args.backbones for e in (args.encodings or BACKBONE_ENCODINGS[b])
             if e in BACKBONE_ENCODINGS[b]]
    for case in cases:
        start = time.perf_counter()
        try:
            report = 'PASS ' + run_case(*case, args.device, dtype)
        except Exception as error:  # report every case, then fail
            traceback.print_exc()
            report = f'FAIL {type(error).__name__}: {error}'
            failed.append(case)
        print(f'{"/".join(case):28s} {args.device} {dtype}: {report} ({time.perf_counter() - start:.1f} s)',
              flush=True)
    print(f'smoke_train: {len(cases) - len(failed)} passed, {len(failed)} failed of {len(cases)}')
    sys.exit(1 if failed or not cases else 0)


if __name__ == '__main__':
    main()
