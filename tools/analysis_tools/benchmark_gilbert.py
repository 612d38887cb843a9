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

from mmpe.analysis.benchmark_cases import gilbert_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--shapes', nargs='+', default=['14x14', '64x64', '50x84', '200x336', '336x200', '513x7'],
                        help='grids HxW')
    parser.add_argument('--repeats', type=int, default=15)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--out', default='work_dirs/benchmark_gilbert')
    args = parser.parse_args()
    gilbert_benchmark(args.shapes, repeats=args.repeats, warmup=args.warmup, out=args.out)


if __name__ == '__main__':
    main()
