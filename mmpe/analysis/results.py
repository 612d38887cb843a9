"""The results engine of the encoding study (tools/analysis_tools/collect_results.py): evaluated runs
collected into one comparison, encoding per (backbone, task) x metric, over seeds, with confidence
intervals and paired differences against a reference encoding.

Every run directory at or below the WORK_DIRs that eval_multires.py evaluated
(``multires/multires.csv``) is one seed of one (backbone, task, encoding), as its ``multires/run.json``
says (``task`` is optional: runs without it form one task, and the tables then have no task column).
Statistics over seeds (``mmpe.analysis.stats``): the mean, the sample standard deviation and the 95%
confidence interval of the mean (Student t, n - 1 degrees of freedom); NaN values (e.g. COCO's -1 for
an empty size range) are left out of n. Written to ``--out`` (``write_results``):

- results.md/.csv: per (backbone, task, encoding), each metric at test scale 1 as mean ± std over
  seeds and its 95% CI ('n/a' for one seed), backbone parameters and GFLOPs (multiply-adds of one
  forward at ``--flops-size``, attention and RoPE included: ``mmpe.analysis.complexity``), median
  training s/iter and peak memory (mmengine's logged ``time`` and ``memory``; memory is logged
  on CUDA only, n/a on CPU); when runs were evaluated with test-time augmentation, also each
  metric of the 'tta' row as '<metric> (tta)'.
- results_by_scale.md/.csv: one row per (backbone, task, encoding, test scale), metrics mean ± std
  and 95% CI; the scale 'tta' is the multi-scale + flip test (eval_multires.py --tta).
- paired_differences.md/.csv: at test scale 1, one row per (backbone, task, metric, encoding): the
  differences encoding - reference over the seeds both were run with (runs are paired by seed: the
  same seed is the same pretraining and fine-tuning seed for every encoding), their mean ± std, 95%
  CI and n pairs; 'called' is '+' or '-' when the interval excludes zero, empty otherwise. Seeds
  only one side has are dropped, named in the 'note' column. The reference is 'ape' for
  PEVisionTransformer, 'rpb' for PESwinTransformer (the backbone type of the evaluated config);
  ``--reference ENCODING`` sets it for every backbone, ``--reference BACKBONE=ENCODING`` for one.
  A (backbone, task) without runs of its reference gets no rows (said on stdout).
  paired_differences_by_scale.md/.csv: the same at every test scale.
- headline.md/.csv: the one metric per (backbone, task) a reader compares first, the first of
  ``--headline`` it has (default mIoU, then coco/bbox_mAP): mean ± std at every test scale and the
  95% CI at 1x; headline_paired.md/.csv: its paired difference to the reference at every scale as
  'mean [low, high]', followed by '+' or '-' when called (the numbers: paired_differences_by_scale.csv).
- <metric>_vs_encoding.png (scale 1, bars with 95% CI), <metric>_vs_scale.png (a line per
  encoding with its 95% CI band) and paired_<metric>.png (each encoding's difference to the
  reference at scale 1 with its 95% CI): a panel per backbone and task that has the metric, three
  to a row.
"""
import json
import math
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

from ..pos_embed import ENCODING_PRESETS
from .report import fmt, pyplot, slug, write_table
from .stats import Summary, paired_difference, summarize
from .study import MULTIRES, TTA, find_runs, read_csv, run_evaluations, train_speed

CI = '95% CI'  # the column of summarize()'s interval (its default confidence 0.95)
DEFAULT_REFERENCES = {'PEVisionTransformer': 'ape', 'PESwinTransformer': 'rpb'}  # backbone type -> encoding
Key = Tuple[str, str, str]  # (backbone, task, encoding)


def scale_order(scale):
    """Test scales ascending, the multi-scale + flip row 'tta' last."""
    return (scale == TTA, 0.0 if scale == TTA else scale)


def encoding_order(name: str):
    presets = list(ENCODING_PRESETS)
    return (presets.index(name), '') if name in presets else (len(presets), name)


def load_runs(work_dirs: Sequence[str]) -> List[Dict]:
    """Every evaluation of every evaluated run at or below ``work_dirs`` (``run_evaluations``: its
    ``multires/`` and those of its evaluation variants, each labelled by its own run.json): run.json's labels
    (``task`` '' when absent), ``dir`` (the run), ``eval_dir``, ``rows`` {scale: multires.csv row} and the
    training speed (``train_speed``)."""
    runs = []
    for run_dir in find_runs(work_dirs):
        for eval_dir in run_evaluations(run_dir):
            with open(osp.join(eval_dir, 'run.json')) as f:
                info = json.load(f)
            rows = {row['scale']: row for row in read_csv(osp.join(eval_dir, 'multires.csv'))}
            runs.append(dict(info, task=info.get('task') or '', dir=run_dir, eval_dir=eval_dir, rows=rows,
                             **train_speed(run_dir)))
    if not runs:
        raise ValueError(f'no evaluated runs (*/{MULTIRES}/multires.csv) under {work_dirs}: run eval_multires.py first')
    return runs


