"""Speed and memory of PEVisionTransformer encodings (global attention), and against timm.

    python tools/analysis_tools/benchmark_vit.py --size 1024 --repeats 3            # ViT-B/16, CPU fp32
    python tools/analysis_tools/benchmark_vit.py --size 256 --repeats 5 --arch small  # quick run

Cases, timed interleaved in one process: mmpe APE, RoPE-Axial, RoPE-Mixed and timm's
vit_{arch}_patch16_rope_mixed_224 (Eva, dynamic_img_size=True), all with the RoPE-ViT
layout (CLS token, LayerScale, final norm). 'forward' runs under no_grad in eval mode;
'forward+backward' is a training step (loss = mean square of the final features).
``--compile`` adds mmpe APE and RoPE-Mixed under torch.compile (inductor) to the
forward+backward timing. Peak memory of one training step above the model (mmpe.analysis.benchmark:
CPU high-water mark in a fresh process per case, CUDA max_memory_allocated) for every case.
Writes tables (markdown, CSV) and plots to --out.
"""
import argparse

import torch

from mmpe.analysis.benchmark_cases import VIT_ARCHS, vit_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', default='1024', help='input size: N or HxW (default 1024)')
    parser.add_argument('--arch', default='base', choices=list(VIT_ARCHS))
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch default)')
    parser.add_argument('--no-memory', action='store_true', help='skip the peak-memory measurement')
    parser.add_argument('--compile', action='store_true',
                        help='also time compiled APE and RoPE-Mixed (forward+backward)')
    parser.add_argument('--modes', nargs='*', default=['forward', 'forward+backward'],
                        choices=['forward', 'forward+backward'], help='what to time (none: memory only)')
    parser.add_argument('--out', default='work_dirs/benchmark_vit')
    args = parser.parse_args()
    size = tuple(int(s) for s in args.size.lower().split('x')) * (1 if 'x' in args.size.lower() else 2)
    if args.threads:
        torch.set_num_threads(args.threads)
    vit_benchmark(size=size, arch=args.arch, repeats=args.repeats, warmup=args.warmup, device=args.device,
                  modes=args.modes, compile=args.compile, memory=not args.no_memory, out=args.out)


if __name__ == '__main__':
    main()
