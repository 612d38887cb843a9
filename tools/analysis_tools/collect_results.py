"""Collect evaluated runs into one comparison: encoding (and backbone) x metric, over seeds.

    python tools/analysis_tools/collect_results.py WORK_DIR [WORK_DIR ...] --out DIR [--metrics mIoU ...]
        [--flops-size H W]
    python tools/analysis_tools/collect_results.py WORK_DIR [WORK_DIR ...] --reproduce docs/reproduce.md

Every run directory at or below the WORK_DIRs that eval_multires.py evaluated
(``multires/multires.csv``) is one seed of one (backbone, encoding), as its ``multires/run.json``
says. Writes to ``--out``:
- results.md/.csv: per (backbone, encoding), each metric at test scale 1 as mean ± std over seeds
  (sample standard deviation; none for one seed), backbone parameters and GFLOPs (multiply-adds of one
  forward at ``--flops-size``, attention and RoPE included: ``mmpe.analysis.complexity``), median
  training s/iter and peak memory (mmengine's logged ``time`` and ``memory``; memory is logged
  on CUDA only, n/a on CPU); when runs were evaluated with test-time augmentation, also each
  metric of the 'tta' row as '<metric> (tta)'.
- results_by_scale.md/.csv: one row per (backbone, encoding, test scale), metrics mean ± std; the
  scale 'tta' is the multi-scale + flip test (eval_multires.py --tta).
- <metric>_vs_encoding.png (scale 1, bars with std) and <metric>_vs_scale.png (a line per
  encoding, a panel per backbone) for each metric.

``--reproduce FILE`` fills the 'mmpe' cells of FILE's tables (docs/reproduce.md) in place. A table
between ``<!-- mmpe:reproduce metric=NAME [factor=F] -->`` and ``<!-- mmpe:end -->`` has a
'config' column (the config's path) and 'mmpe' (test scale 1) and/or 'mmpe (tta)' columns; each
row's cells become F x NAME over the runs of the config of that file name (``run_config_name``):
'mean ± std (n=seeds)' (sample standard deviation; 'mean (n=1)' for one run), or '—' when no run
matches. Nothing else in FILE changes, so a second run with the same work dirs changes nothing.
"""
import argparse
import json
import math
import os
import os.path as osp
import re
import statistics
from typing import Dict, List, Tuple

import mmpe  # noqa: F401  (compatibility fixes and model registration)
from mmpe.analysis.report import pyplot, slug, write_table
from mmpe.analysis.study import MULTIRES, TTA, find_runs, read_csv, train_speed
from mmpe.pos_embed import ENCODING_PRESETS


def mean_std(values: List[float]):
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan


def scale_order(scale):
    """Test scales ascending, the multi-scale + flip row 'tta' last."""
    return (scale == TTA, 0.0 if scale == TTA else scale)


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
            scales = sorted(s for s in by_scale if s != TTA)
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


# ----------------------------------------------------------------------------- --reproduce

REPRODUCE_TABLE = re.compile(r'<!-- mmpe:reproduce (?P<attrs>[^>]*?) -->\n(?P<table>.*?)<!-- mmpe:end -->', re.S)
MMPE_COLUMNS = {'mmpe': 1.0, f'mmpe ({TTA})': TTA}  # column header -> multires.csv scale
MISSING = '—'


def config_name(path: str) -> str:
    """The file name of a config without .py: what --reproduce matches runs and table rows by."""
    return osp.splitext(osp.basename(path.strip().strip('`')))[0]


def run_config_name(run: Dict) -> str:
    """The config name of a run: that of the config eval_multires.py evaluated (run.json), except
    for a compare_encodings.py run of a config as it is (no --encodings), whose generated config.py
    lives in WORK_DIR/<config name>/config/seed<k>/: then <config name>."""
    parts = osp.normpath(run['dir']).split(os.sep)
    if config_name(run['config']) == 'config' and len(parts) >= 3 and parts[-2] == 'config':
        return parts[-3]
    return config_name(run['config'])


def reproduce_cell(runs: List[Dict], metric: str, scale, factor: float) -> str:
    """'mean ± std (n=N)' of ``factor`` x ``metric`` at ``scale`` over the runs that evaluated that
    scale (sample std; 'mean (n=1)' for one run), or '—' when none did."""
    values = []
    for run in runs:
        row = run['rows'].get(scale)
        if row is None:
            continue
        if metric not in row:
            raise ValueError(f'--reproduce: metric {metric!r} is not in {run["dir"]}/{MULTIRES}/multires.csv '
                             f'(it has: {", ".join(k for k in row if k != "scale")})')
        if not math.isnan(row[metric]):
            values.append(row[metric] * factor)
    if not values:
        return MISSING
    mean, std = mean_std(values)
    return f'{mean:.2f} (n=1)' if len(values) == 1 else f'{mean:.2f} ± {std:.2f} (n={len(values)})'


def _cells(line: str) -> List[str]:
    """The raw cells of a markdown table row (escaped pipes stay inside cells)."""
    return re.split(r'(?<!\\)\|', line.strip())[1:-1]


