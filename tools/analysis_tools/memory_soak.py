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

from mmpe.analysis.benchmark import MALLOC_ENV, report, small_backbone, status_mb
from mmpe.pos_embed import TABLE_CACHES

VIT_ENCODINGS = ('ape', 'sincos', 'rope_axial', 'rope_mixed', 'loope')
SWIN_ENCODINGS = ('rpb', 'rope_mixed', 'loope')
MODELS = [f'vit-{e}' for e in VIT_ENCODINGS] + [f'swin-{e}' for e in SWIN_ENCODINGS]


def soak(name: str, num_shapes: int, warmup: int, seed: int = 0) -> dict:
    """Train-step ``num_shapes`` distinct random shapes through model ``name``; memory and cache sizes."""
    torch.manual_seed(seed)
    model = small_backbone(name).train()
    gen = torch.Generator().manual_seed(seed)
    shapes, seen = [], set()
    while len(shapes) < num_shapes:
        shape = tuple(torch.randint(64, 513, (2,), generator=gen).tolist())
        if shape not in seen:
            seen.add(shape)
            shapes.append(shape)
    for cache in TABLE_CACHES.values():
        cache.clear()
    largest = {key: 0 for key in TABLE_CACHES}
    after_warmup = None
    for i, (h, w) in enumerate(shapes):
        outs = model(torch.randn(1, 3, h, w))
        sum(out.float().mean() for out in outs).backward()
        model.zero_grad(set_to_none=True)
        for key, cache in TABLE_CACHES.items():
            largest[key] = max(largest[key], len(cache))
        if i + 1 == warmup:
            after_warmup = status_mb('VmRSS')
    over = [f'{key} {largest[key]} > {TABLE_CACHES[key].maxsize}' for key in largest
            if largest[key] > TABLE_CACHES[key].maxsize]
    used = {key.split('.')[-1]: f'{n}/{TABLE_CACHES[key].maxsize}' for key, n in largest.items() if n}
    return dict(model=name, shapes=num_shapes, rss_after_warmup_mb=after_warmup, rss_end_mb=status_mb('VmRSS'),
                growth_mb=status_mb('VmRSS') - after_warmup, caches_used=' '.join(f'{k} {v}' for k, v in used.items()),
                caches_over_bound=' '.join(over) or 'none')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--shapes', type=int, default=2000, help='distinct input shapes per model')
    parser.add_argument('--warmup', type=int, default=100, help='shapes before the reference RSS reading')
    parser.add_argument('--models', nargs='+', default=MODELS, choices=MODELS)
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
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for name in args.models:
        rows.append(soak(name, args.shapes, args.warmup))
        print(rows[-1], flush=True)
    report(rows, lambda row: None, 'growth_mb', os.path.join(args.out, 'memory_soak'),
           f'Resident memory over {args.shapes} distinct input shapes (64..512 px), training steps, '
           f'after {args.warmup} warm-up shapes')


if __name__ == '__main__':
    main()
