"""Collect evaluated runs into one comparison: encoding (and backbone) x metric, over seeds.

    python tools/analysis_tools/collect_results.py WORK_DIR [WORK_DIR ...] --out DIR [--metrics mIoU ...]
        [--flops-size H W]

Every run directory at or below the WORK_DIRs that eval_multires.py evaluated
(``multires/multires.csv``) is one seed of one (backbone, encoding), as its ``multires/run.json``
says. Writes to ``--out``:
- results.md/.csv: per (backbone, encoding), each metric at test scale 1 as mean ± std over seeds
  (sample standard deviation; none for one seed), backbone parameters and GFLOPs (multiply-adds of one
  forward at ``--flops-size``, attention and RoPE included: ``mmpe.analysis.complexity``), median
  training s/iter and peak memory (mmengine's logged ``time`` and ``memory``; memory is logged
  on CUDA only, n/a on CPU).
- results_by_scale.md/.csv: one row per (backbone, encoding, test scale), metrics mean ± std.
- <metric>_vs_encoding.png (scale 1, bars with std) and <metric>_vs_scale.png (a line per
  encoding, a panel per backbone) for each metric.
"""
import argparse
import json
import math
import os
import os.path as osp
import statistics
from typing import Dict, List

import mmpe  # noqa: F401  (compatibility fixes and model registration)
from mmpe.analysis.report import pyplot, slug, write_table
from mmpe.analysis.study import MULTIRES, find_runs, read_csv, train_speed
from mmpe.pos_embed import ENCODING_PRESETS


def mean_std(values: List[float]):
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan


def encoding_order(name: str):
    presets = list(ENCODING_PRESETS)
    return (presets.index(name), '') if name in presets else (len(presets), name)


def load_runs(work_dirs: List[str]) -> List[Dict]:
    runs = []
    for run_dir in find_runs(work_dirs):
        with open(osp.join(run_dir, MULTIRES, 'run.json')) as f:
            info = json.load(f)
        rows = {row['scale']: row for row in read_csv(osp.join(run_dir, MULTIRES, 'multires.csv'))}
        runs.append(dict(info, dir=run_dir, rows=rows, **train_speed(run_dir)))
    if not runs:
        raise ValueError(f'no evaluated runs (*/{MULTIRES}/multires.csv) under {work_dirs}: run eval_multires.py first')
    return runs


def complexity(run: Dict, size) -> Dict:
    """Backbone parameters (M) and GFLOPs at ``size`` of a run's evaluated config."""
    from mmengine.config import Config

    from mmpe.analysis.complexity import build_backbone, model_complexity
    cfg = Config.fromfile(osp.join(run['dir'], MULTIRES, 'config.py'))
    result = model_complexity(build_backbone(cfg), tuple(size))
    return dict(params=result['params'] / 1e6, gflops=result['flops'] / 1e9)


def plot_vs_encoding(groups: Dict, metric: str, path: str) -> None:
    plt = pyplot()
    backbones = sorted({b for b, _ in groups})
    fig, axes = plt.subplots(1, len(backbones), figsize=(4.5 * len(backbones), 3.6), squeeze=False)
    for ax, backbone in zip(axes[0], backbones):
        names = [e for b, e in groups if b == backbone]
        stats = [groups[(backbone, e)]['summary'][metric] for e in names]
        ax.bar(range(len(names)), [m for m, _ in stats], yerr=[s for _, s in stats], capsize=3, color='tab:blue')
        ax.set_xticks(range(len(names)), names, rotation=35, ha='right', fontsize='small')
        ax.set_title(f'{backbone}: {metric} (test scale 1)', fontsize='small')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_vs_scale(groups: Dict, metric: str, path: str) -> None:
    plt = pyplot()
    backbones = sorted({b for b, _ in groups})
    fig, axes = plt.subplots(1, len(backbones), figsize=(5.5 * len(backbones), 4), squeeze=False)
    for ax, backbone in zip(axes[0], backbones):
        for b, encoding in groups:
            if b != backbone:
                continue
            by_scale = groups[(b, encoding)]['by_scale']
            scales = sorted(by_scale)
            means = [by_scale[s][metric][0] for s in scales]
            stds = [by_scale[s][metric][1] for s in scales]
            line, = ax.plot(scales, means, marker='o', label=encoding)
            ax.fill_between(scales, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)],
                            color=line.get_color(), alpha=0.12)
        ax.axvline(1.0, color='grey', linestyle=':', linewidth=1)
        ax.set_xlabel('test scale (x the test size of the config)')
        ax.set_title(f'{backbone}: {metric}', fontsize='small')
        ax.legend(fontsize='x-small', ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('work_dirs', nargs='+', help='run directories or directories containing them')
    parser.add_argument('--out', required=True, help='output directory for tables and plots')
    parser.add_argument('--metrics', nargs='+', help='metric columns to report (default: all evaluated)')
    parser.add_argument('--flops-size', type=int, nargs=2, default=[512, 512], metavar=('H', 'W'),
                        help='input size of the parameter/FLOPs count of the backbone (default 512 512)')
    args = parser.parse_args()
    runs = load_runs(args.work_dirs)
    found = list(dict.fromkeys(k for run in runs for row in run['rows'].values() for k in row if k != 'scale'))
    metrics = args.metrics or found
    missing = [m for m in metrics if m not in found]
    if missing:
        raise ValueError(f'--metrics {missing} not evaluated; available: {found}')

    groups = {}
    for run in sorted(runs, key=lambda r: (r['backbone'], encoding_order(r['encoding']), str(r['seed']))):
        groups.setdefault((run['backbone'], run['encoding']), dict(runs=[]))['runs'].append(run)
    size = 'x'.join(map(str, args.flops_size))
    summary_rows, scale_rows = [], []
    for (backbone, encoding), group in groups.items():
        seeds = group['runs']
        scales = sorted({s for run in seeds for s in run['rows']})
        group['by_scale'] = {s: {m: mean_std([run['rows'].get(s, {}).get(m, math.nan) for run in seeds])
                                 for m in metrics} for s in scales}
        group['summary'] = group['by_scale'].get(1.0, {m: (math.nan, math.nan) for m in metrics})
        cost = complexity(seeds[0], args.flops_size)
        summary_rows.append(dict(
            backbone=backbone, encoding=encoding, seeds=len(seeds), **group['summary'],
            **{'params (M)': cost['params'], f'GFLOPs @{size}': cost['gflops'],
               's/iter': mean_std([r['s_per_iter'] for r in seeds])[0],
               'memory (MB)': mean_std([r['memory_mb'] for r in seeds])[0]}))
        for s in scales:
            scale_rows.append(dict(backbone=backbone, encoding=encoding, scale=s, seeds=len(seeds),
                                   **group['by_scale'][s]))
    os.makedirs(args.out, exist_ok=True)
    print(write_table(summary_rows, osp.join(args.out, 'results'),
                      'Test scale 1, mean ± std over seeds'))
    write_table(scale_rows, osp.join(args.out, 'results_by_scale'), 'By test scale, mean ± std over seeds')
    for metric in metrics:
        plot_vs_encoding(groups, metric, osp.join(args.out, f'{slug(metric)}_vs_encoding.png'))
        plot_vs_scale(groups, metric, osp.join(args.out, f'{slug(metric)}_vs_scale.png'))
    print(f'wrote {args.out}/results.md, results_by_scale.md and {2 * len(metrics)} plots '
          f'from {len(runs)} runs')


if __name__ == '__main__':
    main()