def fill_table(table: str, attrs: Dict[str, str], runs_by_config: Dict[str, List[Dict]]) -> Tuple[str, int]:
    """A markdown table with its 'mmpe' cells filled, and how many rows matched a run."""
    if 'metric' not in attrs:
        raise ValueError(f'--reproduce: <!-- mmpe:reproduce {attrs} --> needs metric=NAME')
    metric, factor = attrs['metric'], float(attrs.get('factor', 1))
    lines = table.rstrip('\n').split('\n')
    header = [c.strip() for c in _cells(lines[0])]
    filled = {i: MMPE_COLUMNS[name] for i, name in enumerate(header) if name in MMPE_COLUMNS}
    if 'config' not in header or not filled:
        raise ValueError(f"--reproduce: the table with columns {header} needs a 'config' column and one of "
                         f'{list(MMPE_COLUMNS)}')
    matched = 0
    for n, line in enumerate(lines[2:], start=2):
        cells = _cells(line)
        if len(cells) != len(header):
            raise ValueError(f'--reproduce: the row {line!r} has {len(cells)} cells, its header {len(header)}')
        runs = runs_by_config.get(config_name(cells[header.index('config')]), [])
        matched += bool(runs)
        for i, scale in filled.items():
            cells[i] = f' {reproduce_cell(runs, metric, scale, factor)} '
        lines[n] = '|' + '|'.join(cells) + '|'
    return '\n'.join(lines) + '\n', matched


def fill_reproduce(path: str, runs: List[Dict]) -> int:
    """Fill the 'mmpe' cells of every ``<!-- mmpe:reproduce ... -->`` table of the markdown file
    ``path`` in place from ``runs`` (``load_runs``); returns how many rows matched a run."""
    with open(path) as f:
        text = f.read()
    runs_by_config = {}
    for run in runs:
        runs_by_config.setdefault(run_config_name(run), []).append(run)
    matched = 0

    def fill(match) -> str:
        nonlocal matched
        items = match['attrs'].split()
        if any('=' not in item for item in items):
            raise ValueError(f"--reproduce: '<!-- mmpe:reproduce {match['attrs']} -->' must be KEY=VALUE pairs "
                             f'(metric=NAME [factor=F])')
        attrs = dict(item.split('=', 1) for item in items)
        table, count = fill_table(match['table'], attrs, runs_by_config)
        matched += count
        return match[0].replace(match['table'], table)

    text, tables = REPRODUCE_TABLE.subn(fill, text)
    if not tables:
        raise ValueError(f'--reproduce: {path} has no table between <!-- mmpe:reproduce metric=NAME --> and '
                         f'<!-- mmpe:end -->')
    with open(path, 'w') as f:
        f.write(text)
    return matched


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('work_dirs', nargs='+', help='run directories or directories containing them')
    parser.add_argument('--out', help='output directory for tables and plots')
    parser.add_argument('--reproduce', metavar='FILE',
                        help="fill the 'mmpe' cells of FILE's reproduction tables (docs/reproduce.md) in place")
    parser.add_argument('--metrics', nargs='+', help='metric columns to report (default: all evaluated)')
    parser.add_argument('--flops-size', type=int, nargs=2, default=[512, 512], metavar=('H', 'W'),
                        help='input size of the parameter/FLOPs count of the backbone (default 512 512)')
    args = parser.parse_args()
    if args.out is None and args.reproduce is None:
        parser.error('give --out DIR (tables and plots) and/or --reproduce FILE')
    runs = load_runs(args.work_dirs)
    if args.reproduce:
        matched = fill_reproduce(args.reproduce, runs)
        print(f'filled {args.reproduce}: {matched} rows matched {len(runs)} runs')
    if args.out is None:
        return
    found = list(dict.fromkeys(k for run in runs for row in run['rows'].values() for k in row if k != 'scale'))
    metrics = args.metrics or found
    missing = [m for m in metrics if m not in found]
    if missing:
        raise ValueError(f'--metrics {missing} not evaluated; available: {found}')

    groups = {}
    for run in sorted(runs, key=lambda r: (r['backbone'], encoding_order(r['encoding']), str(r['seed']))):
        groups.setdefault((run['backbone'], run['encoding']), dict(runs=[]))['runs'].append(run)
    size = 'x'.join(map(str, args.flops_size))
    with_tta = any(TTA in run['rows'] for run in runs)
    summary_rows, scale_rows = [], []
    for (backbone, encoding), group in groups.items():
        seeds = group['runs']
        scales = sorted({s for run in seeds for s in run['rows']}, key=scale_order)
        group['by_scale'] = {s: {m: mean_std([run['rows'].get(s, {}).get(m, math.nan) for run in seeds])
                                 for m in metrics} for s in scales}
        group['summary'] = group['by_scale'].get(1.0, {m: (math.nan, math.nan) for m in metrics})
        tta = {f'{m} ({TTA})': group['by_scale'].get(TTA, {}).get(m, (math.nan, math.nan)) for m in metrics}
        cost = complexity(seeds[0], args.flops_size)
        summary_rows.append(dict(
            backbone=backbone, encoding=encoding, seeds=len(seeds), **group['summary'], **(tta if with_tta else {}),
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
