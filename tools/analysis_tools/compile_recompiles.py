"""How often torch.compile recompiles a backbone over DINO-like input sizes.

    python tools/analysis_tools/compile_recompiles.py                   # 20 sizes, small Swin and ViT, RoPE-Mixed
    python tools/analysis_tools/compile_recompiles.py --sizes 10 --models vit-rope_mixed

DINO resizes each image so that its short side is one of 480..800 (step 32) and its long side at
most 1333, and pads each batch to its own size: nearly every step has a new input size. This
compiles each backbone once (``torch.compile``, default ``dynamic=None``: dynamo specialises on
the first size and turns to dynamic shapes when a size changes), runs a training step at each of
``--sizes`` such sizes, and counts the graphs dynamo compiled (``torch._dynamo.utils.counters``).
Writes markdown and CSV to --out.
"""
import argparse
import os
import random
import time

import torch
from torch._dynamo.utils import counters

from mmpe.analysis.benchmark import report, small_backbone

MODELS = ('vit-rope_mixed', 'vit-rope_axial', 'vit-ape', 'swin-rope_mixed', 'swin-rpb')


def dino_sizes(num: int, seed: int = 0):
    """(H, W) of DINO's multi-scale resize: short side in 480..800 (step 32), long side <= 1333,
    aspect ratio of a random COCO-like image (3:4 .. 16:9), either orientation."""
    rng = random.Random(seed)
    sizes = []
    for _ in range(num):
        short, aspect = rng.choice(range(480, 801, 32)), rng.uniform(4 / 3, 16 / 9)
        long = min(1333, round(short * aspect))
        sizes.append((short, long) if rng.random() < 0.7 else (long, short))
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', type=int, default=20)
    parser.add_argument('--models', nargs='+', default=['vit-rope_mixed', 'swin-rope_mixed'], choices=MODELS)
    parser.add_argument('--out', default='work_dirs/compile_recompiles')
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    sizes = dino_sizes(args.sizes)
    rows = []
    for name in args.models:
        torch._dynamo.reset()
        counters.clear()
        model = torch.compile(small_backbone(name).train())
        start = time.perf_counter()
        for h, w in sizes:
            sum(out.mean() for out in model(torch.randn(1, 3, h, w))).backward()
            model.zero_grad(set_to_none=True)
        rows.append(dict(model=name, sizes=len(sizes), distinct_sizes=len(set(sizes)),
                         graphs_compiled=counters['stats']['unique_graphs'],
                         graph_breaks=sum(counters['graph_break'].values()),
                         seconds=time.perf_counter() - start))
        print(rows[-1], flush=True)
    report(rows, lambda row: None, 'graphs_compiled', os.path.join(args.out, 'recompiles'),
           f'torch.compile graphs over {len(sizes)} DINO-like input sizes (training steps, torch {torch.__version__})')


if __name__ == '__main__':
    main()