def evaluated_config(run: Dict):
    """The config eval_multires.py evaluated at scale 1 (``config.py`` of the evaluation directory)."""
    from mmengine.config import Config
    return Config.fromfile(osp.join(run['eval_dir'], 'config.py'))


def complexity(cfg, size) -> Dict:
    """Backbone parameters (M) and GFLOPs at ``size`` of an evaluated config."""
    from .complexity import build_backbone, model_complexity
    result = model_complexity(build_backbone(cfg), tuple(size))
    return dict(params=result['params'] / 1e6, gflops=result['flops'] / 1e9)


def stat_cells(name: str, summary: Summary) -> Dict:
    """Table cells of one statistic: ``name`` (mean, std) and ``name 95% CI``."""
    return {name: (summary.mean, summary.std), f'{name} {CI}': summary.ci}


def cell_label(backbone: str, task: str) -> str:
    """'backbone / task' (a plot panel, a message), or the backbone when runs have no task label."""
    return f'{backbone} / {task}' if task else backbone


def references(encodings: Dict[str, set], backbone_types: Dict[str, str], specs: Optional[List[str]]) -> Dict:
    """Reference encoding per backbone: DEFAULT_REFERENCES of its type, overridden by ``--reference``
    specs (ENCODING: every backbone; BACKBONE=ENCODING: one). ``encodings``: backbone -> run encodings."""
    chosen = {b: DEFAULT_REFERENCES.get(t.split('.')[-1]) for b, t in backbone_types.items()}
    for spec in specs or []:
        backbone, _, encoding = spec.rpartition('=')
        if backbone and backbone not in chosen:
            raise ValueError(f'--reference {spec!r}: no runs of backbone {backbone!r} (backbones: {sorted(chosen)})')
        for b in [backbone] if backbone else chosen:
            if encoding not in encodings[b]:
                raise ValueError(f'--reference {spec!r}: backbone {b!r} has no runs of encoding {encoding!r} '
                                 f'(it has: {sorted(encodings[b])})')
            chosen[b] = encoding
    return chosen


def summary_tables(groups: Dict[Key, List[Dict]], configs: Dict, metrics: List[str], flops_size, with_task: bool):
    """Statistics {key: {scale: {metric: Summary}}}, the rows of results (scale 1, the 'tta' row, cost)
    and of results_by_scale."""
    size = 'x'.join(map(str, flops_size))
    with_tta = any(TTA in run['rows'] for seeds in groups.values() for run in seeds)
    empty = {m: summarize([]) for m in metrics}
    stats, summary_rows, scale_rows = {}, [], []
    for (backbone, task, encoding), seeds in groups.items():
        labels = dict(backbone=backbone, **(dict(task=task) if with_task else {}), encoding=encoding)
        scales = sorted({s for run in seeds for s in run['rows']}, key=scale_order)
        by_scale = stats[(backbone, task, encoding)] = {
            s: {m: summarize([run['rows'].get(s, {}).get(m, math.nan) for run in seeds]) for m in metrics}
            for s in scales}
        cost = complexity(configs[(backbone, task, encoding)], flops_size)
        summary_rows.append(dict(
            **labels, seeds=len(seeds),
            **{k: v for m, summary in by_scale.get(1.0, empty).items() for k, v in stat_cells(m, summary).items()},
            **({f'{m} ({TTA})': (s.mean, s.std) for m, s in by_scale.get(TTA, empty).items()} if with_tta else {}),
            **{'params (M)': cost['params'], f'GFLOPs @{size}': cost['gflops'],
               's/iter': summarize([r['s_per_iter'] for r in seeds]).mean,
               'memory (MB)': summarize([r['memory_mb'] for r in seeds]).mean}))
        for s in scales:
            scale_rows.append(dict(**labels, scale=s, seeds=len(seeds),
                                   **{k: v for m, summary in by_scale[s].items()
                                      for k, v in stat_cells(m, summary).items()}))
    return stats, summary_rows, scale_rows


