"""How often torch.compile recompiles a backbone over DINO-like input sizes.

    python tools/analysis_tools/compile_recompiles.py                   # 20 sizes, small Swin and ViT, RoPE-Mixed
    python tools/analysis_tools/compile_recompiles.py --sizes 10 --models vit-rope_mixed

DINO resizes each image so that its short side is one of 480..800 (step 32) and its long side at
most 1333, and pads each batch to its own size: nearly every step has a new input size. This
compiles each backbone once (``torch.compile``, default ``dynamic=None``: dynamo specialises on
the first size and turns to dynamic shapes when a size changes), runs a training step at each of
``--sizes`` such sizes, and counts the graphs dynamo compiled (``torch._dynamo.utils.counters``).
Writes markdown and CSV to --out.
"""
import argparse

from mmpe.analysis.benchmark_cases import RECOMPILE_MODELS, count_recompiles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', type=int, default=20)
    parser.add_argument('--models', nargs='+', default=['vit-rope_mixed', 'swin-rope_mixed'], choices=RECOMPILE_MODELS)
    parser.add_argument('--out', default='work_dirs/compile_recompiles')
    args = parser.parse_args()
    count_recompiles(args.models, sizes=args.sizes, out=args.out)


if __name__ == '__main__':
    main()
