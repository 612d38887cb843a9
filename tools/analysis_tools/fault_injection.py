"""Fault injection: kill -9 trainings (at random moments and inside their checkpoint saves) or a whole
encoding study, resume them, and check that nothing is lost.

    python tools/analysis_tools/fault_injection.py --kills 30 --work-dir work_dirs/fault_injection
        [--config configs/demo/upernet_swin-rope-mixed_synthetic.py] [--processes 1 2] [--kills-per-run 5]
        [--iters 12 --interval 2 --val-interval 4] [--random-share 0.5] [--dist-timeout 60] [--seed 0]
    python tools/analysis_tools/fault_injection.py --study --kills 10 --work-dir work_dirs/fault_injection_study
        [--study-config configs/study/fcn1x1_vit-tiny_layout.py] [--encodings ape rope_mixed]
        [--iters 8 --interval 2] [--kills-per-run 5] [--seed 0]

Trainings: trains --config with tools/train.py for --iters iterations (a checkpoint every --interval,
keeping one; validation every --val-interval) once without interruption per number of processes,
then runs the same schedule again and again (alternating --processes), each time killing up to
--kills-per-run launches with SIGKILL and relaunching with --resume until the schedule ends, until
--kills kills were made. A kill is, with probability --random-share, after a random delay, else at a
random one of mmpe.analysis.faults.POINTS (inside the checkpoint write, between the checkpoint and
last_checkpoint, inside the last_checkpoint write, after it, in training, in validation) of an
iteration still ahead. With 2 processes one rank is killed (started as torchrun or srun start them,
without an agent): the other must exit by itself within a bounded time. Each relaunch must resume
from the checkpoint ``--resume`` names and every run must end with the weights of the uninterrupted
run (torch.equal). Tables: summary, places (where the kills landed), kills (every kill).

--study: runs a small encoding study (compare_encodings.py: --study-config trained --iters
iterations with a checkpoint every --interval, every --encodings, seed 0, scales 0.5 and 1) once
without interruption, then again and again, killing its session (the study, its training or
evaluation, its collection) after a random delay up to --kills-per-run times per study and running
the same command again until it finishes. No training may start over from scratch, no finished
evaluation may run again, every run must end evaluated with no lock left, and the tables must equal
the uninterrupted study's. Table: study_summary.

Tables are printed and written (markdown and CSV) to --out, default --work-dir. Exit code 1 when any
check failed. Synthetic data is written under --work-dir unless MMPE_SYNTHETIC_SEG /
MMPE_SYNTHETIC_DET (trainings) or MMPE_LAYOUT_SEG (--study) are set.
"""
import argparse
import os
import os.path as osp
import random
import sys

from mmpe.analysis import faults
from mmpe.analysis.report import write_table
from mmpe.datasets import generate_detection_set, generate_segmentation_set


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--work-dir', required=True)
    parser.add_argument('--out', help='folder of the tables (default: --work-dir)')
    parser.add_argument('--kills', type=int, default=30, help='kills in all')
    parser.add_argument('--kills-per-run', type=int, default=5, help='kills per training run or study')
    parser.add_argument('--iters', type=int, help='iterations of a training (default 12; --study: 8)')
    parser.add_argument('--interval', type=int, default=2, help='checkpoint every N iterations')
    parser.add_argument('--seed', type=int, default=0)
    training = parser.add_argument_group('trainings')
    training.add_argument('--config', default='configs/demo/upernet_swin-rope-mixed_synthetic.py')
    training.add_argument('--processes', type=int, nargs='+', default=[1, 2], choices=[1, 2])
    training.add_argument('--val-interval', type=int, default=4)
    training.add_argument('--random-share', type=float, default=0.5, help='share of kills at a random time')
    training.add_argument('--dist-timeout', type=int, default=60, help='seconds (env_cfg.dist_cfg.timeout)')
    study = parser.add_argument_group('--study')
    study.add_argument('--study', action='store_true', help='kill an encoding study instead of trainings')
    study.add_argument('--study-config', default='configs/study/fcn1x1_vit-tiny_layout.py')
    study.add_argument('--encodings', nargs='+', default=['ape', 'rope_mixed'])
    return parser.parse_args()


