"""The Three-Cell Experiment (LOOPE paper; docs/design.md section 9): can a small ViT learn the distance,
orientation, area and vector-sum relations of three coloured cells with each encoding?

    OMP_NUM_THREADS=1 python tools/analysis_tools/three_cell.py             # the full table: 12 CPU-minutes (1 thread)
    OMP_NUM_THREADS=1 python tools/analysis_tools/three_cell.py --quick     # smoke test: tiny model, a few steps
    python tools/analysis_tools/three_cell.py --encodings ape rope_mixed --seeds 0 1 2 --steps 1000 --out work_dirs/tc

Per encoding and seed: mmpe's PEVisionTransformer (one patch per cell, no CLS token,
``pos_embed=dict(type=ENCODING)``), mean-pooled over the patch tokens, a linear head to the six
targets (``mmpe.analysis.ThreeCellClassifier``), trained with BCE on a fresh balanced batch per step
(``train_three_cell``; the seed sets both the initialisation and the data stream), then evaluated on
one balanced test set shared by all runs (``--test-seed``).

Writes to --out: ``runs.jsonl`` (one line per run with its settings; a rerun skips the runs already
there with the same settings, so an interrupted study resumes), ``three_cell.md/.csv`` (group
accuracies, mean and std over seeds, and the majority-class row: the accuracy of always answering
each target's more frequent label on the test set), ``three_cell_runs.md/.csv`` (every run), and
``checkpoints/ENCODING_seedS.pth`` (the trained model, readable by ``tools/analysis_tools/pesi.py --checkpoint``).
"""
import argparse
import json
import os
import statistics
import time

import torch

from mmpe.analysis import (GROUPS, ThreeCellClassifier, evaluate, majority_accuracy, three_cell_images,
                           three_cell_sample, train_three_cell, write_table)
from mmpe.models.vit import VIT_ENCODINGS, PEVisionTransformer
from mmpe.pos_embed import ENCODING_PRESETS

COLUMNS = (*GROUPS, 'mean')
# Encodings by preset name (mmpe.pos_embed.ENCODING_PRESETS) that a ViT takes, e.g. rope_dinov3.
VIT_PRESETS = [name for name, preset in ENCODING_PRESETS.items() if preset['type'] in VIT_ENCODINGS]
QUICK = dict(grid=5, cell=2, embed_dims=16, depth=1, num_heads=2, mlp_ratio=2.0, steps=4, batch_size=16,
             test_size=30)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--encodings', nargs='+', default=list(VIT_ENCODINGS), choices=VIT_PRESETS,
                        help='encoding presets (default: every ViT encoding type)')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0, 1])
    parser.add_argument('--grid', type=int, default=8, help='cells per side (the paper: 14; 8 fits the CPU budget)')
    parser.add_argument('--cell', type=int, default=2, help='pixels per cell side = the patch size')
    parser.add_argument('--embed-dims', type=int, default=64)
    parser.add_argument('--depth', type=int, default=3)
    parser.add_argument('--num-heads', type=int, default=4)
    parser.add_argument('--mlp-ratio', type=float, default=2.0)
    parser.add_argument('--loope-context', default='conv', choices=('conv', 'mlp'),
                        help="LOOPE context head: 'conv' (mmpe's default) or 'mlp' (the paper's Linear(N, N))")
    parser.add_argument('--steps', type=int, default=500)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--weight-decay', type=float, default=0.05)
    parser.add_argument('--test-size', type=int, default=3000)
    parser.add_argument('--test-seed', type=int, default=1000)
    parser.add_argument('--threads', type=int, default=1, help='torch threads (the machine is shared)')
    parser.add_argument('--quick', action='store_true', help=f'smoke test: {QUICK}')
    parser.add_argument('--table-only', action='store_true',
                        help='train nothing: write the tables from the runs already in runs.jsonl')
    parser.add_argument('--out', default='work_dirs/three_cell')
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
    return args


def run_settings(args, encoding: str, seed: int) -> dict:
    keys = ('grid', 'cell', 'embed_dims', 'depth', 'num_heads', 'mlp_ratio', 'steps', 'batch_size', 'lr',
            'weight_decay', 'test_size', 'test_seed')
    settings = dict(encoding=encoding, seed=seed, **{k: getattr(args, k) for k in keys})
    if encoding == 'loope':
        settings['loope_context'] = args.loope_context
    return settings


