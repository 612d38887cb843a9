"""Tables of diagnostics: one list of row dicts -> markdown and CSV."""
import csv
import os
from typing import List


def write_table(rows: List[dict], out_prefix: str, title: str, digits: int = 3) -> str:
    """Write rows (dicts with the same keys) as ``out_prefix``.md (markdown, floats with
    ``digits`` decimals, under a '### title' line) and ``out_prefix``.csv (full precision).
    Returns the markdown."""
    if not rows:
        raise ValueError('write_table needs at least one row')
    columns = list(rows[0])
    lines = [f'### {title}', '', '| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    for row in rows:
        lines.append('| ' + ' | '.join(f'{row[c]:.{digits}f}' if isinstance(row[c], float) else str(row[c])
                                       for c in columns) + ' |')
    markdown = '\n'.join(lines) + '\n'
    os.makedirs(os.path.dirname(os.path.abspath(out_prefix)), exist_ok=True)
    with open(out_prefix + '.md', 'w') as f:
        f.write(markdown)
    with open(out_prefix + '.csv', 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return markdown
