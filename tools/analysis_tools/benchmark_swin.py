"""Swin-T speed and memory: mmdet's SwinTransformer vs PESwinTransformer ('rpb', 'rope_mixed',
'rope_axial'), in one process with interleaved repeats (mmpe.analysis.benchmark).

    python tools/analysis_tools/benchmark_swin.py                       # 800x1333, batch 1, CPU fp32
    python tools/analysis_tools/benchmark_swin.py --size 224 320 --repeats 3

Tables (markdown, CSV, PNG) go to --out-dir: forward time (ratio to mmdet), forward+backward
time (ratio to mmdet) and peak training memory of one forward+backward above the model (ratio
to mmdet and to 'rpb'; mmpe.analysis.benchmark: CPU high-water mark in a fresh process per case, CUDA
max_memory_allocated).

The kernels differ: mmdet's WindowMSA computes attention explicitly (q @ k^T, softmax, @ v),
mmpe's every encoding through torch.nn.functional.scaled_dot_product_attention. The 'mmpe rpb'
row is the like-for-like baseline of the RoPE rows (same attention kernel, same code path);
the mmdet row shows where mmpe stands against the implementation users run today.
"""
import argparse

import torch

from mmpe.analysis.benchmark_cases import swin_benchmark


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--size', type=int, nargs=2, default=(800, 1333), metavar=('H', 'W'))
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--repeats', type=int, default=5, help='interleaved timed repeats (median reported)')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch default)')
    parser.add_argument('--skip', nargs='*', default=[], choices=['time', 'memory'], help='parts to skip')
    parser.add_argument('--out-dir', default='work_dirs/benchmark_swin')
    return parser.parse_args()


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    swin_benchmark(size=args.size, batch=args.batch, repeats=args.repeats, warmup=args.warmup, device=args.device,
                   skip=args.skip, out_dir=args.out_dir)


if __name__ == '__main__':
    main()
