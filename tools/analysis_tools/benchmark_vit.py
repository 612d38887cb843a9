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
import os

import timm
import torch

from mmpe.analysis.benchmark import cpu_peak_memory_mb, cuda_peak_memory_mb, report, time_interleaved
from mmpe.models import PEVisionTransformer

ARCHS = {'small': dict(embed_dims=384, depth=12, num_heads=6), 'base': dict(embed_dims=768, depth=12, num_heads=12),
         'large': dict(embed_dims=1024, depth=24, num_heads=16)}
CASES = {'APE': dict(type='ape'), 'RoPE-Axial': dict(type='rope_axial'), 'RoPE-Mixed': dict(type='rope_mixed')}
TIMM_CASE = 'timm RoPE-Mixed'
COMPILED = 'compiled '


def build_model(case: str, arch: str, device: str) -> torch.nn.Module:
    if case.startswith(COMPILED):
        return torch.compile(build_model(case[len(COMPILED):], arch, device))
    if case == TIMM_CASE:
        model = timm.create_model(f'vit_{arch}_patch16_rope_mixed_224', pretrained=False, dynamic_img_size=True)
    else:
        dims = ARCHS[arch]
        model = PEVisionTransformer(**dims, layer_scale_init_value=1e-5, pos_embed=CASES[case],
                                    out_indices=dims['depth'] - 1)
    return model.to(device)


def features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.forward_features(x) if isinstance(model, timm.models.eva.Eva) else model(x)[0]


def make_step(case: str, arch: str, size, device: str, train: bool):
    """A zero-argument callable: one forward (no_grad) or one forward+backward at ``size``."""
    model = build_model(case, arch, device).train(train)
    x = torch.randn(1, 3, *size, device=device)

    def forward():
        with torch.no_grad():
            features(model, x)

    def train_step():
        features(model, x).square().mean().backward()
        model.zero_grad(set_to_none=True)

    return train_step if train else forward


def train_step_factory(case: str, arch: str, size, device: str):
    """Module-level setup for cpu_peak_memory_mb (runs in a spawned process)."""
    return make_step(case, arch, size, device, train=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--size', default='1024', help='input size: N or HxW (default 1024)')
    parser.add_argument('--arch', default='base', choices=list(ARCHS))
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
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)
    setting = f'ViT-{args.arch[0].upper()}/16, {size[0]}x{size[1]}, batch 1, {args.device} fp32, ' \
              f'{torch.get_num_threads()} threads'

    cases = [*CASES, TIMM_CASE]
    rows = []
    for train in [mode == 'forward+backward' for mode in args.modes]:
        compiled = [COMPILED + 'APE', COMPILED + 'RoPE-Mixed'] if train and args.compile else []
        steps = {case: make_step(case, args.arch, size, args.device, train) for case in cases + compiled}
        times = time_interleaved(steps, warmup=args.warmup, repeats=args.repeats, device=args.device)
        rows += [dict(encoding=case, mode='forward+backward' if train else 'forward', seconds=times[case])
                 for case in steps]
        del steps

    def same_mode(baseline):
        def baseline_of(row):
            base = COMPILED + baseline if row['encoding'].startswith(COMPILED) else baseline
            return next(r for r in rows if r['encoding'] == base and r['mode'] == row['mode'])
        return baseline_of

    if rows:
        report([dict(r) for r in rows], same_mode('APE'), 'seconds', os.path.join(args.out, 'time_vs_ape'),
               f'Time, ratio to APE ({setting})')
        vs_timm = [dict(r) for r in rows if r['encoding'] in ('RoPE-Mixed', TIMM_CASE)]
        report(vs_timm, same_mode(TIMM_CASE), 'seconds', os.path.join(args.out, 'time_vs_timm'),
               f'mmpe RoPE-Mixed vs timm Eva ({setting})')

    if not args.no_memory:
        memory = []
        for case in cases:
            if args.device == 'cpu':
                peak = cpu_peak_memory_mb(train_step_factory, case, args.arch, size, args.device)
            else:
                peak = cuda_peak_memory_mb(make_step(case, args.arch, size, args.device, train=True))
            memory.append(dict(encoding=case, peak_mb=peak))
        report(memory, lambda row: memory[0], 'peak_mb', os.path.join(args.out, 'train_step_memory'),
               f'Peak memory of a training step, ratio to APE ({setting})')


if __name__ == '__main__':
    main()
