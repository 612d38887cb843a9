"""Filling docs/reproduce.md from the study's runs (tools/analysis_tools/collect_results.py --reproduce).

``--reproduce FILE`` fills the 'mmpe' cells of FILE's tables (docs/reproduce.md) in place
(``fill_reproduce``). A table
between ``<!-- mmpe:reproduce metric=NAME [factor=F] -->`` and ``<!-- mmpe:end -->`` has a
'config' column (the config's path) and 'mmpe' (test scale 1) and/or 'mmpe (tta)' columns; each
row's cells become F x NAME over the runs of the config of that file name (``run_config_name``):
'mean ± std (n=seeds)' (sample standard deviation; 'mean (n=1)' for one run), or '—' when no run
matches. Nothing else in FILE changes, so a second run with the same work dirs changes nothing.
"""
import math
import os
import os.path as osp
import re
from typing import Dict, List, Tuple

from .stats import summarize
from .study import MULTIRES, TTA

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
    summary = summarize(values)
    return f'{summary.mean:.2f} (n=1)' if summary.n == 1 else f'{summary.mean:.2f} ± {summary.std:.2f} (n={summary.n})'


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
    ``path`` in place from ``runs`` (``mmpe.analysis.results.load_runs``; their ``multires/`` evaluations,
    evaluation variants left out); returns how many rows matched a run."""
    with open(path) as f:
        text = f.read()
    runs_by_config = {}
    for run in runs:
        if osp.basename(run['eval_dir']) == MULTIRES:
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
