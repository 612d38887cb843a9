"""Evaluate a checkpoint at several test resolutions: the test resize times each scale.

    python tools/analysis_tools/eval_multires.py CONFIG CHECKPOINT [--scales 0.5 0.75 1 1.25 1.5 2] [--tta]
        [--out DIR] [--work-dir DIR] [--cfg-options k=v ...]
    torchrun --nproc-per-node N tools/analysis_tools/eval_multires.py CONFIG CHECKPOINT --launcher pytorch [...]

For each scale, mmengine's Runner tests the config with its test resize multiplied by the scale
(inserted after image loading if the pipeline has none; an mmseg sliding-window crop is scaled
too: ``mmpe.analysis.study.scale_test_cfg``), through the config's ``default_scope`` (mmdet CocoMetric,
mmseg IoUMetric, ...). ``--tta`` adds the row 'tta': the config's test-time augmentation as
``tools/test.py --tta`` runs it (mmseg's ADE20k configs: ratios 0.5-1.75 x flip, averaged).
Writes to ``--out`` (default ``WORK_DIR/multires``): multires.md/.csv (one row per scale, then
'tta', one column per metric), multires.png (each metric against scale), run.json
(backbone, encoding, seed, config, checkpoint) and config.py (the config at scale 1).
"""
import argparse
import json
import os
import os.path as osp
import time

from mmengine.dist import is_main_process

import mmpe  # noqa: F401  (compatibility fixes and model registration)
from mmpe.engine.launch import add_common_args, build_runner, load_config, tta_config
from mmpe.analysis.report import pyplot, write_table
from mmpe.analysis.study import MULTIRES, TTA, clean_metrics, run_info, scale_test_cfg


def plot_metrics(rows, path: str, title: str) -> None:
    """One panel per metric, against scale (the 'tta' row is not a scale: not drawn)."""
    rows = [row for row in rows if row['scale'] != TTA]
    plt = pyplot()
    metrics = [k for k in rows[0] if k != 'scale']
    cols = min(3, len(metrics))
    nrows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3 * nrows), squeeze=False)
    scales = [row['scale'] for row in rows]
    for ax, metric in zip(axes.flat, metrics):
        ax.plot(scales, [row[metric] for row in rows], marker='o')
        ax.axvline(1.0, color='grey', linestyle=':', linewidth=1)
        ax.set_title(metric, fontsize='small')
        ax.set_xlabel('test scale')
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis('off')
    fig.suptitle(title, fontsize='small')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--scales', type=float, nargs='+', default=[0.5, 0.75, 1.0, 1.25, 1.5, 2.0],
                        help='factors applied to the test resize')
    parser.add_argument('--tta', action='store_true',
                        help="add the row 'tta': the config's test-time augmentation (multi-scale + flip)")
    parser.add_argument('--out', help='output directory (default: WORK_DIR/multires)')
    add_common_args(parser)
    args = parser.parse_args()
    if any(not s > 0 for s in args.scales):
        raise ValueError(f'--scales must be positive, got {args.scales}')
    cfg = load_config(args)
    augmented = tta_config(cfg, args.config) if args.tta else None  # a config without TTA fails before testing
    out = args.out or osp.join(cfg.work_dir, MULTIRES)
    stamp = time.strftime('%Y%m%d_%H%M%S')
    rows = []
    for scale in args.scales:
        scaled = scale_test_cfg(cfg, scale)
        scaled.load_from = args.checkpoint
        scaled.work_dir = osp.join(out, f'scale_{scale:g}')
        scaled.experiment_name = f'multires_{stamp}_scale_{scale:g}'  # one logger/visualizer per runner
        metrics = build_runner(scaled).test()
        rows.append(dict(scale=scale, **clean_metrics(metrics)))
    if augmented is not None:
        augmented.load_from = args.checkpoint
        augmented.work_dir = osp.join(out, TTA)
        augmented.experiment_name = f'multires_{stamp}_{TTA}'
        rows.append(dict(scale=TTA, **clean_metrics(build_runner(augmented).test())))
    if not is_main_process():
        return
    info = dict(run_info(cfg), config=osp.abspath(args.config), checkpoint=osp.abspath(args.checkpoint))
    os.makedirs(out, exist_ok=True)
    cfg.dump(osp.join(out, 'config.py'))
    with open(osp.join(out, 'run.json'), 'w') as f:
        json.dump(info, f, indent=1)
    title = f'{info["backbone"]} / {info["encoding"]} / seed {info["seed"]}: metrics vs test scale'
    print(write_table(rows, osp.join(out, 'multires'), title))
    plot_metrics(rows, osp.join(out, 'multires.png'), title)


if __name__ == '__main__':
    main()
