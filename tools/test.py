"""Evaluate a checkpoint of a detector (mmdet config) or segmentor (mmseg config).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--cfg-options k=v ...]
    bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [same options]
Prints the metrics of the config's test_evaluator (e.g. CocoMetric bbox mAP, IoUMetric mIoU).
"""
import argparse

import mmpe  # noqa: F401  (compatibility fixes and model registration)
from mmpe.engine import preflight
from mmpe.engine.launch import add_common_args, build_runner, load_config


def main():
    parser = argparse.ArgumentParser(description='Test (and evaluate) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint: a file, hf://OWNER/REPO[/FILE][@REVISION], timm://MODEL '
                                           'or a URL')
    add_common_args(parser)
    args = parser.parse_args()
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    preflight.run(cfg, args.config, 'test')  # missing data or weights: one message, exit code 2
    build_runner(cfg).test()


if __name__ == '__main__':
    main()
