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
import os

import torch

from mmpe.analysis.benchmark import cpu_peak_memory_mb, cuda_peak_memory_mb, report, time_interleaved

SWIN_T = dict(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size=7, drop_path_rate=0.0)
MODELS = ('mmdet SwinTransformer', 'mmpe rpb', 'mmpe rope_mixed', 'mmpe rope_axial')
BASELINE = MODELS[0]


def build(name: str) -> torch.nn.Module:
    """Swin-T by name (random weights)."""
    torch.manual_seed(0)
    if name == BASELINE:
        from mmdet.models.backbones import SwinTransformer
        return SwinTransformer(**SWIN_T)
    from mmpe.models import PESwinTransformer
    return PESwinTransformer(**SWIN_T, pos_embed=dict(type=name.split()[1]))


def train_step(name: str, size, batch: int, device: str):
    """Setup for memory measurement: a zero-argument forward+backward of model ``name``."""
    model = build(name).to(device)
    model.train()
    images = torch.randn(batch, 3, *size, device=device)

    def step():
        sum(out.mean() for out in model(images)).backward()
        model.zero_grad(set_to_none=True)
    return step


def baseline(rows, name):
    """``report``'s baseline_of: the row of model ``name``."""
    return lambda row: next(r for r in rows if r['model'] == name)


def forward_step(model, images):
    def step():
        with torch.no_grad():
            model(images)
    return step


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
    os.makedirs(args.out_dir, exist_ok=True)
    size, shape = tuple(args.size), f'{args.batch}x3x{args.size[0]}x{args.size[1]}'
    setting = f'{shape}, {args.device} fp32, {torch.get_num_threads()} threads, torch {torch.__version__}'
    if 'time' not in args.skip:
        images = torch.randn(args.batch, 3, *size, device=args.device)
        models = {name: build(name).to(args.device) for name in MODELS}
        for model in models.values():
            model.eval()  # mmdet's SwinTransformer.train() returns None, so no chaining
        models['mmpe rpb'].load_state_dict(models[BASELINE].state_dict())  # same weights, same outputs

        forward = time_interleaved({n: forward_step(m, images) for n, m in models.items()}, args.warmup, args.repeats,
                                   args.device)
        rows = [dict(model=n, input=shape, forward_s=t) for n, t in forward.items()]
        report(rows, baseline(rows, BASELINE), 'forward_s', os.path.join(args.out_dir, 'forward'),
               f'Swin-T forward, {setting}; ratio to mmdet')

        train = {n: train_step(n, size, args.batch, args.device) for n in MODELS}
        fwd_bwd = time_interleaved(train, args.warmup, args.repeats, args.device)
        rows = [dict(model=n, input=shape, forward_backward_s=t, vs_rpb=round(t / fwd_bwd['mmpe rpb'], 3))
                for n, t in fwd_bwd.items()]
        report(rows, baseline(rows, BASELINE), 'forward_backward_s', os.path.join(args.out_dir, 'forward_backward'),
               f'Swin-T forward+backward, {setting}; ratio to mmdet')
        del train, models

    if 'memory' in args.skip:
        return
    rows = []
    for name in MODELS:
        if args.device == 'cpu':
            peak = cpu_peak_memory_mb(train_step, name, size, args.batch, args.device)
        else:
            peak = cuda_peak_memory_mb(train_step(name, size, args.batch, args.device))
        rows.append(dict(model=name, input=shape, peak_train_mem_mb=peak))
    for row in rows:
        row['vs_mmdet'] = round(row['peak_train_mem_mb'] / rows[0]['peak_train_mem_mb'], 3)
    report(rows, baseline(rows, 'mmpe rpb'), 'peak_train_mem_mb', os.path.join(args.out_dir, 'train_memory'),
           f'Swin-T peak memory of one forward+backward above the model, {setting}; ratio to mmpe rpb')


if __name__ == '__main__':
    main()
