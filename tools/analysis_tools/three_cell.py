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

import torch

from mmpe.analysis.three_cell import ThreeCellSetup, three_cell_study
from mmpe.models.vit import VIT_ENCODINGS
from mmpe.pos_embed import ENCODING_PRESETS

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


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    setup = ThreeCellSetup(grid=args.grid, cell=args.cell, embed_dims=args.embed_dims, depth=args.depth,
                           num_heads=args.num_heads, mlp_ratio=args.mlp_ratio, steps=args.steps,
                           batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                           test_size=args.test_size, test_seed=args.test_seed)
    three_cell_study(setup, encodings=args.encodings, seeds=args.seeds, out=args.out,
                     loope_context=args.loope_context, table_only=args.table_only)


if __name__ == '__main__':
    main()
