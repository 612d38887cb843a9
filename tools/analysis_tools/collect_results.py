"""Collect evaluated runs into one comparison: encoding per (backbone, task) x metric, over seeds,
with confidence intervals and paired differences against a reference encoding.

    python tools/analysis_tools/collect_results.py WORK_DIR [WORK_DIR ...] --out DIR [--metrics mIoU ...]
        [--flops-size H W] [--reference [BACKBONE=]ENCODING ...] [--headline METRIC ...]
    python tools/analysis_tools/collect_results.py WORK_DIR [WORK_DIR ...] --reproduce docs/reproduce.md

Tables and plots: ``mmpe.analysis.results``; the filling of docs/reproduce.md: ``mmpe.analysis.reproduce``.
"""
import argparse

import mmpe  # noqa: F401  (compatibility fixes and model registration)
from mmpe.analysis import reproduce, results


def main():
    details = [module.__doc__.split('\n\n', 1)[1] for module in (results, reproduce)]  # after their summary line
    parser = argparse.ArgumentParser(description='\n'.join([__doc__, *details]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('work_dirs', nargs='+', help='run directories or directories containing them')
    parser.add_argument('--out', help='output directory for tables and plots')
    parser.add_argument('--reproduce', metavar='FILE',
                        help="fill the 'mmpe' cells of FILE's reproduction tables (docs/reproduce.md) in place")
    parser.add_argument('--metrics', nargs='+', help='metric columns to report (default: all evaluated)')
    parser.add_argument('--reference', nargs='+', metavar='[BACKBONE=]ENCODING',
                        help="reference encoding of the paired differences, for every backbone (ENCODING) or one "
                             "(BACKBONE=ENCODING, the backbone label of run.json); default 'ape' for "
                             "PEVisionTransformer, 'rpb' for PESwinTransformer")
    parser.add_argument('--headline', nargs='+', default=['mIoU', 'coco/bbox_mAP'], metavar='METRIC',
                        help='metrics of the headline tables: each (backbone, task) reports the first one it has '
                             '(default: mIoU, coco/bbox_mAP)')
    parser.add_argument('--flops-size', type=int, nargs=2, default=[512, 512], metavar=('H', 'W'),
                        help='input size of the parameter/FLOPs count of the backbone (default 512 512)')
    args = parser.parse_args()
    if args.out is None and args.reproduce is None:
        parser.error('give --out DIR (tables and plots) and/or --reproduce FILE')
    runs = results.load_runs(args.work_dirs)
    if args.reproduce:
        matched = reproduce.fill_reproduce(args.reproduce, runs)
        print(f'filled {args.reproduce}: {matched} rows matched {len(runs)} runs')
    if args.out is not None:
        results.write_results(runs, args.out, metrics=args.metrics, reference=args.reference,
                              headline=args.headline, flops_size=args.flops_size)


if __name__ == '__main__':
    main()
