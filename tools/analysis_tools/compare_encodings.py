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

Each CONFIG is a base config; with ``--encodings`` every encoding replaces its backbone's
``pos_embed`` (an encoding is a preset name, see ``mmpe.pos_embed.ENCODING_PRESETS``, or
``NAME=DICT`` for any pos_embed dict, e.g. ``"rope_mixed interpolate={'type': 'rope_mixed',
'coords': 'interpolate'}"``); without it every CONFIG runs as it is (a list of configs). A run
lives in ``WORK_DIR/<config name>/<encoding>/seed<k>/``: a generated ``config.py`` (inherits
CONFIG, sets the encoding, ``randomness.seed`` and the ``study`` labels: rerun it with
tools/train.py by hand if you like), mmengine's outputs, ``multires/`` (eval_multires.py) and
``steps.log`` (output of the steps). Runs train with the config's own schedule, without
validation (eval_multires evaluates). Finally collect_results.py tabulates every run under
WORK_DIR into ``--out``. ``--quick`` is a minute-scale smoke test: 2 iterations, scales 0.5 1 2.

Pretraining: with ``--pretrain PRETRAIN_CONFIG`` each (encoding, seed) first trains
PRETRAIN_CONFIG once, in ``WORK_DIR/pretrain/<pretrain config name>/<encoding>/seed<k>/`` (same
config.py, resume, lock and skip logic; trained, not evaluated), and every run of that encoding
and seed fine-tunes from its checkpoint: its config.py sets ``model.backbone.init_cfg =
dict(type='Pretrained', checkpoint=...)``, as ImageNet weights are given. Per seed, the
pretraining runs come first; a run whose pretraining is in flight waits for it, one whose
pretraining failed is not run. ``--preset NAME`` runs a whole study defined in
``mmpe.analysis.transfer`` (its groups of configs, encodings and pretraining configs, seeds, test
scales, FLOPs size, ``--max-jobs`` and environment, e.g. ``OMP_NUM_THREADS=1``; ``--seeds``,
``--scales``, ``--max-jobs``, ``--flops-size`` override), first writing its synthetic data sets
under ``--data-root`` where missing (a set whose environment variable is set is used as it is).

Launchers (``mmpe.analysis.launch``): each run's training and evaluation start the way users
launch training: ``none`` one process; ``pytorch`` torchrun with ``--gpus`` processes on this
node (as tools/dist_train.sh); ``slurm`` one srun job per step (as tools/slurm_train.sh, job name
CONFIG-ENCODING-seedK). Each run has its own torch.distributed port: ``MASTER_PORT`` (default
29500) plus the run's index. ``--max-jobs K`` keeps up to K runs in flight at once (a run trains,
then evaluates), e.g. K slurm jobs; progress lines name the run. A failed run is reported with the
tail of its steps.log and the others go on; the study then collects what finished and exits 1.
``--dry-run`` prints, in order, each run's state and the commands it would run (shell syntax),
and the collect command; it creates and runs nothing.

