"""Memory soak: many distinct input shapes through small ViT and Swin backbones, forward+backward.

    python tools/analysis_tools/memory_soak.py                      # 2000 shapes (64..512 px per side) per model
    python tools/analysis_tools/memory_soak.py --shapes 200 --models vit-rope_mixed swin-rpb

Detection trains at thousands of distinct input sizes; every table an encoding derives from the
grid (RoPE angles, sin-cos tables, Gilbert orders, attention masks) must live in a bounded cache.
For each model this pushes ``--shapes`` random (H, W) inputs through a training step and reports
the resident memory after a warm-up (the first ``--warmup`` shapes) and at the end, and the
largest size each table cache reached against its bound. Runs itself again in a fresh process
whose glibc returns freed blocks at once, so resident memory follows the live tensors.
Writes markdown and CSV to --out.
"""
import argparse
import os
import subprocess
import sys

import torch

from mmpe.analysis.benchmark import MALLOC_ENV
from mmpe.analysis.benchmark_cases import SOAK_MODELS, memory_soak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--shapes', type=int, default=2000, help='distinct input shapes per model')
    parser.add_argument('--warmup', type=int, default=100, help='shapes before the reference RSS reading')
    parser.add_argument('--models', nargs='+', default=SOAK_MODELS, choices=SOAK_MODELS)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--out', default='work_dirs/memory_soak')
    parser.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.warmup >= args.shapes:
        parser.error(f'--warmup ({args.warmup}) must be smaller than --shapes ({args.shapes})')
    if not args.worker:  # run again in a process whose glibc was told to return memory at once
        env = dict(os.environ, **MALLOC_ENV)
        sys.exit(subprocess.call([sys.executable, *sys.argv, '--worker'], env=env))
    torch.set_num_threads(args.threads)
    memory_soak(args.models, shapes=args.shapes, warmup=args.warmup, out=args.out)


if __name__ == '__main__':
    main()
