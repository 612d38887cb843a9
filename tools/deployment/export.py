"""Export a segmentor (tensor mode: the decode head's logits) or the backbone of any mmpe config to a
torch.export program (.pt2) or an ONNX model (.onnx), and check it against PyTorch.

    python tools/deployment/export.py CONFIG [--checkpoint CKPT] [--backbone] --format {torch,onnx}
                                      --shape H W [--static] [--out FILE] [--check H W ...]
One program serves every input height and width in [--min-size, --max-size] unless --static (LOOPE, and
UperNet's pyramid pooling in ONNX, export static only). --check runs the exported program (onnxruntime
for ONNX) at the given sizes and prints its largest difference from PyTorch. Inputs are images
normalised as the config's data preprocessor does. DINO does not export: docs/user_guides/export.md.
"""
import argparse

import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm
from mmengine.runner import load_checkpoint

import mmpe  # noqa: F401  (compatibility fixes, model registration, 'mmpe::' config names)
from mmpe.engine.config_names import config_file
from mmpe.engine.export import TensorMode, export_program, max_difference, run_onnx
from mmpe.testing import build_model


def main():
    parser = argparse.ArgumentParser(description='Export a segmentor or a backbone (torch.export or ONNX)')
    parser.add_argument('config', help="config file or name ('mmpe::upernet/<config>.py')")
    parser.add_argument('--checkpoint', help='weights to load (default: the config\'s initialisation)')
    parser.add_argument('--backbone', action='store_true', help='export the backbone only (its feature maps)')
    parser.add_argument('--format', choices=['torch', 'onnx'], default='onnx')
    parser.add_argument('--shape', type=int, nargs=2, default=[512, 512], metavar=('H', 'W'),
                        help='size of the example input traced')
    parser.add_argument('--static', action='store_true', help='serve the --shape size only')
    parser.add_argument('--min-size', type=int, default=32)
    parser.add_argument('--max-size', type=int, default=2048)
    parser.add_argument('--out', help='output file (default: the config name with .pt2 / .onnx)')
    parser.add_argument('--check', type=int, nargs='+', default=[], metavar='SIZE',
                        help='sizes H W [H W ...] at which to compare the exported program with PyTorch')
    args = parser.parse_args()
    if len(args.check) % 2:
        parser.error(f'--check takes sizes as pairs H W, got {args.check}')
    cfg = Config.fromfile(config_file(args.config))
    model = revert_sync_batchnorm(build_model(cfg.model, cfg.default_scope))
    if args.checkpoint:
        load_checkpoint(model, args.checkpoint, map_location='cpu')
    model = model.backbone if args.backbone else TensorMode(model)
    model.eval()
    out = args.out or f'{cfg.filename.rsplit("/", 1)[-1][:-3]}{"_backbone" if args.backbone else ""}.' \
                      f'{"pt2" if args.format == "torch" else "onnx"}'
    program = export_program(model, torch.randn(1, 3, *args.shape), dynamic=not args.static,
                             size_range=(args.min_size, args.max_size), fmt=args.format)
    if args.format == 'torch':
        torch.export.save(program, out)
    else:
        program.save(out)
    print(f'wrote {out}')
    for h, w in zip(args.check[::2], args.check[1::2]):
        images = torch.randn(1, 3, h, w)
        with torch.no_grad():
            expected = model(images)
        outputs = program.module()(images) if args.format == 'torch' else run_onnx(out, images)
        print(f'{h}x{w}: largest difference from PyTorch {max_difference(outputs, expected, f"{h}x{w}"):.2e}')


if __name__ == '__main__':
    main()