Resuming: run the same command again. A run with ``multires/multires.csv`` (a pretraining run: with
``train_done``) is skipped; one with
``train_done`` is (re-)evaluated (a run that died mid-evaluation has no multires.csv); an
unfinished one resumes training from the checkpoint its ``last_checkpoint`` names
(``--resume PATH``): that path where it exists (a shared filesystem), else the file of that name
in the run directory (a run that died on another node whose work dir is mounted elsewhere). While
a study runs a run, the run directory holds ``study.lock`` (host and pid, ``RunLock``): another
invocation skips that run; a lock whose process is gone from this host is taken over; a lock
from another host is respected unless ``--force``.
"""
import argparse
import os
import os.path as osp
import shlex
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from mmpe.analysis.launch import LAUNCHERS, Launcher, RunLock, base_port, local_checkpoint
from mmpe.analysis.report import slug
from mmpe.analysis.study import MULTIRES, find_runs, parse_encoding
from mmpe.analysis.transfer import PRESETS, Preset, StudyGroup

ANALYSIS_TOOLS = osp.dirname(osp.abspath(__file__))
TOOLS = osp.dirname(ANALYSIS_TOOLS)


def tool_path(path: str) -> str:
    """``path`` relative to the working directory when below it (shorter command lines), else absolute."""
    relative = osp.relpath(path)
    return path if relative.startswith(os.pardir) else relative


TRAIN = tool_path(osp.join(TOOLS, 'train.py'))
EVAL = tool_path(osp.join(ANALYSIS_TOOLS, 'eval_multires.py'))
COLLECT = tool_path(osp.join(ANALYSIS_TOOLS, 'collect_results.py'))
MAKE_DATA = tool_path(osp.join(TOOLS, 'misc', 'make_synthetic_data.py'))
QUICK_ITERS = 2
LOG_TAIL_LINES = 30
_print_lock = threading.Lock()


def say(*lines: str) -> None:
    """Print lines together (runs in flight print from several threads)."""
    with _print_lock:
        print('\n'.join(lines), flush=True)


def run_config(base: str, pos_embed, name, seed: int, quick: bool, pretrained: Optional[str] = None) -> str:
    """Text of a run's config: inherits ``base``, sets the encoding (unless None), the pretrained
    backbone checkpoint (if given, as ImageNet weights are given), seed and labels."""
    lines = [f'_base_ = {osp.abspath(base)!r}', '']
    backbone = []
    if pos_embed is not None:
        backbone.append(f'pos_embed=dict(_delete_=True, **{pos_embed!r})')
    if pretrained is not None:
        backbone.append(f"init_cfg=dict(_delete_=True, type='Pretrained', checkpoint={osp.abspath(pretrained)!r})")
    if backbone:
        lines.append(f'model = dict(backbone=dict({", ".join(backbone)}))')
    study = dict(seed=seed) if name is None else dict(encoding=name, seed=seed)
    lines += [f'randomness = dict(seed={seed})',
              f'study = dict({", ".join(f"{k}={v!r}" for k, v in study.items())})',
              '# evaluation is eval_multires.py\'s job: no validation during training',
              'val_dataloader = None', 'val_cfg = None', 'val_evaluator = None']
    if quick:
        lines += ['# --quick',
                  f'train_cfg = dict(_delete_=True, type="IterBasedTrainLoop", max_iters={QUICK_ITERS})',
                  'param_scheduler = []',
                  f'default_hooks = dict(checkpoint=dict(type="CheckpointHook", by_epoch=False, '
                  f'interval={QUICK_ITERS}), logger=dict(type="LoggerHook", interval=1))',
                  'log_processor = dict(by_epoch=False)']
    return '\n'.join(lines) + '\n'


@dataclass
class Run:
    """One (config, encoding, seed) of the study; ``index`` is its place in the study's order. A
    pretraining run (``evaluate`` False) only trains; a run with ``pretrain`` starts from its checkpoint."""
    index: int
    config: str
    name: Optional[str]  # encoding name; None: the config as it is
    pos_embed: Optional[dict]
    seed: int
    dir: str
    pretrain: Optional['Run'] = None
    evaluate: bool = True

    @property
    def label(self) -> str:
        return f'{osp.basename(self.config)} / {self.name or "as configured"} / seed {self.seed}'

    @property
    def job_name(self) -> str:
        encoding = f'-{slug(self.name)}' if self.name else ''
        return f'{slug(osp.splitext(osp.basename(self.config))[0])}{encoding}-seed{self.seed}'

    @property
    def config_file(self) -> str:
        return osp.join(self.dir, 'config.py')

    def has(self, name: str) -> bool:
        return osp.isfile(osp.join(self.dir, name))

    @property
    def evaluated(self) -> bool:
        return self.has(osp.join(MULTIRES, 'multires.csv'))

    @property
    def done(self) -> bool:
        """Evaluated; a pretraining run: trained."""
        return self.evaluated if self.evaluate else self.has('train_done')

    @property
    def finished(self) -> str:
        return 'evaluated already' if self.evaluate else 'pretrained already'


def study_runs(groups: Sequence[StudyGroup], seeds: Sequence[int], work_dir: str) -> List[Run]:
    """Every run, seed outermost: a study cut short has every encoding at its first seeds. Per seed and
    group, the pretraining runs (``WORK_DIR/pretrain/<config>/<encoding>/seed<k>``) come first."""
    runs = []

    def add(config, name, pos_embed, seed, root, **kwargs) -> Run:
        run_dir = osp.join(root, osp.splitext(osp.basename(config))[0], slug(name or 'config'), f'seed{seed}')
        runs.append(Run(len(runs), config, name, pos_embed, seed, run_dir, **kwargs))
        return runs[-1]

    encodings = [[parse_encoding(e) for e in group.encodings] or [(None, None)] for group in groups]
    for seed in seeds:
        for group, group_encodings in zip(groups, encodings):
            pretrained = {name: add(group.pretrain, name, pos_embed, seed, osp.join(work_dir, 'pretrain'),
                                    evaluate=False)
                          for name, pos_embed in group_encodings} if group.pretrain else {}
            for config in group.configs:
                for name, pos_embed in group_encodings:
                    add(config, name, pos_embed, seed, work_dir, pretrain=pretrained.get(name))
    return runs


class ShellWord(str):
    """A command-line word printed as shell syntax, unquoted (a dry run's ``"$(cat FILE)"``)."""


def shell_line(env: Dict[str, str], argv: Sequence[str], wrap_before: Optional[str] = None) -> str:
    """``VAR=value ... argv`` to paste into a shell; continued on a new line before the word
    ``wrap_before`` (the launched interpreter or tool), if it is not the first word."""
    words = [f'{k}={shlex.quote(v)}' for k, v in env.items()]
    for i, word in enumerate(argv):
        if i and word == wrap_before:
            words.append('\\\n   ')
            wrap_before = None
        words.append(word if isinstance(word, ShellWord) else shlex.quote(word))
    return ' '.join(words)


class Study:
    """The commands of each run and their execution (see the module docstring)."""

    def __init__(self, args, launcher: Launcher, scales: Sequence[float], runs: Sequence[Run]):
        self.args, self.launcher, self.scales = args, launcher, scales
        self.first_port = base_port()
        pretrainings = [run for run in runs if not run.evaluate]
        self.pretrain_locks = {run.dir: threading.Lock() for run in pretrainings}
        self.pretrain_results: Dict[str, Optional[str]] = {}  # pretraining run dir -> None or its failure

    def train_command(self, run: Run, checkpoint: Optional[str]):
        """(env, argv) of training ``run``, resuming from ``checkpoint`` if given."""
        resume = ['--resume', checkpoint] if checkpoint else []
        return self.launcher.command(TRAIN, [run.config_file, '--work-dir', run.dir, *resume], run.job_name,
                                     self.first_port + run.index)

    def eval_command(self, run: Run, checkpoint: str):
        """(env, argv) of evaluating ``run``'s ``checkpoint`` at every scale."""
        args = [run.config_file, checkpoint, '--work-dir', run.dir, '--scales', *(f'{s:g}' for s in self.scales)]
        if self.args.tta:
            args.append('--tta')
        return self.launcher.command(EVAL, args, run.job_name, self.first_port + run.index)

    def collect_command(self) -> List[str]:
        command = [sys.executable, COLLECT, self.args.work_dir, '--out', self.args.out,
                   '--flops-size', *map(str, self.args.flops_size)]
        command += ['--metrics', *self.args.metrics] if self.args.metrics else []
        return command + (['--reproduce', self.args.reproduce] if self.args.reproduce else [])

    # ------------------------------------------------------------------------- dry run

    def dry_run(self, run: Run) -> List[str]:
        """A comment line with the run's state, then the commands it would run now."""
        head = f'# {run.index + 1}. {run.label} -- {run.dir}: '
        if run.done:
            return [head + f'skip, {run.finished}']
        blocker = RunLock(run.dir).blocker(self.args.force)
        if blocker:
            return [head + f'skip, {blocker}']
        try:
            checkpoint = local_checkpoint(run.dir)
            start = self.pretrained_state(run.pretrain) if run.pretrain else ''
        except FileNotFoundError as e:
            return [head + f'fails: {e}']
        if run.has('train_done'):
            lines = [head + f'trained; evaluate {checkpoint}']
        else:
            lines = [head + (f'resume training from {checkpoint}' if checkpoint else 'new run') + start,
                     self.show(self.train_command(run, checkpoint), TRAIN)]
            if not run.evaluate:
                return lines
            checkpoint = ShellWord(f'"$(cat {shlex.quote(osp.join(run.dir, "last_checkpoint"))})"')
        return lines + [self.show(self.eval_command(run, checkpoint), EVAL)]

    @staticmethod
    def pretrained_state(pretrain: Run) -> str:
        """Where a dry run's fine-tuning run starts from: the checkpoint, or the pretraining to come."""
        if pretrain.has('train_done'):
            return f', from pretrained {local_checkpoint(pretrain.dir)}'
        return f', from the checkpoint of pretraining run {pretrain.index + 1}'

    def show(self, command, tool: str) -> str:
        """A command as a dry run prints it: the launcher's part on a line of its own."""
        return shell_line(*command, wrap_before=self.launcher.python if self.launcher.kind == 'slurm' else tool)

    # ------------------------------------------------------------------------- execution

    def step(self, run: Run, what: str, command) -> Optional[str]:
        """Run one command, its output appended to the run's steps.log; None, or the failure report."""
        env, argv = command
        log = osp.join(run.dir, 'steps.log')
        start = time.time()
        say(f'[{time.strftime("%H:%M:%S")}] {run.label}: {what}')
        with open(log, 'a') as f:
            f.write(f'\n$ {shell_line(env, argv)}\n')
            f.flush()
            code = subprocess.call(argv, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, **env})
        if code:
            with open(log, errors='replace') as f:
                tail = f.read().splitlines()[-LOG_TAIL_LINES:]
            return '\n'.join([f'{run.label}: {what} failed (exit code {code}); last lines of {log}:',
                              *(f'    {line}' for line in tail)])
        say(f'[{time.strftime("%H:%M:%S")}] {run.label}: {what.split(" ")[0]} done in {time.time() - start:.0f} s')
        return None

    def execute(self, run: Run) -> Optional[str]:
        """Train (or resume) and evaluate ``run``, after its pretraining; None, or (printed in full at
        once) why it failed or was not run, whose first line is returned for the final summary."""
        if run.pretrain is not None and self.pretraining(run.pretrain):
            return f'{run.label}: not run, its pretraining ({run.pretrain.label}) failed'
        failure = self.pretraining(run) if not run.evaluate else self.train_and_evaluate(run)
        if failure is None:
            return None
        say(failure)
        return failure.splitlines()[0].rstrip(':')

    def pretraining(self, run: Run) -> Optional[str]:
        """Train pretraining ``run`` once, whichever of its fine-tuning runs (or itself) comes first,
        the others waiting for it; None, or why it failed (reported by the pretraining run)."""
        with self.pretrain_locks[run.dir]:
            if run.dir not in self.pretrain_results:
                self.pretrain_results[run.dir] = self.train_and_evaluate(run)
            return self.pretrain_results[run.dir]

    def train_and_evaluate(self, run: Run) -> Optional[str]:
        """Train (or resume) and evaluate ``run`` under its lock; None, or why it failed or was not run."""
        if run.done:
            say(f'{run.label}: {run.finished}, skipped')
            return None
        os.makedirs(run.dir, exist_ok=True)
        lock = RunLock(run.dir)
        blocker = lock.acquire(self.args.force)
        if blocker:
            return f'{run.label}: not run, {blocker}'
        try:
            if run.done:  # finished by another invocation meanwhile
                say(f'{run.label}: {run.finished}, skipped')
                return None
            pretrained = None
            if run.pretrain is not None:
                pretrained = local_checkpoint(run.pretrain.dir)
                if pretrained is None:
                    return f'{run.label}: its pretraining {run.pretrain.dir} has no checkpoint (no last_checkpoint)'
            with open(run.config_file, 'w') as f:
                f.write(run_config(run.config, run.pos_embed, run.name, run.seed, self.args.quick, pretrained))
            checkpoint = local_checkpoint(run.dir)
            if not run.has('train_done'):
                failure = self.step(run, 'train' + (f' (resume from {checkpoint})' if checkpoint else ''),
                                    self.train_command(run, checkpoint))
                if failure:
                    return failure
                open(osp.join(run.dir, 'train_done'), 'w').close()
                checkpoint = local_checkpoint(run.dir)
            if checkpoint is None:
                return f'{run.label}: training finished without a checkpoint ({run.dir}/last_checkpoint missing)'
            if not run.evaluate:
                return None
            return self.step(run, f'evaluate {osp.basename(checkpoint)} at scales {list(self.scales)}',
                             self.eval_command(run, checkpoint))
        except FileNotFoundError as e:
            return f'{run.label}: {e}'
        finally:
            lock.release()


