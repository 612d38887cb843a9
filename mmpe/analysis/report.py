"""Results as files: the one table writer (markdown + CSV) and the one plotting setup of the
benchmarks, diagnostics and the encoding study."""
import csv
import io
import math
import re
from typing import Dict, List, Optional

from ..engine.checkpoints import write_atomic
from .stats import Interval


def fmt(value) -> str:
    """Table cell: floats to 4 significant digits, NaN as 'n/a', (mean, std) as 'mean ± std',
    an ``Interval`` as '[low, high]'."""
    if isinstance(value, Interval):
        return 'n/a' if math.isnan(value.low) else f'[{fmt(value.low)}, {fmt(value.high)}]'
    if isinstance(value, tuple):
        return fmt(value[0]) if math.isnan(value[1]) else f'{fmt(value[0])} ± {fmt(value[1])}'
    if isinstance(value, float):
        return 'n/a' if math.isnan(value) else f'{value:.4g}'
    return str(value)


def _csv_cells(row: Dict, columns: List[str]) -> Dict:
    cells = {}
    for c in columns:
        value = row.get(c, '')
        if isinstance(value, Interval):
            cells[c + ' low'], cells[c + ' high'] = ('' if math.isnan(v) else v for v in value)
            continue
        mean, std = value if isinstance(value, tuple) else (value, None)
        cells[c] = '' if isinstance(mean, float) and math.isnan(mean) else mean
        if std is not None:
            cells[c + ' std'] = '' if math.isnan(std) else std
    return cells


def write_table(rows: List[Dict], prefix: str, title: str = '', columns: Optional[List[str]] = None) -> str:
    """Write ``prefix``.md (under a '### title' line if given) and ``prefix``.csv (full precision);
    returns the markdown. Columns: ``columns``, or the first row's keys. A (mean, std) value is
    'mean ± std' in markdown and two CSV columns, ``name`` and ``name std``; an ``Interval``
    '[low, high]' and CSV columns ``name low`` and ``name high``; NaN is 'n/a' in markdown and an
    empty CSV cell. Each file is written whole or not at all (``write_atomic``): a run's multires.csv
    marks it evaluated, so a kill must not leave half of one."""
    if not rows:
        raise ValueError('write_table needs at least one row')
    columns = columns or list(rows[0])
    lines = ([f'### {title}', ''] if title else []) + ['| ' + ' | '.join(columns) + ' |',
                                                       '|' + '---|' * len(columns)]
    lines += ['| ' + ' | '.join(fmt(row.get(c, '')) for c in columns) + ' |' for row in rows]
    markdown = '\n'.join(lines) + '\n'
    write_atomic(prefix + '.md', markdown.encode())
    cells = [_csv_cells(row, columns) for row in rows]
    fields = list(dict.fromkeys(k for row in cells for k in row))
    text = io.StringIO(newline='')
    writer = csv.DictWriter(text, fieldnames=fields)
    writer.writeheader()
    writer.writerows(cells)
    write_atomic(prefix + '.csv', text.getvalue().encode())
    return markdown


def pyplot():
    """matplotlib.pyplot on the file-only Agg backend."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def slug(name: str) -> str:
    """A file-name-safe form of a label."""
    return re.sub(r'[^A-Za-z0-9_.+-]+', '_', name).strip('_')