def train_one(settings: dict, test_images, test_labels, checkpoint: str) -> dict:
    s = settings
    pos_embed = dict(ENCODING_PRESETS[s['encoding']])
    if s['encoding'] == 'loope':
        pos_embed['context'] = s['loope_context']
    torch.manual_seed(s['seed'])
    backbone = PEVisionTransformer(img_size=s['grid'] * s['cell'], patch_size=s['cell'], embed_dims=s['embed_dims'],
                                   depth=s['depth'], num_heads=s['num_heads'], mlp_ratio=s['mlp_ratio'],
                                   with_cls_token=False, pos_embed=pos_embed)
    model = ThreeCellClassifier(backbone, s['embed_dims'])
    start = time.perf_counter()
    loss = train_three_cell(model, s['grid'], s['cell'], s['steps'], s['batch_size'], s['lr'], s['weight_decay'],
                            s['seed'])
    accuracy = evaluate(model, test_images, test_labels)
    os.makedirs(os.path.dirname(checkpoint), exist_ok=True)
    torch.save({'state_dict': model.state_dict(), 'meta': settings}, checkpoint)
    return dict(settings=settings, accuracy=accuracy, final_loss=loss, seconds=time.perf_counter() - start)


def summarize(results, encodings, majority) -> list:
    rows = []
    for encoding in encodings:
        runs = [r for r in results if r['settings']['encoding'] == encoding]
        if not runs:
            continue
        row = dict(encoding=encoding, seeds=len(runs))
        for col in COLUMNS:
            values = [r['accuracy'][col] for r in runs]
            std = statistics.pstdev(values) if len(values) > 1 else 0.0
            row[col] = f'{statistics.mean(values):.3f} ± {std:.3f}'
        row['train_s'] = f"{statistics.mean(r['seconds'] for r in runs):.0f}"
        rows.append(row)
    rows.append(dict(encoding='majority class', seeds='-', **{c: f'{majority[c]:.3f}' for c in COLUMNS},
                     train_s='-'))
    return rows


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    log_path = os.path.join(args.out, 'runs.jsonl')
    done = []
    if os.path.exists(log_path):
        with open(log_path) as f:
            done = [json.loads(line) for line in f if line.strip()]
    coords, test_labels = three_cell_sample(args.test_size, args.grid, args.test_seed)
    test_images = three_cell_images(coords, args.grid, args.cell)
    results = []
    start = time.perf_counter()
    for encoding in args.encodings:
        for seed in args.seeds:
            settings = run_settings(args, encoding, seed)
            previous = [r for r in done if r['settings'] == settings]
            if previous:
                results.append(previous[-1])
                continue
            if args.table_only:
                print(f'{encoding} seed {seed}: not run yet (left out of the tables)')
                continue
            result = train_one(settings, test_images, test_labels,
                               os.path.join(args.out, 'checkpoints', f'{encoding}_seed{seed}.pth'))
            results.append(result)
            with open(log_path, 'a') as f:
                f.write(json.dumps(result) + '\n')
            acc = ' '.join(f'{k} {v:.3f}' for k, v in result['accuracy'].items())
            print(f"{encoding} seed {seed}: {acc} (loss {result['final_loss']:.3f}, {result['seconds']:.0f} s)",
                  flush=True)
    majority = majority_accuracy(test_labels)
    title = (f"Three-Cell test accuracy ({args.test_size} samples, {args.grid}x{args.grid} cells of {args.cell} px; "
             f"ViT {args.embed_dims}d x {args.depth}, {args.num_heads} heads; {args.steps} steps of "
             f"{args.batch_size}; mean ± std over seeds {args.seeds})")
    write_table([dict(encoding=r['settings']['encoding'], seed=r['settings']['seed'], **r['accuracy'],
                      final_loss=r['final_loss'], seconds=r['seconds']) for r in results],
                os.path.join(args.out, 'three_cell_runs'), 'Three-Cell runs')
    print(write_table(summarize(results, args.encodings, majority), os.path.join(args.out, 'three_cell'), title))
    print(f'total {time.perf_counter() - start:.0f} s; tables in {args.out}')


if __name__ == '__main__':
    main()