def seed_values(runs: List[Dict], scale, metric: str) -> Dict:
    """{seed: metric at scale} of the runs of one (backbone, task, encoding); NaN where not evaluated."""
    values = {}
    for run in runs:
        if run['seed'] in values:
            other = next(r['dir'] for r in runs if r['seed'] == run['seed'])
            raise ValueError(f'{other} and {run["dir"]} are both seed {run["seed"]} of {run["backbone"]} / '
                             f'{run["encoding"]}: paired differences need one run per seed')
        values[run['seed']] = run['rows'].get(scale, {}).get(metric, math.nan)
    return values


def paired_rows(groups: Dict[Key, List[Dict]], refs: Dict[str, Optional[str]], metrics: List[str],
                with_task: bool) -> List[Dict]:
    """Rows of every encoding's paired difference to its backbone's reference, per task, metric and scale."""
    rows = []
    for backbone, task in dict.fromkeys((b, t) for b, t, _ in groups):
        ref = refs[backbone]
        if (backbone, task, ref) not in groups:
            reason = (f'its reference encoding {ref!r} was not run' if ref else
                      f'its backbone type has no default reference (defaults: {DEFAULT_REFERENCES})')
            print(f'no paired differences for {cell_label(backbone, task)}: {reason} '
                  f'(give --reference {backbone}=ENCODING)')
            continue
        ref_runs = groups[(backbone, task, ref)]
        for metric in metrics:
            for (b, t, encoding), runs in groups.items():
                if (b, t) != (backbone, task) or encoding == ref:
                    continue
                scales = ({s for r in runs for s in r['rows']} & {s for r in ref_runs for s in r['rows']})
                for scale in sorted(scales, key=scale_order):
                    paired = paired_difference(seed_values(runs, scale, metric), seed_values(ref_runs, scale, metric))
                    dropped = '; '.join(f'{name} {", ".join(map(str, seeds))}' for name, seeds in
                                        ((encoding, paired.unpaired), (ref, paired.unpaired_reference)) if seeds)
                    rows.append(dict(backbone=backbone, **(dict(task=task) if with_task else {}), metric=metric,
                                     encoding=encoding, reference=ref, scale=scale, pairs=paired.difference.n,
                                     **stat_cells('difference', paired.difference), called=paired.difference.ci.sign(),
                                     note=f'unpaired seeds dropped: {dropped}' if dropped else ''))
    return rows


def scale_column(scale) -> str:
    return scale if scale == TTA else f'{fmt(float(scale))}x'


def difference_cell(row: Dict) -> str:
    """'difference [low, high]' of a paired row, with its sign when called ('n/a' without pairs)."""
    mean, ci = row['difference'][0], row[f'difference {CI}']
    return fmt(mean) if math.isnan(ci.low) else f'{fmt(mean)} {fmt(ci)}{" " + row["called"] if row["called"] else ""}'


def headline_rows(stats: Dict[Key, Dict], paired: List[Dict], candidates: List[str], with_task: bool):
    """The headline tables: per (backbone, task) its first metric of ``candidates`` with a value, at every
    test scale. Returns (rows of mean ± std and the 95% CI at 1x, rows of paired difference cells, the
    test scale columns)."""
    scales = sorted({s for by_scale in stats.values() for s in by_scale}, key=scale_order)
    cells_with = {m: metric_cells(stats, m) for m in candidates}
    means, differences = [], []
    for backbone, task in dict.fromkeys((b, t) for b, t, _ in stats):
        cell = {e: by_scale for (b, t, e), by_scale in stats.items() if (b, t) == (backbone, task)}
        metric = next((m for m in candidates if (backbone, task) in cells_with[m]), None)
        if metric is None:
            print(f'no headline for {cell_label(backbone, task)}: none of --headline {candidates} was evaluated')
            continue
        labels = dict(backbone=backbone, **(dict(task=task) if with_task else {}))
        for encoding, by_scale in cell.items():
            at_one = by_scale.get(1.0, {}).get(metric, summarize([]))
            means.append(dict(**labels, encoding=encoding, metric=metric, seeds=at_one.n,
                              **{scale_column(s): (by_scale[s][metric].mean, by_scale[s][metric].std)
                                 for s in by_scale}, **{f'1x {CI}': at_one.ci}))
        rows = [r for r in paired if (r['backbone'], r.get('task', ''), r['metric']) == (backbone, task, metric)]
        for encoding in dict.fromkeys(r['encoding'] for r in rows):
            mine = [r for r in rows if r['encoding'] == encoding]
            differences.append(dict(**labels, encoding=encoding, reference=mine[0]['reference'], metric=metric,
                                    pairs=max(r['pairs'] for r in mine),
                                    **{scale_column(r['scale']): difference_cell(r) for r in mine}))
    return means, differences, [scale_column(s) for s in scales]


