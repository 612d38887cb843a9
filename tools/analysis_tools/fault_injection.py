"""Fault injection: kill -9 trainings at random moments and inside their checkpoint saves, resume
them, and check that nothing is lost.

    python tools/analysis_tools/fault_injection.py --kills 30 --work-dir work_dirs/fault_injection
        [--config configs/demo/upernet_swin-rope-mixed_synthetic.py] [--processes 1 2] [--kills-per-run 5]
        [--iters 12 --interval 2 --val-interval 4] [--random-share 0.5] [--dist-timeout 60] [--seed 0]

Trains CONFIG with tools/train.py for --iters iterations (a checkpoint every --interval, keeping one;
validation every --val-interval) once without interruption per number of processes, then runs the
same schedule again and again (alternating --processes), each time killing up to --kills-per-run
launches with SIGKILL and relaunching with --resume until the schedule ends, until --kills kills
were made. A kill is, with probability --random-share, after a random delay, else at a random one of
mmpe.analysis.faults.POINTS (inside the checkpoint write, between the checkpoint and
last_checkpoint, inside the last_checkpoint write, after it, in training, in validation) of an
iteration still ahead. With 2 processes one rank is killed (started as torchrun or srun start them,
without an agent): the other must exit by itself within a bounded time. Each relaunch must resume
from the checkpoint ``--resume`` names and every run must end with the weights of the uninterrupted
run (torch.equal). Prints and writes (markdown and CSV, to --out, default --work-dir): summary.*,
places.* (where the kills landed), kills.* (every kill). Exit code 1 when any check failed.
Synthetic data (8 training, 4 validation images) is written under --work-dir unless
MMPE_SYNTHETIC_SEG / MMPE_SYNTHETIC_DET are set.
"""
import argparse
import os
import os.path as osp
import random
import sys

from mmpe.analysis.faults import (Job, Schedule, kill_rows, place_rows, random_planner, reference_run, run_with_kills,
                                  summary_rows)
from mmpe.analysis.report import write_table
from mmpe.datasets import generate_detection_set, generate_segmentation_set


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', default='configs/demo/upernet_swin-rope-mixed_synthetic.py')
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--out', help='folder of the tables (default: --work-dir)')
    parser.add_argument('--kills', type=int, default=30, help='kills in all')
    parser.add_argument('--kills-per-run', type=int, default=5)
    parser.add_argument('--processes', type=int, nargs='+', default=[1, 2], choices=[1, 2])
    parser.add_argument('--iters', type=int, default=12)
    parser.add_argument('--interval', type=int, default=2, help='checkpoint every N iterations')
    parser.add_argument('--val-interval', type=int, default=4)
    parser.add_argument('--random-share', type=float, default=0.5, help='share of kills at a random time')
    parser.add_argument('--dist-timeout', type=int, default=60, help='seconds (env_cfg.dist_cfg.timeout)')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def main():
    args = parse_args()
    env = {}
    for name, folder, generate in (('MMPE_SYNTHETIC_SEG', 'seg', generate_segmentation_set),
                                   ('MMPE_SYNTHETIC_DET', 'det', generate_detection_set)):
        if name not in os.environ:
            root = osp.join(osp.abspath(args.work_dir), 'data', folder)
            if not osp.isdir(root):
                generate(root, num_train=8, num_val=4, seed=1)
            env[name] = root + '/'
    schedule = Schedule(config=args.config, iters=args.iters, interval=args.interval, val_interval=args.val_interval,
                        dist_timeout=args.dist_timeout)
    rng = random.Random(args.seed)
    references = {}
    for processes in args.processes:
        job = Job(schedule, osp.join(args.work_dir, f'{processes}p', 'reference'), processes, env)
        timing = reference_run(job)
        references[processes] = job.final_state(), timing
        print(f'{processes} process(es): uninterrupted run {timing.startup:.0f} s to the first iteration, '
              f'{timing.per_iter:.1f} s per iteration', flush=True)
    results = []
    while sum(len(r.kills) for r in results) < args.kills:
        run = len(results)
        processes = args.processes[run % len(args.processes)]
        reference, timing = references[processes]
        job = Job(schedule, osp.join(args.work_dir, f'{processes}p', f'run{run}'), processes, env)
        kills = min(args.kills_per_run, args.kills - sum(len(r.kills) for r in results))
        planner = random_planner(rng, schedule, processes, timing, kills, args.random_share)
        result = run_with_kills(job, run, reference, planner)
        results.append(result)
        print(f'run {run} ({processes} process(es)): {len(result.kills)} kills, {result.launches} launches, '
              f'equal: {result.equal}' + ''.join(f'\n  failure: {f}' for f in result.failures), flush=True)
    out = args.out or args.work_dir
    print(write_table(summary_rows(results), osp.join(out, 'summary'), 'Kills, resumes and final weights'))
    print(write_table(place_rows(results), osp.join(out, 'places'), 'Where the kills landed'))
    print(write_table(kill_rows(results), osp.join(out, 'kills'), 'Every kill'))
    sys.exit(0 if all(r.equal and not r.failures for r in results) else 1)


if __name__ == '__main__':
    main()