def synthetic_data(work_dir: str, study: bool) -> dict:
    """Environment variables naming small synthetic data sets, written under ``work_dir`` if missing."""
    sets = [('MMPE_LAYOUT_SEG', 'layout', generate_segmentation_set, dict(height=128, width=160, task='layout'))] \
        if study else [('MMPE_SYNTHETIC_SEG', 'seg', generate_segmentation_set, {}),
                       ('MMPE_SYNTHETIC_DET', 'det', generate_detection_set, {})]
    env = {}
    for name, folder, generate, kwargs in sets:
        if name not in os.environ:
            root = osp.join(osp.abspath(work_dir), 'data', folder)
            if not osp.isdir(root):
                generate(root, num_train=4 if study else 8, num_val=2 if study else 4, seed=1, **kwargs)
            env[name] = root + '/'
    return env


def trainings(args, env: dict, rng: random.Random) -> list:
    schedule = faults.Schedule(config=args.config, iters=args.iters or 12, interval=args.interval,
                               val_interval=args.val_interval, dist_timeout=args.dist_timeout)
    references = {}
    for processes in args.processes:
        job = faults.Job(schedule, osp.join(args.work_dir, f'{processes}p', 'reference'), processes, env)
        timing = faults.reference_run(job)
        references[processes] = job.final_state(), timing
        print(f'{processes} process(es): uninterrupted run {timing.startup:.0f} s to the first iteration, '
              f'{timing.per_iter:.1f} s per iteration', flush=True)
    results = []
    while sum(len(r.kills) for r in results) < args.kills:
        run = len(results)
        processes = args.processes[run % len(args.processes)]
        reference, timing = references[processes]
        job = faults.Job(schedule, osp.join(args.work_dir, f'{processes}p', f'run{run}'), processes, env)
        kills = min(args.kills_per_run, args.kills - sum(len(r.kills) for r in results))
        result = faults.run_with_kills(job, run, reference, faults.random_planner(
            rng, schedule, processes, timing, kills, args.random_share))
        results.append(result)
        print(f'run {run} ({processes} process(es)): {len(result.kills)} kills, {result.launches} launches, '
              f'equal: {result.equal}' + ''.join(f'\n  failure: {f}' for f in result.failures), flush=True)
    out = args.out or args.work_dir
    print(write_table(faults.summary_rows(results), osp.join(out, 'summary'), 'Kills, resumes and final weights'))
    print(write_table(faults.place_rows(results), osp.join(out, 'places'), 'Where the kills landed'))
    print(write_table(faults.kill_rows(results), osp.join(out, 'kills'), 'Every kill'))
    return results


def studies(args, env: dict, rng: random.Random) -> list:
    config = osp.join(osp.abspath(args.work_dir), osp.basename(args.study_config))
    os.makedirs(args.work_dir, exist_ok=True)
    with open(config, 'w') as f:
        f.write(faults.study_config(args.study_config, args.iters or 8, args.interval))
    argv = [config, '--encodings', *args.encodings, '--seeds', '0', '--scales', '0.5', '1', '--flops-size', '64', '80']
    reference = faults.StudyJob(argv, osp.join(args.work_dir, 'reference'), env)
    duration = faults.reference_study(reference)
    print(f'uninterrupted study: {duration:.0f} s', flush=True)
    results = []
    while sum(len(r.kills) for r in results) < args.kills:
        run = len(results)
        kills = min(args.kills_per_run, args.kills - sum(len(r.kills) for r in results))
        job = faults.StudyJob(argv, osp.join(args.work_dir, f'study{run}'), env)
        result = faults.study_with_kills(job, run, reference.tables(), duration, len(reference.run_dirs()), kills,
                                         rng)
        results.append(result)
        print(f'study {run}: {len(result.kills)} kills, {result.launches} launches, tables equal: {result.equal}'
              + ''.join(f'\n  failure: {f}' for f in result.failures), flush=True)
    out = args.out or args.work_dir
    print(write_table(faults.study_summary_rows(results), osp.join(out, 'study_summary'),
                      'Kills of the study, resumes, repeats and final tables'))
    return results


def main():
    args = parse_args()
    rng = random.Random(args.seed)
    env = synthetic_data(args.work_dir, args.study)
    results = studies(args, env, rng) if args.study else trainings(args, env, rng)
    sys.exit(0 if all(r.equal and not r.failures for r in results) else 1)


if __name__ == '__main__':
    main()
