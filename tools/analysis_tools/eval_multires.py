"""Evaluate a checkpoint at several test resolutions: the test resize times each scale.

    python tools/analysis_tools/eval_multires.py CONFIG CHECKPOINT [--scales 0.5 0.75 1 1.25 1.5 2] [--tta]
        [--out DIR] [--work-dir DIR] [--cfg-options k=v ...]
    torchrun --nproc-per-node N tools/analysis_tools/eval_multires.py CONFIG CHECKPOINT --launcher pytorch [...]

For each scale, mmengine's Runner tests the config with its test resize multiplied by the scale
(inserted after image loading if the pipeline has none; an mmseg sliding-window crop is scaled
too: ``mmpe.analysis.study.scale_test_cfg``), through the config's ``default_scope`` (mmdet CocoMetric,
mmseg IoUMetric, ...). ``--tta`` adds the row 'tta': the config's test-time augmentation as
``tools/test.py --tta`` runs it (mmseg's ADE20k configs: ratios 0.5-1.75 x flip, averaged).
Writes to ``--out`` (default ``WORK_DIR/multires``): multires.md/.csv (one row per scale, then
'tta', one column per metric), multires.png (each metric against scale), run.json
(backbone, encoding, seed, config, checkpoint) and config.py (the config at scale 1)
(``mmpe.analysis.study.evaluate_scales``).
"""
import argparse

import mmpe  # noqa: F401  (compatibility fixes and model registration)
from mmpe.analysis.study import evaluate_scales
from mmpe.engine.launch import add_common_args, load_config


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--scales', type=float, nargs='+', default=[0.5, 0.75, 1.0, 1.25, 1.5, 2.0],
                        help='factors applied to the test resize')
    parser.add_argument('--tta', action='store_true',
                        help="add the row 'tta': the config's test-time augmentation (multi-scale + flip)")
    parser.add_argument('--out', help='output directory (default: WORK_DIR/multires)')
    add_common_args(parser)
    args = parser.parse_args()
    if any(not s > 0 for s in args.scales):
        raise ValueError(f'--scales must be positive, got {args.scales}')
    evaluate_scales(load_config(args), config=args.config, checkpoint=args.checkpoint, scales=args.scales,
                    tta=args.tta, out=args.out)


if __name__ == '__main__':
    main()