def data_commands(preset: Preset, data_root: str) -> List[List[str]]:
    """make_synthetic_data.py commands writing the preset's data sets missing under ``data_root``
    (a set whose environment variable is set is the user's); sets the variables for the runs."""
    commands = []
    for data in preset.data:
        out = osp.join(data_root, data.name)
        if data.env in os.environ:
            continue
        os.environ[data.env] = osp.join(out, data.kind) + '/'
        command = [sys.executable, MAKE_DATA, '--task', 'layout', '--out', out, '--height', str(data.size), '--width',
                   str(data.size), '--num-train', str(data.num_train), '--num-val', str(data.num_val), '--seed',
                   str(data.seed)]
        if not osp.isdir(osp.join(out, data.kind)) and command not in commands:
            commands.append(command)
    return commands


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    parser.add_argument('--quick', action='store_true', help=f'{QUICK_ITERS} iterations per run: a smoke test')
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
    preset = PRESETS[args.preset] if args.preset else None
    if preset:
        given = [option for option, value in (('CONFIG', args.configs), ('--encodings', args.encodings),
                                              ('--pretrain', args.pretrain)) if value]
        if given:
            raise ValueError(f'--preset {args.preset} defines the configs, encodings and pretraining; '
                             f'do not give {", ".join(given)}')
        groups = list(preset.groups)
        os.environ.update({k: v for k, v in preset.env.items() if k not in os.environ})
    else:
        if not args.configs:
            raise ValueError('give CONFIG [CONFIG ...] or --preset (one of: ' + ', '.join(PRESETS) + ')')
        groups = [StudyGroup(args.pretrain, args.configs, args.encodings or ())]
    for config in [c for g in groups for c in g.configs] + [g.pretrain for g in groups if g.pretrain]:
        if not osp.isfile(config):
            raise ValueError(f'config {config!r} does not exist')
    args.seeds = args.seeds or (list(preset.seeds) if preset else [0, 1])
    args.max_jobs = args.max_jobs if args.max_jobs is not None else (preset.max_jobs if preset else 1)
    args.flops_size = args.flops_size or (list(preset.flops_size) if preset else [512, 512])
    if args.max_jobs < 1:
        raise ValueError(f'--max-jobs must be a positive integer, got {args.max_jobs}')
    launcher = Launcher(args.launcher, gpus=args.gpus, gpus_per_node=args.gpus_per_node,
                        cpus_per_task=args.cpus_per_task, partition=args.partition,
                        srun_args=shlex.split(args.srun_args) if args.srun_args else ())
    scales = args.scales or ([0.5, 1.0, 2.0] if args.quick else list(preset.scales) if preset
                             else [0.5, 0.75, 1.0, 1.25, 1.5, 2.0])
    runs = study_runs(groups, args.seeds, args.work_dir)
    study = Study(args, launcher, scales, runs)
    make_data = data_commands(preset, args.data_root) if preset else []
    if args.dry_run:
        pretrainings = sum(not run.evaluate for run in runs)
        kinds = f' ({pretrainings} pretrainings, {len(runs) - pretrainings} fine-tunings)' if pretrainings else ''
        factors = ' + '.join(f'{len(g.configs)} configs' + (f' x {len(g.encodings)} encodings' if g.encodings else '')
                             for g in groups)
        print(f'# {len(runs)} runs{kinds}: ({factors}) x {len(args.seeds)} seeds, launcher {args.launcher}, '
              f'up to {args.max_jobs} at once; each run writes its config.py, trains, then evaluates'
              + (f'; environment {" ".join(f"{k}={v}" for k, v in preset.env.items())}' if preset else ''))
        for command in make_data:
            print(f'# write missing data\n{shell_line({}, command)}')
        for run in runs:
            print('\n'.join(study.dry_run(run)))
        print(f'# collect results into {args.out}\n{shell_line({}, study.collect_command())}')
        return

    for command in make_data:
        say(f'[{time.strftime("%H:%M:%S")}] write missing data: {shell_line({}, command)}')
        subprocess.check_call(command, stdout=subprocess.DEVNULL)
    study_start = time.time()
    with ThreadPoolExecutor(max_workers=args.max_jobs) as pool:
        try:
            failures = [f for f in pool.map(study.execute, runs) if f]
        except KeyboardInterrupt:  # start no more runs; those in flight end with their processes
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    if osp.isdir(args.work_dir) and find_runs([args.work_dir]):
        say(f'[{time.strftime("%H:%M:%S")}] collect results into {args.out}')
        if subprocess.call(study.collect_command()):
            failures.append(f'{shell_line({}, study.collect_command())} failed')
    else:
        failures.append(f'no evaluated run under {args.work_dir}: nothing to collect')
    say(f'study done in {time.time() - study_start:.0f} s (this invocation): {len(runs)} runs, '
        f'{len(failures)} problems')
    if failures:
        say('problems:', *(f'  - {f.splitlines()[0]}' for f in failures))
        sys.exit(1)


if __name__ == '__main__':
    main()