def half_width(mean: float, ci) -> float:
    """Error bar length of a (symmetric) interval around ``mean``; 0 where undefined."""
    return 0.0 if math.isnan(ci.high) else ci.high - mean


def panels(plt, count: int, width: float, height: float, columns: int = 3):
    """A figure of ``count`` panels, ``columns`` to a row; returns it and the panels' axes in order."""
    rows, cols = math.ceil(count / columns), min(count, columns)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:count])


def metric_cells(stats: Dict[Key, Dict], metric: str) -> List[Tuple[str, str]]:
    """The (backbone, task) cells with a value of ``metric`` at some test scale, in table order (none for a
    metric no run evaluated)."""
    return list(dict.fromkeys((b, t) for (b, t, _), by_scale in stats.items()
                              if any(metric in s and not math.isnan(s[metric].mean) for s in by_scale.values())))


def save(plt, fig, path: str) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_vs_encoding(stats: Dict[Key, Dict], metric: str, path: str) -> None:
    plt = pyplot()
    cells = metric_cells(stats, metric)
    fig, axes = panels(plt, len(cells), 4.5, 3.6)
    for ax, (backbone, task) in zip(axes, cells):
        names = [e for b, t, e in stats if (b, t) == (backbone, task)]
        summaries = [stats[(backbone, task, e)].get(1.0, {}).get(metric, summarize([])) for e in names]
        ax.bar(range(len(names)), [s.mean for s in summaries], yerr=[half_width(s.mean, s.ci) for s in summaries],
               capsize=3, color='tab:blue')
        ax.set_xticks(range(len(names)), names, rotation=35, ha='right', fontsize='small')
        ax.set_title(f'{cell_label(backbone, task)}: {metric} (test scale 1, {CI})', fontsize='small')
    save(plt, fig, path)


def plot_vs_scale(stats: Dict[Key, Dict], metric: str, path: str) -> None:
    plt = pyplot()
    cells = metric_cells(stats, metric)
    fig, axes = panels(plt, len(cells), 5.5, 4)
    for ax, (backbone, task) in zip(axes, cells):
        for (b, t, encoding), by_scale in stats.items():
            if (b, t) != (backbone, task):
                continue
            scales = sorted(s for s in by_scale if s != TTA)
            summaries = [by_scale[s][metric] for s in scales]
            line, = ax.plot(scales, [s.mean for s in summaries], marker='o', label=encoding)
            ax.fill_between(scales, [s.ci.low for s in summaries], [s.ci.high for s in summaries],
                            color=line.get_color(), alpha=0.12)
        ax.axvline(1.0, color='grey', linestyle=':', linewidth=1)
        ax.set_xlabel('test scale (x the test size of the config)')
        ax.set_title(f'{cell_label(backbone, task)}: {metric} (bands: {CI})', fontsize='small')
        ax.legend(fontsize='x-small', ncol=2)
    save(plt, fig, path)


CALLED_COLORS = {'+': 'tab:green', '-': 'tab:red', '': 'tab:gray'}


def plot_paired(rows: List[Dict], metric: str, path: str) -> None:
    """Each encoding's difference to the reference with its CI, a panel per backbone and task;
    ``rows``: the paired-difference rows at test scale 1."""
    plt = pyplot()
    rows = [r for r in rows if r['metric'] == metric and r['pairs']]
    cells = list(dict.fromkeys((r['backbone'], r.get('task', '')) for r in rows))
    fig, axes = panels(plt, len(cells), 4.5, 3.6)
    for ax, (backbone, task) in zip(axes, cells):
        cell = [r for r in rows if (r['backbone'], r.get('task', '')) == (backbone, task)]
        means = [r['difference'][0] for r in cell]
        errors = [half_width(m, r[f'difference {CI}']) for r, m in zip(cell, means)]
        ax.bar(range(len(cell)), means, yerr=errors, capsize=3, color=[CALLED_COLORS[r['called']] for r in cell])
        ax.axhline(0.0, color='black', linewidth=0.8)
        ax.set_xticks(range(len(cell)), [r['encoding'] for r in cell], rotation=35, ha='right', fontsize='small')
        ax.set_ylabel(f'{metric}: encoding - {cell[0]["reference"]}', fontsize='small')
        ax.set_title(f'{cell_label(backbone, task)}, test scale 1\n{CI}; green/red: it excludes 0', fontsize='small')
    save(plt, fig, path)


