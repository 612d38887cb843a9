"""Train a detector (mmdet config) or segmentor (mmseg config) with mmpe backbones.

The config's ``default_scope`` ('mmdet' or 'mmseg') decides which toolbox builds it.
    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--cfg-options k=v ...]
    bash tools/dist_train.sh CONFIG GPUS [same options]   # torchrun, GPU (nccl) or CPU (gloo)
Before the Runner is built, ``mmpe.engine.preflight`` checks the datasets and checkpoints the config names.
"""
import argparse

import mmpe  # noqa: F401  (compatibility fixes and model registration)
from mmpe.engine import preflight
from mmpe.engine.launch import add_common_args, load_config, train


def main():
    parser = argparse.ArgumentParser(description='Train a detector or segmentor')
    parser.add_argument('config', help="train config: a file or a name such as 'mmpe::dino/<config>.py'")
    parser.add_argument('--amp', action='store_true', help='enable automatic mixed precision training (GPU)')
    parser.add_argument('--resume', nargs='?', type=str, const='auto',
                        help='resume from the given checkpoint, or without a value from the latest '
                             'checkpoint in the work dir')
    add_common_args(parser)
    args = parser.parse_args()
    cfg = load_config(args)
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume is not None:
        cfg.resume, cfg.load_from = True, args.resume
    preflight.run(cfg, args.config, 'train')  # missing data or weights: one message, exit code 2
    preflight.resume(cfg, args.config)  # no complete checkpoint to resume: one message, exit code 2
    train(cfg)  # a distributed run that lost a process: one line says so, exit code 1


if __name__ == '__main__':
    main()
