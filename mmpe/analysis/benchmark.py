"""Benchmark helpers: interleaved timing in one process, peak memory, tables and plots.

Every benchmark in tools/ compares cases inside one run: same shapes and threads, warm-up,
repeats interleaved across cases (so machine noise hits all of them alike), median time,
and the ratio to a baseline case beside every figure.
"""
import gc
import multiprocessing as mp
import os
import statistics
import time
from typing import Callable, Dict, List, Optional

import torch

from .progress import Item, Progress
from .report import pyplot, write_table

MALLOC_ENV = {'MALLOC_MMAP_THRESHOLD_': '65536', 'MALLOC_TRIM_THRESHOLD_': '0'}


def small_backbone(name: str) -> torch.nn.Module:
    """A small backbone for soak and compile checks: 'vit-<encoding>' (ViT-16, 2 blocks, 64 wide)
    or 'swin-<encoding>' (Swin, 4 stages from 32 wide, window 7), e.g. 'swin-rope_mixed'."""
    from ..models import PESwinTransformer, PEVisionTransformer
    arch, encoding = name.split('-', 1)
    if arch == 'vit':
        return PEVisionTransformer(img_size=224, patch_size=16, embed_dims=64, depth=2, num_heads=4,
                                   pos_embed=dict(type=encoding))
    return PESwinTransformer(embed_dims=32, depths=(1, 2, 1, 1), num_heads=(2, 4, 8, 8), window_size=7,
                             drop_path_rate=0.0, pos_embed=dict(type=encoding))


def _sync(device) -> None:
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize()


def time_interleaved(cases: Dict[str, Callable[[], object]], warmup: int = 2, repeats: int = 7,
                     device='cpu', progress: Optional[str] = None) -> Dict[str, float]:
    """Median seconds per call of each zero-argument callable: ``warmup`` calls of each case, then ``repeats``
    rounds calling every case. ``progress``: shows the calls' progress under that description
    (``mmpe.analysis.progress``; warm-up and timed calls of a case are estimated apart)."""
    calls = [(name, False) for name in cases for _ in range(warmup)]
    calls += [(name, True) for _ in range(repeats) for name in cases]
    items = [Item(f'{name} ({"timed" if timed else "warm-up"})', kind=(name, timed)) for name, timed in calls]
    times = {name: [] for name in cases}
    with Progress(progress or 'timing', items, unit='calls', show=progress is not None,
                  live=False) as shown:
        for name, timed in shown.track(calls):
            if not timed:
                cases[name]()
                continue
            _sync(device)
            start = time.perf_counter()
            cases[name]()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status ('VmRSS', 'VmHWM'), in MiB."""
    with open('/proc/self/status') as f:
        line = next(line for line in f if line.startswith(field + ':'))
    return int(line.split()[1]) / 1024


def _peak_worker(setup, args, queue) -> None:
    step = setup(*args)
    step()  # warm-up: creates gradients' allocator blocks, lazy tables, thread pools
    gc.collect()
    before = status_mb('VmRSS')  # model, inputs and whatever the step keeps between calls
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')  # reset the high-water mark VmHWM to the current resident size
    step()
    queue.put(status_mb('VmHWM') - before)


def cpu_peak_memory_mb(setup: Callable, *args) -> float:
    """Peak resident memory (MiB) of one call of ``step = setup(*args)`` above the memory held
    before that call (model, inputs; measured after one warm-up call), in a fresh spawned process
    whose glibc returns large blocks to the system at once (``MALLOC_MMAP_THRESHOLD_=65536``,
    ``MALLOC_TRIM_THRESHOLD_=0``), so resident memory follows the live tensors. The peak is the
    kernel's high-water mark (``VmHWM``), reset through ``/proc/self/clear_refs`` after the
    warm-up: transients of model building or of the warm-up do not count. ``setup`` must be a
    module-level function returning the zero-argument step."""
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    saved = {k: os.environ.get(k) for k in MALLOC_ENV}
    os.environ.update(MALLOC_ENV)  # read by the child's glibc at start-up
    try:
        proc = ctx.Process(target=_peak_worker, args=(setup, args, queue))
        proc.start()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key)
            else:
                os.environ[key] = value
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


def peak_memory_mb(device: str, setup: Callable, *args) -> float:
    """Peak memory (MiB) of one call of ``step = setup(*args)`` on ``device``: ``cpu_peak_memory_mb`` on CPU
    (``setup`` module-level), else ``cuda_peak_memory_mb``."""
    if torch.device(device).type == 'cpu':
        return cpu_peak_memory_mb(setup, *args)
    return cuda_peak_memory_mb(setup(*args))


def report(rows: List[dict], baseline_of: Callable[[dict], Optional[dict]], value: str, out_prefix: str,
           title: str) -> str:
    """Add ``ratio`` (row[value] / baseline row[value]) to each row, print a markdown table,
    write ``out_prefix``.md/.csv and a bar plot ``out_prefix``.png. Returns the markdown."""
    for row in rows:
        base = baseline_of(row)
        row['ratio'] = round(row[value] / base[value], 3) if base else ''
    markdown = write_table(rows, out_prefix, title)
    print(markdown)
    _plot(rows, value, out_prefix + '.png', title)
    return markdown


def _plot(rows: List[dict], value: str, path: str, title: str) -> None:
    plt = pyplot()
    labels = [' / '.join(str(v) for k, v in row.items() if isinstance(v, str) and k != 'ratio') for row in rows]
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(rows) + 1.5))
    ax.barh(labels, [row[value] for row in rows])
    ax.invert_yaxis()
    ax.set_xlabel(value)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
