"""Speed of building the Gilbert order (LOOPE's X_G): mmpe's breadth-first vectorised gilbert_order
against the recursive gilbert2d generator it replaced.

    python tools/analysis_tools/benchmark_gilbert.py
    python tools/analysis_tools/benchmark_gilbert.py --shapes 14x14 200x336 --repeats 21

'recursive' is the classic recursive Python generator (the test oracle ``mmpe.testing.gilbert2d_reference``:
the same algorithm and tensor build as mmpe's former implementation);
'vectorised' is ``gilbert_order`` without its cache. Both outputs are checked equal before timing.
Median of --repeats calls per case, interleaved; ``ratio`` = time / recursive time for the same shape.
"""
import argparse
import inspect
import os
import os.path as osp

import torch

from mmpe.analysis.benchmark import report, time_interleaved
from mmpe.pos_embed import gilbert_order
from mmpe.testing import gilbert2d_reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--shapes', nargs='+', default=['14x14', '64x64', '50x84', '200x336', '336x200', '513x7'],
                        help='grids HxW')
    parser.add_argument('--repeats', type=int, default=15)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--out', default='work_dirs/benchmark_gilbert')
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)

    recursive, vectorised = gilbert2d_reference, inspect.unwrap(gilbert_order)  # unwrap: bypass the cache
    cases = {}
    for shape in args.shapes:
        hw = tuple(int(s) for s in shape.lower().split('x'))
        if not torch.equal(vectorised(*hw), recursive(*hw)):
            raise RuntimeError(f'gilbert_order differs from the recursive gilbert2d at {shape}')
        cases[f'{shape} / recursive'] = lambda hw=hw: recursive(*hw)
        cases[f'{shape} / vectorised'] = lambda hw=hw: vectorised(*hw)
    times = time_interleaved(cases, warmup=args.warmup, repeats=args.repeats)
    rows = [dict(zip(('shape', 'impl'), name.split(' / ')), ms=t * 1e3) for name, t in times.items()]
    by_name = {(row['shape'], row['impl']): row for row in rows}
    report(rows, lambda row: by_name[row['shape'], 'recursive'], 'ms', osp.join(args.out, 'gilbert'),
           f'gilbert_order: recursive generator vs breadth-first vectorised (CPU, median of {args.repeats})')


if __name__ == '__main__':
    main()