def write_results(runs: List[Dict], out: str, *, metrics: Optional[Sequence[str]] = None,
                  reference: Optional[Sequence[str]] = None, headline: Sequence[str] = ('mIoU', 'coco/bbox_mAP'),
                  flops_size: Sequence[int] = (512, 512)) -> None:
    """Write the tables and plots of the module docstring for ``runs`` (``load_runs``) to ``out``.
    ``metrics``: the metric columns (default: every evaluated one); ``reference``: ``--reference``
    specs (see ``references``); ``headline``: the candidates of the headline metric, in order;
    ``flops_size``: (H, W) of the parameter and FLOPs count."""
    found = list(dict.fromkeys(k for run in runs for row in run['rows'].values() for k in row if k != 'scale'))
    metrics = metrics or found
    missing = [m for m in metrics if m not in found]
    if missing:
        raise ValueError(f'--metrics {missing} not evaluated; available: {found}')

    groups: Dict[Key, List[Dict]] = {}
    for run in sorted(runs, key=lambda r: (r['backbone'], r['task'], encoding_order(r['encoding']), str(r['seed']))):
        groups.setdefault((run['backbone'], run['task'], run['encoding']), []).append(run)
    with_task = any(task for _, task, _ in groups)
    configs = {key: evaluated_config(seeds[0]) for key, seeds in groups.items()}
    backbone_types, encodings = {}, {}
    for (backbone, _, encoding), cfg in configs.items():
        backbone_types.setdefault(backbone, cfg.model.backbone.type)
        encodings.setdefault(backbone, set()).add(encoding)
    refs = references(encodings, backbone_types, reference)
    stats, summary_rows, scale_rows = summary_tables(groups, configs, metrics, flops_size, with_task)
    paired = paired_rows(groups, refs, metrics, with_task)

    os.makedirs(out, exist_ok=True)
    print(write_table(summary_rows, osp.join(out, 'results'),
                      f'Test scale 1, mean ± std over seeds and the {CI} of the mean'))
    write_table(scale_rows, osp.join(out, 'results_by_scale'),
                f'By test scale, mean ± std over seeds and the {CI} of the mean')
    plotted = [m for m in metrics if metric_cells(stats, m)]  # not those without a value (e.g. COCO's -1 only)
    for metric in plotted:
        plot_vs_encoding(stats, metric, osp.join(out, f'{slug(metric)}_vs_encoding.png'))
        plot_vs_scale(stats, metric, osp.join(out, f'{slug(metric)}_vs_scale.png'))
    written = f'results.md, results_by_scale.md and {2 * len(plotted)} plots'
    at_scale_one = [{k: v for k, v in r.items() if k != 'scale'} for r in paired if r['scale'] == 1.0]
    if paired:
        write_table(paired, osp.join(out, 'paired_differences_by_scale'),
                    f'Paired differences to the reference by test scale (called: the {CI} excludes 0)')
        written += ', paired_differences_by_scale.md'
    if at_scale_one:
        print(write_table(at_scale_one, osp.join(out, 'paired_differences'),
                          f'Paired differences to the reference at test scale 1 (encoding - reference, '
                          f'over seeds; called: the {CI} excludes 0)'))
        paired_plotted = [m for m in plotted if any(r['metric'] == m and r['pairs'] for r in at_scale_one)]
        for metric in paired_plotted:
            plot_paired(at_scale_one, metric, osp.join(out, f'paired_{slug(metric)}.png'))
        written += f', paired_differences.md and {len(paired_plotted)} paired plots'
    means, differences, scale_columns = headline_rows(stats, paired, list(headline), with_task)
    labels = ['backbone', 'task'] if with_task else ['backbone']
    if means:
        print(write_table(means, osp.join(out, 'headline'), f'Headline: {" / ".join(headline)} by test '
                          f'scale, mean ± std over seeds, the {CI} of the mean at 1x',
                          [*labels, 'encoding', 'metric', 'seeds', *scale_columns, f'1x {CI}']))
        written += ', headline.md'
    if differences:
        print(write_table(differences, osp.join(out, 'headline_paired'),
                          f'Headline: paired difference to the reference by test scale, mean {CI}, '
                          f'+/- where the interval excludes 0',
                          [*labels, 'encoding', 'reference', 'metric', 'pairs', *scale_columns]))
        written += ', headline_paired.md'
    print(f'wrote {out}/{written} from {len(runs)} runs')
