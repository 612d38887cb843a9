"""Evaluate a checkpoint of a detector (mmdet config) or segmentor (mmseg config).

    python tools/test.py CONFIG CHECKPOINT [--tta] [--work-dir DIR] [--cfg-options k=v ...]
    bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [same options]
Prints the metrics of the config's test_evaluator (e.g. CocoMetric bbox mAP, IoUMetric mIoU).
--tta tests with the config's test-time augmentation (``tta_pipeline`` and ``tta_model``), as
mmseg's and mmdet's tools/test.py do: for the ADE20k configs, mmseg's multi-scale (ratios 0.5-1.75)
+ flip test.
"""
import argparse

import mmpe  # noqa: F401  (compatibility fixes and model registration)
from mmpe.engine import preflight
from mmpe.engine.launch import add_common_args, build_runner, load_config, tta_config


def main():
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model')
    parser.add_argument('config', help="test config: a file or a name such as 'mmpe::dino/<config>.py'")
    parser.add_argument('checkpoint', help='checkpoint: a file, hf://OWNER/REPO[/FILE][@REVISION], timm://MODEL '
                                           'or a URL')
    parser.add_argument('--tta', action='store_true',
                        help="test-time augmentation: the config's tta_pipeline and tta_model")
    add_common_args(parser)
    args = parser.parse_args()
    cfg = load_config(args)
    if args.tta:
        cfg = tta_config(cfg, args.config)
    cfg.load_from = args.checkpoint
    preflight.run(cfg, args.config, 'test')  # missing data or weights: one message, exit code 2
    build_runner(cfg).test()


if __name__ == '__main__':
    main()
