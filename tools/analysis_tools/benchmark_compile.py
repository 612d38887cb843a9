"""What mmengine's ``compile=True`` does to a training step: eager vs ``torch.compile(model.train_step)``
(the Runner's compile), step time, peak memory and compile time, for DINO (Swin-T and ViT-B, RoPE-Mixed
and the RPB / APE baseline) and UperNet ViT-B, in one process per model (mmpe.analysis.compilation).

    python tools/analysis_tools/benchmark_compile.py                      # every model, CPU, 2 images
    python tools/analysis_tools/benchmark_compile.py --models dino-swin-t-rope-mixed --scale 0.25

Each model is its config in configs/ without pretrained weights, on a random batch of two images
(DINO: 800x1333 and 800x1200, boxes 1-9 per image; UperNet: two 512x512 crops), times --scale. A step
is ``model.train_step(batch, optim_wrapper)``: preprocessing, loss forward, backward and the config's
optimizer step. Warm-up calls, then --repeats interleaved timed steps per mode (median); compile_s is
the first compiled step minus the median compiled step. Peak memory: the high-water mark of one step
above the memory held before it, in a fresh process per mode (CPU), or max_memory_allocated (CUDA).
With --profile, one more step per mode under torch.profiler splits its wall time into matrix products and
convolutions (the library kernels compiling cannot speed up), mmpe's deformable attention operator, the
code inductor generated, other operators and time outside any operator (Python, scipy's matching):
mmpe.analysis.compilation.step_time_shares.
One table per model (markdown, CSV, PNG) in --out-dir, ratio to eager beside every figure.
"""
import argparse
import os

import torch
from mmengine.config import DictAction

from mmpe.analysis.benchmark import report
from mmpe.analysis.compilation import eager_vs_compiled

MODELS = {
    'dino-swin-t-rope-mixed': 'configs/dino/dino-4scale_swin-t-rope-mixed_8xb2-12e_coco.py',
    'dino-swin-t-rpb': 'configs/dino/dino-4scale_swin-t-rpb_8xb2-12e_coco.py',
    'dino-vit-b-rope-mixed': 'configs/dino/dino-4scale_vit-b16-rope-mixed_simplefpn_8xb2-12e_coco.py',
    'dino-vit-b-ape': 'configs/dino/dino-4scale_vit-b16-ape_simplefpn_8xb2-12e_coco.py',
    'upernet-vit-b-rope-mixed': 'configs/upernet/upernet_vit-b16-rope-mixed_mln_8xb2-160k_ade20k-512x512.py',
    'upernet-vit-b-ape': 'configs/upernet/upernet_vit-b16-ape_mln_8xb2-160k_ade20k-512x512.py',
}
IMAGES = {'dino': ((800, 1333), (800, 1200)), 'upernet': ((512, 512), (512, 512))}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--models', nargs='+', default=list(MODELS), choices=list(MODELS))
    parser.add_argument('--scale', type=float, default=1.0, help='image sizes times this (a quick check: 0.25)')
    parser.add_argument('--repeats', type=int, default=5, help='interleaved timed steps per mode (median reported)')
    parser.add_argument('--warmup', type=int, default=1, help='untimed steps per mode after the first')
    parser.add_argument('--backend', default='inductor', help="torch.compile backend (compile=True: 'inductor')")
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch default)')
    parser.add_argument('--no-memory', action='store_true', help='skip the peak-memory processes')
    parser.add_argument('--profile', action='store_true',
                        help='profile one more step per mode: time in matmuls/convolutions, deformable attention, '
                             "inductor's generated code, other operators and outside operators (columns profiled_*)")
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help='overrides merged into every config (e.g. a smaller model for a quick check)')
    parser.add_argument('--out-dir', default='work_dirs/benchmark_compile')
    return parser.parse_args()


def main():
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(args.out_dir, exist_ok=True)
    setting = f'{args.device} fp32, {torch.get_num_threads()} threads, torch {torch.__version__}'
    for name in args.models:
        sizes = [(round(h * args.scale), round(w * args.scale)) for h, w in IMAGES[name.split('-')[0]]]
        options = dict(args.cfg_options, **({'model.data_preprocessor.size': sizes[0]} if name.startswith('upernet')
                                            else {}))
        images = ' + '.join(f'{h}x{w}' for h, w in sizes)
        rows = [dict(model=name, images=images, **row) for row in eager_vs_compiled(
            MODELS[name], [(3, *size) for size in sizes], options, args.device, args.warmup, args.repeats,
            memory=not args.no_memory, backend=args.backend, profile=args.profile)]
        if not args.no_memory:
            for row in rows:
                row['peak_vs_eager'] = round(row['peak_mb'] / rows[0]['peak_mb'], 3)
        report(rows, lambda row: rows[0], 'step_s', os.path.join(args.out_dir, name),
               f'{name}: training step (model.train_step), eager vs torch.compile ({args.backend}), {images}, '
               f'{setting}; ratio to eager')


if __name__ == '__main__':
    main()
