"""Where torch.compile breaks a whole DINO, and how many graphs it compiles over DINO's training sizes.

    python tools/analysis_tools/compile_detector.py                        # Swin-T and ViT-B RoPE-Mixed DINO
    python tools/analysis_tools/compile_detector.py --sizes 4 --scale 0.25 --models dino-vit-b-rope-mixed

For each config (without pretrained weights): (1) ``torch._dynamo.explain`` of backbone, neck, encoder and
decoder on the inputs they get in a training loss forward (two images of --explain-size, padded
differently): graphs and graph breaks per part; (2) the whole loss forward: graphs, breaks and where
each break is; (3) training steps (loss forward and backward) of ``torch.compile(model)`` (inductor) at
--sizes batches of two images of DINO's multi-scale sizes (mmpe.analysis.compilation.dino_sizes, times
--scale) with 1-9 boxes each: graphs compiled for the first batch, for each batch and in all, and the
last batch that compiled any, as the backbone tool (compile_recompiles.py) counts them. Markdown and
CSV go to --out.
"""
import argparse
import os
import random
import time

import torch
from mmengine.config import DictAction

from mmpe.analysis.compilation import (
    DETECTOR_PARTS,
    config_batch,
    config_model,
    count_graphs,
    dino_sizes,
    explain_parts,
    explain_whole,
)
from mmpe.analysis.report import write_table

CONFIGS = {
    'dino-swin-t-rope-mixed': 'configs/dino/dino-4scale_swin-t-rope-mixed_8xb2-12e_coco.py',
    'dino-vit-b-rope-mixed': 'configs/dino/dino-4scale_vit-b16-rope-mixed_simplefpn_8xb2-12e_coco.py',
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', nargs='+', default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument('--explain-size', type=int, nargs=2, default=(320, 480), metavar=('H', 'W'))
    parser.add_argument('--sizes', type=int, default=10, help='training batches at DINO sizes (0: none)')
    parser.add_argument('--scale', type=float, default=1.0, help='DINO sizes times this (a quick check: 0.25)')
    parser.add_argument('--backend', default='inductor', help='torch.compile backend of the size sweep')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='overrides merged into every config (e.g. a smaller model for a quick check)')
    parser.add_argument('--out', default='work_dirs/compile_detector')
    return parser.parse_args()


def main():
    args = parse_args()
    os.makedirs(args.out, exist_ok=True)
    h, w = args.explain_size
    explain_images = [(3, h, w), (3, h - 32, w - 64)]
    sizes = [(round(a * args.scale), round(b * args.scale)) for a, b in dino_sizes(2 * args.sizes)]
    rng = random.Random(0)
    part_rows, whole_rows, size_rows = [], [], []
    for name in args.models:
        cfg, model, optim_wrapper = config_model(CONFIGS[name], args.cfg_options, args.device)
        model.train()
        data = model.data_preprocessor(config_batch(cfg, explain_images), training=True)
        forward = lambda: model(**data, mode='loss')  # noqa: E731
        part_rows += [{'model': name, **row, 'break_sites': '; '.join(row['break_sites'])}
                      for row in explain_parts(model, forward, DETECTOR_PARTS)]
        whole = explain_whole(forward)
        whole_rows.append({'model': name, **whole, 'break_sites': '; '.join(whole['break_sites'])})
        print(part_rows[-len(DETECTOR_PARTS):], whole_rows[-1], flush=True)
        if not args.sizes:
            continue
        batches = [config_batch(cfg, [(3, *a), (3, *b)], num_items=[rng.randint(1, 9), rng.randint(1, 9)])
                   for a, b in zip(sizes[::2], sizes[1::2])]
        train_step = torch.compile(model.train_step, backend=args.backend)  # what the Runner's compile=True does
        start = time.perf_counter()
        counts = count_graphs(lambda batch: train_step(batch, optim_wrapper), batches)
        new_graphs = counts['new_graphs']
        size_rows.append(dict(model=name, backend=args.backend, batches=len(batches), distinct_sizes=len(set(sizes)),
                              first_graphs=new_graphs[0], graphs=sum(new_graphs), graph_breaks=counts['graph_breaks'],
                              new_graphs_per_batch=' '.join(map(str, new_graphs)),
                              last_compiling_batch=max(i + 1 for i, n in enumerate(new_graphs) if n),
                              seconds=time.perf_counter() - start))
        print(size_rows[-1], flush=True)
    setting = f'{args.device}, torch {torch.__version__}, training loss forward'
    write_table(part_rows, os.path.join(args.out, 'parts'), f'Graph breaks per part of DINO ({setting})')
    write_table(whole_rows, os.path.join(args.out, 'whole'), f'Graph breaks of the whole DINO ({setting})')
    if size_rows:
        write_table(size_rows, os.path.join(args.out, 'sizes'),
                    f'Graphs over batches of two images at DINO training sizes times {args.scale} ({setting} '
                    f'and backward)')


if __name__ == '__main__':
    main()
