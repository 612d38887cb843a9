"""The whole encoding study in one command: train every (config, encoding, seed), evaluate each at
several test scales, collect one table; optionally pretrain first and fine-tune from it.

    python tools/analysis_tools/compare_encodings.py CONFIG [CONFIG ...] [--encodings E ...] [--seeds 0 1]
        [--pretrain PRETRAIN_CONFIG]
        --work-dir work_dirs/study --out docs/results [--scales 0.5 0.75 1 1.25 1.5 2] [--tta]
        [--flops-size H W] [--metrics ...] [--quick] [--reproduce docs/reproduce.md]
        [--launcher none | --launcher pytorch --gpus N
         | --launcher slurm --partition P [--gpus N] [--gpus-per-node G] [--cpus-per-task C] [--srun-args="..."]]
        [--max-jobs K] [--dry-run] [--force]
    python tools/analysis_tools/compare_encodings.py --preset transfer --work-dir work_dirs/transfer
        --out docs/results/transfer [--data-root data/transfer] [--seeds ...] [--max-jobs K] [--dry-run]

The study: ``mmpe.analysis.study_runner``.
"""
import argparse
import shlex
import sys

from mmpe.analysis import study_runner
from mmpe.analysis.launchers import LAUNCHERS, Launcher
from mmpe.analysis.transfer import PRESETS


def parse_args():
    details = study_runner.__doc__.split('\n\n', 1)[1]  # after its summary line
    parser = argparse.ArgumentParser(description='\n'.join([__doc__, details]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('configs', nargs='*', help='base configs (or, without --encodings, the configs to compare)')
    parser.add_argument('--encodings', nargs='+', help='preset names or NAME=DICT pos_embed dicts')
    parser.add_argument('--pretrain', help='pretraining config: every run of CONFIGS fine-tunes the backbone of its '
                                           '(encoding, seed) pretraining run')
    parser.add_argument('--preset', choices=list(PRESETS), help='a whole study (mmpe.analysis.transfer): its configs, '
                                                               'encodings, pretraining, seeds, scales, data, max-jobs')
    parser.add_argument('--data-root', default='data/transfer',
                        help='--preset: where its synthetic data sets are written if missing (default data/transfer)')
    parser.add_argument('--seeds', type=int, nargs='+', help='default 0 1 (--preset: its seeds)')
    parser.add_argument('--work-dir', required=True, help='root of the run directories')
    parser.add_argument('--out', required=True, help='output directory of collect_results.py')
    parser.add_argument('--scales', type=float, nargs='+', help='test scales (default 0.5 0.75 1 1.25 1.5 2; '
                                                                '--quick: 0.5 1 2)')
    parser.add_argument('--tta', action='store_true', help='pass --tta to eval_multires.py (multi-scale + flip row)')
    parser.add_argument('--flops-size', type=int, nargs=2, metavar=('H', 'W'),
                        help='default 512 512 (--preset: its own)')
    parser.add_argument('--metrics', nargs='+', help='metric columns of the final table (default: all)')
    parser.add_argument('--quick', action='store_true',
                        help=f'{study_runner.QUICK_ITERS} iterations per run: a smoke test')
    parser.add_argument('--reproduce', metavar='FILE', help="also fill the 'mmpe' cells of FILE (docs/reproduce.md) "
                                                            'from every finished run (collect_results.py --reproduce)')
    launch = parser.add_argument_group('launching (as tools/dist_train.sh and tools/slurm_train.sh)')
    launch.add_argument('--launcher', choices=LAUNCHERS, default='none')
    launch.add_argument('--gpus', type=int, help='processes per run (pytorch: required; slurm: default 8)')
    launch.add_argument('--gpus-per-node', type=int, help='slurm: default min(8, --gpus)')
    launch.add_argument('--cpus-per-task', type=int, help='slurm: default 5')
    launch.add_argument('--partition', help='slurm partition (required with --launcher slurm)')
    launch.add_argument('--srun-args', help='slurm: more srun options as one string, given with "=", '
                                            'e.g. --srun-args="--time=2-0 --qos=high"')
    launch.add_argument('--max-jobs', type=int, help='runs in flight at once (default 1; --preset: its own)')
    launch.add_argument('--dry-run', action='store_true', help='print the commands, run nothing')
    launch.add_argument('--force', action='store_true', help="take over other hosts' locks of runs")
    return parser.parse_args()


def main():
    args = parse_args()
    settings = study_runner.study_settings(
        configs=args.configs, encodings=args.encodings, pretrain=args.pretrain, preset=args.preset,
        data_root=args.data_root, seeds=args.seeds, work_dir=args.work_dir, out=args.out, scales=args.scales,
        tta=args.tta, flops_size=args.flops_size, metrics=args.metrics, quick=args.quick, reproduce=args.reproduce,
        max_jobs=args.max_jobs, force=args.force)
    launcher = Launcher(args.launcher, gpus=args.gpus, gpus_per_node=args.gpus_per_node,
                        cpus_per_task=args.cpus_per_task, partition=args.partition,
                        srun_args=shlex.split(args.srun_args) if args.srun_args else ())
    if study_runner.run_study(settings, launcher, dry_run=args.dry_run):
        sys.exit(1)


if __name__ == '__main__':
    main()
