"""Benchmark helpers: interleaved timing in one process, peak memory, tables and plots.

Every benchmark in tools/ compares cases inside one run: same shapes and threads, warm-up,
repeats interleaved across cases (so machine noise hits all of them alike), median time,
and the ratio to a baseline case beside every figure.
"""
import csv
import multiprocessing as mp
import resource
import statistics
import time
from typing import Callable, Dict, List, Optional

import torch


def _sync(device) -> None:
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize()


def time_interleaved(cases: Dict[str, Callable[[], object]], warmup: int = 2, repeats: int = 7,
                     device='cpu') -> Dict[str, float]:
    """Median seconds per call of each zero-argument callable, repeats interleaved."""
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _rss_mb() -> float:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2 ** 20


def _peak_worker(setup, args, queue) -> None:
    step = setup(*args)
    before = _rss_mb()  # model and inputs built: what every step starts from
    for _ in range(2):  # the first step also creates gradients, lazy tables and allocator caches
        step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put(peak - before)


def cpu_peak_memory_mb(setup: Callable, *args) -> float:
    """Peak resident memory (MiB) that calls of ``setup(*args)()`` add on top of the memory
    held once ``setup`` has returned (model and inputs), measured in a fresh spawned process. ``setup`` must be a
    module-level function returning the zero-argument step to measure."""
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    proc = ctx.Process(target=_peak_worker, args=(setup, args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def cuda_peak_memory_mb(step: Callable[[], object]) -> float:
    """Peak CUDA memory (MiB) allocated during one call of ``step``."""
    step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    step()
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - base) / 2 ** 20


def report(rows: List[dict], baseline_of: Callable[[dict], Optional[dict]], value: str, out_prefix: str,
           title: str) -> str:
    """Add ``ratio`` (row[value] / baseline row[value]) to each row, print a markdown table,
    write ``out_prefix``.md/.csv and a bar plot ``out_prefix``.png. Returns the markdown."""
    for row in rows:
        base = baseline_of(row)
        row['ratio'] = round(row[value] / base[value], 3) if base else ''
    columns = list(rows[0])
    lines = [f'### {title}', '', '| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    for row in rows:
        lines.append('| ' + ' | '.join(f'{row[c]:.4g}' if isinstance(row[c], float) else str(row[c])
                                       for c in columns) + ' |')
    markdown = '\n'.join(lines) + '\n'
    print(markdown)
    with open(out_prefix + '.md', 'w') as f:
        f.write(markdown)
    with open(out_prefix + '.csv', 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    _plot(rows, value, out_prefix + '.png', title)
    return markdown


def _plot(rows: List[dict], value: str, path: str, title: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    labels = [' / '.join(str(v) for k, v in row.items() if isinstance(v, str) and k != 'ratio') for row in rows]
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(rows) + 1.5))
    ax.barh(labels, [row[value] for row in rows])
    ax.invert_yaxis()
    ax.set_xlabel(value)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
