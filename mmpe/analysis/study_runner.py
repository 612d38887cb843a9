"""The study engine of tools/analysis_tools/compare_encodings.py: train every (config, encoding, seed),
evaluate each at several test scales, collect one table; optionally pretrain first and fine-tune from it.

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

Launchers (``mmpe.analysis.launchers``): each run's training and evaluation start the way users
launch training: ``none`` one process; ``pytorch`` torchrun with ``--gpus`` processes on this
node (as tools/dist_train.sh); ``slurm`` one srun job per step (as tools/slurm_train.sh, job name
CONFIG-ENCODING-seedK). Each run has its own torch.distributed port: ``MASTER_PORT`` (default
29500) plus the run's index. ``--max-jobs K`` keeps up to K runs in flight at once (a run trains,
then evaluates), e.g. K slurm jobs; progress lines name the run. A failed run is reported with the
tail of its steps.log and the others go on; the study then collects what finished and exits 1.
``--dry-run`` prints, in order, each run's state and the commands it would run (shell syntax),
and the collect command; it creates and runs nothing.

Progress (``mmpe.analysis.progress``): runs done / total (skipped: evaluated by an earlier invocation;
failed), those in flight, elapsed time and an ETA from the times of the runs this invocation trained or
evaluated (per config; laid out on the ``--max-jobs`` slots), drawn live by rich on a terminal, else a
plain line at most every 10 s (slurm logs, CI), besides the lines of each step.

Resuming: run the same command again. A run with ``multires/multires.csv`` (a pretraining run: with
``train_done``) is skipped; one with
``train_done`` is (re-)evaluated (a run that died mid-evaluation has no multires.csv); an
unfinished one resumes training (``--resume PATH``) from the checkpoint its ``last_checkpoint``
names: that path where it exists (a shared filesystem), else the file of that name in the run
directory (a run that died on another node whose work dir is mounted elsewhere); without
``last_checkpoint``, from its newest complete checkpoint; a truncated one or a dangling
``last_checkpoint`` fails the run with the message of ``mmpe.engine.checkpoints.resume_checkpoint``. While
a study runs a run, the run directory holds ``study.lock`` (host and pid, ``RunLock``): another
invocation skips that run; a lock whose process is gone from this host is taken over; a lock
from another host is respected unless ``--force``.

The steps run the tools (tools/train.py, tools/analysis_tools/eval_multires.py and collect_results.py,
tools/misc/make_synthetic_data.py) of the repository mmpe is installed from (editable, as
tools/setup_env.sh installs it).
"""
import os
import os.path as osp
import shlex
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from ..engine.checkpoints import ResumeError, resume_checkpoint
from .launchers import Launcher, RunLock, base_port
from .progress import Item, Progress
from .report import slug
from .study import MULTIRES, find_runs, parse_encoding
from .transfer import PRESETS, EvalVariant, Preset, StudyGroup

TOOLS = osp.join(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools')  # the repository's
TRAIN = ('train.py', )
EVAL = ('analysis_tools', 'eval_multires.py')
COLLECT = ('analysis_tools', 'collect_results.py')
MAKE_DATA = ('misc', 'make_synthetic_data.py')
QUICK_ITERS = 2
LOG_TAIL_LINES = 30
_print_lock = threading.Lock()


def tool_path(tool: Sequence[str]) -> str:
    """The repository's ``tools/<tool>`` (``TRAIN``, ``EVAL``, ...), relative to the working directory when
    below it (shorter command lines), else absolute."""
    path = osp.join(TOOLS, *tool)
    relative = osp.relpath(path)
    return path if relative.startswith(os.pardir) else relative


def say(*lines: str) -> None:
    """Print lines together (runs in flight print from several threads)."""
    with _print_lock:
        print('\n'.join(lines), flush=True)


def run_config(base: str, *, pos_embed, name, seed: int, quick: bool, pretrained: Optional[str] = None) -> str:
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


def variant_config(run: 'Run', variant: EvalVariant) -> str:
    """Text of ``run``'s config for ``variant``: inherits the run's config.py, merges ``variant.cfg`` and labels
    the encoding '<encoding> +<variant>'."""
    lines = ["_base_ = './config.py'", '']
    lines += [f'{key} = {value!r}' for key, value in variant.cfg.items()]
    lines.append(f"study = dict(encoding={f'{run.name} +{variant.name}'!r})")
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
    variants: Tuple[EvalVariant, ...] = ()  # more evaluations after the first
    scales: Tuple[float, ...] = ()  # test scales, if not the study's

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

    @staticmethod
    def eval_dir(variant: Optional[EvalVariant]) -> str:
        """The folder (in the run directory) of the evaluation at the study's scales (None) or of ``variant``."""
        return MULTIRES if variant is None else f'{MULTIRES}_{slug(variant.name)}'

    def eval_config(self, variant: Optional[EvalVariant]) -> str:
        """The config evaluated: the run's, or for ``variant`` its ``config_<name>.py`` (``variant_config``)."""
        return self.config_file if variant is None else osp.join(self.dir, f'config_{slug(variant.name)}.py')

    @property
    def pending_evaluations(self) -> List[Optional[EvalVariant]]:
        """The evaluations still without a multires.csv (None stands for the one at the study's scales)."""
        return [v for v in (None, *self.variants) if not self.has(osp.join(self.eval_dir(v), 'multires.csv'))]

    @property
    def evaluated(self) -> bool:
        return not self.pending_evaluations

    @property
    def done(self) -> bool:
        """Whether the run is evaluated (for a pretraining run, whether it is trained)."""
        return self.evaluated if self.evaluate else self.has('train_done')

    @property
    def finished(self) -> str:
        return 'evaluated already' if self.evaluate else 'pretrained already'


def study_runs(groups: Sequence[StudyGroup], seeds: Sequence[int], work_dir: str) -> List[Run]:
    """Every run, seed outermost: a study cut short has every encoding at its first seeds. Per seed and
    group, the pretraining runs (``WORK_DIR/pretrain/<config>/<encoding>/seed<k>``) come first."""
    runs, by_dir = [], {}

    def add(config, name, pos_embed, seed, root, **kwargs) -> Run:
        run_dir = osp.join(root, osp.splitext(osp.basename(config))[0], slug(name or 'config'), f'seed{seed}')
        if run_dir not in by_dir:  # a pretraining that several groups share is one run
            runs.append(Run(len(runs), config, name, pos_embed, seed, run_dir, **kwargs))
            by_dir[run_dir] = runs[-1]
        return by_dir[run_dir]

    encodings = [[parse_encoding(e) for e in group.encodings] or [(None, None)] for group in groups]
    for seed in seeds:
        for group, group_encodings in zip(groups, encodings):
            pretrained = {name: add(group.pretrain, name, pos_embed, seed, osp.join(work_dir, 'pretrain'),
                                    evaluate=False)
                          for name, pos_embed in group_encodings} if group.pretrain else {}
            for config in group.configs:
                for name, pos_embed in group_encodings:
                    add(config, name, pos_embed, seed, work_dir, pretrain=pretrained.get(name),
                        variants=tuple(v for v in group.variants if name in v.encodings), scales=group.scales)
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


@dataclass
class StudySettings:
    """A study as ``study_settings`` resolved it: the run groups, seeds, test scales, FLOPs size and runs in
    flight (the preset's where not given), where runs and tables go, and the options of the steps."""
    groups: List[StudyGroup]
    seeds: List[int]
    scales: List[float]
    flops_size: List[int]
    max_jobs: int
    work_dir: str
    out: str
    preset: Optional[Preset] = None
    data_root: str = 'data/transfer'
    tta: bool = False
    metrics: Optional[List[str]] = None
    quick: bool = False
    reproduce: Optional[str] = None
    force: bool = False


class Study:
    """The commands of each run and their execution (see the module docstring)."""

    def __init__(self, settings: StudySettings, launcher: Launcher, runs: Sequence[Run]):
        self.settings, self.launcher, self.scales = settings, launcher, settings.scales
        self.first_port = base_port()
        pretrainings = [run for run in runs if not run.evaluate]
        self.pretrain_locks = {run.dir: threading.Lock() for run in pretrainings}
        self.pretrain_results: Dict[str, Optional[str]] = {}  # pretraining run dir -> None or its failure
        self.progress = Progress('study', [Item(run.label, kind=run.config) for run in runs], unit='runs',
                                 jobs=settings.max_jobs, say=say)

    def train_command(self, run: Run, checkpoint: Optional[str]):
        """(env, argv) of training ``run``, resuming from ``checkpoint`` if given."""
        resume = ['--resume', checkpoint] if checkpoint else []
        return self.launcher.command(tool_path(TRAIN), [run.config_file, '--work-dir', run.dir, *resume], run.job_name,
                                     self.first_port + run.index)

    def eval_command(self, run: Run, checkpoint: str, variant: Optional[EvalVariant] = None):
        """(env, argv) of evaluating ``run``'s ``checkpoint`` at every scale, or as ``variant`` says."""
        args = [run.eval_config(variant), checkpoint, '--work-dir', run.dir]
        if variant is None:
            args += ['--scales', *(f'{s:g}' for s in run.scales or self.scales)]
            args += ['--tta'] if self.settings.tta else []
        else:
            args += ['--scales', *(f'{s:g}' for s in variant.scales), '--out', osp.join(run.dir, run.eval_dir(variant))]
        return self.launcher.command(tool_path(EVAL), args, run.job_name, self.first_port + run.index)

    # ------------------------------------------------------------------------- dry run

    def dry_run(self, run: Run) -> List[str]:
        """A comment line with the run's state, then the commands it would run now."""
        head = f'# {run.index + 1}. {run.label} -- {run.dir}: '
        if run.done:
            return [head + f'skip, {run.finished}']
        blocker = RunLock(run.dir).blocker(self.settings.force)
        if blocker:
            return [head + f'skip, {blocker}']
        try:
            checkpoint = resume_checkpoint(run.dir)
            start = self.pretrained_state(run.pretrain) if run.pretrain else ''
        except ResumeError as e:
            return [head + f'fails: {e}']
        if run.has('train_done'):
            lines = [head + f'trained; evaluate {checkpoint}']
        else:
            lines = [head + (f'resume training from {checkpoint}' if checkpoint else 'new run') + start,
                     self.show(self.train_command(run, checkpoint), tool_path(TRAIN))]
            if not run.evaluate:
                return lines
            checkpoint = ShellWord(f'"$(cat {shlex.quote(osp.join(run.dir, "last_checkpoint"))})"')
        return lines + [self.show(self.eval_command(run, checkpoint, v), tool_path(EVAL))
                        for v in run.pending_evaluations]

    @staticmethod
    def pretrained_state(pretrain: Run) -> str:
        """Where a dry run's fine-tuning run starts from: the checkpoint, or the pretraining to come."""
        if pretrain.has('train_done'):
            return f', from pretrained {resume_checkpoint(pretrain.dir)}'
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
            self.progress.finish(run.index, failed=True)
            return f'{run.label}: not run, its pretraining ({run.pretrain.label}) failed'
        failure = self.pretraining(run) if not run.evaluate else self.counted(run)
        if failure is None:
            return None
        say(failure)
        return failure.splitlines()[0].rstrip(':')

    def pretraining(self, run: Run) -> Optional[str]:
        """Train pretraining ``run`` once, whichever of its fine-tuning runs (or itself) comes first,
        the others waiting for it; None, or why it failed (reported by the pretraining run)."""
        with self.pretrain_locks[run.dir]:
            if run.dir not in self.pretrain_results:
                self.pretrain_results[run.dir] = self.counted(run)
            return self.pretrain_results[run.dir]

    def counted(self, run: Run) -> Optional[str]:
        """``train_and_evaluate(run)``, counted by the study's progress (measured unless skipped or failed)."""
        failure = self.train_and_evaluate(run)
        self.progress.finish(run.index, failed=failure is not None)
        return failure

    def train_and_evaluate(self, run: Run) -> Optional[str]:
        """Train (or resume) and evaluate ``run`` under its lock; None, or why it failed or was not run."""
        if run.done:
            say(f'{run.label}: {run.finished}, skipped')
            return None
        os.makedirs(run.dir, exist_ok=True)
        lock = RunLock(run.dir)
        blocker = lock.acquire(self.settings.force)
        if blocker:
            return f'{run.label}: not run, {blocker}'
        try:
            if run.done:  # finished by another invocation meanwhile
                say(f'{run.label}: {run.finished}, skipped')
                return None
            self.progress.start(run.index)
            pretrained = None
            if run.pretrain is not None:
                pretrained = resume_checkpoint(run.pretrain.dir)
                if pretrained is None:
                    return f'{run.label}: its pretraining {run.pretrain.dir} has no checkpoint (no last_checkpoint)'
            with open(run.config_file, 'w') as f:
                f.write(run_config(run.config, pos_embed=run.pos_embed, name=run.name, seed=run.seed,
                                   quick=self.settings.quick, pretrained=pretrained))
            checkpoint = resume_checkpoint(run.dir)
            if not run.has('train_done'):
                failure = self.step(run, 'train' + (f' (resume from {checkpoint})' if checkpoint else ''),
                                    self.train_command(run, checkpoint))
                if failure:
                    return failure
                open(osp.join(run.dir, 'train_done'), 'w').close()
                checkpoint = resume_checkpoint(run.dir)
            if checkpoint is None:
                return f'{run.label}: training finished without a checkpoint ({run.dir}/last_checkpoint missing)'
            if not run.evaluate:
                return None
            for variant in run.pending_evaluations:
                if variant is not None:
                    with open(run.eval_config(variant), 'w') as f:
                        f.write(variant_config(run, variant))
                scales = list(run.scales or self.scales if variant is None else variant.scales)
                what = f'evaluate {osp.basename(checkpoint)} at scales {scales}'
                failure = self.step(run, what if variant is None else f'{what} +{variant.name}',
                                    self.eval_command(run, checkpoint, variant))
                if failure:
                    return failure
            return None
        except ResumeError as e:
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
        command = [sys.executable, tool_path(MAKE_DATA), '--task', 'layout', '--out', out, '--height', str(data.size),
                   '--width', str(data.size), '--num-train', str(data.num_train), '--num-val', str(data.num_val),
                   '--seed', str(data.seed)]
        if not osp.isdir(osp.join(out, data.kind)) and command not in commands:
            commands.append(command)
    return commands


def study_settings(*, work_dir: str, out: str, configs: Sequence[str] = (), encodings: Optional[Sequence[str]] = None,
                   pretrain: Optional[str] = None, preset: Optional[str] = None, seeds: Optional[Sequence[int]] = None,
                   scales: Optional[Sequence[float]] = None, flops_size: Optional[Sequence[int]] = None,
                   max_jobs: Optional[int] = None, quick: bool = False, **options) -> StudySettings:
    """The settings of compare_encodings.py's options (``options``: the other fields of ``StudySettings``):
    CONFIGs (``configs``, with ``encodings`` and ``pretrain``) or a ``preset`` name, whose environment is
    set here for the runs (variables already set are kept). Raises ValueError for CONFIGs with a preset,
    neither, a config file that does not exist, or ``max_jobs`` < 1."""
    chosen = PRESETS[preset] if preset else None
    if chosen:
        given = [option for option, value in (('CONFIG', configs), ('--encodings', encodings),
                                              ('--pretrain', pretrain)) if value]
        if given:
            raise ValueError(f'--preset {preset} defines the configs, encodings and pretraining; '
                             f'do not give {", ".join(given)}')
        groups = list(chosen.groups)
        os.environ.update({k: v for k, v in chosen.env.items() if k not in os.environ})
    else:
        if not configs:
            raise ValueError('give CONFIG [CONFIG ...] or --preset (one of: ' + ', '.join(PRESETS) + ')')
        groups = [StudyGroup(pretrain, configs, encodings or ())]
    for config in [c for g in groups for c in g.configs] + [g.pretrain for g in groups if g.pretrain]:
        if not osp.isfile(config):
            raise ValueError(f'config {config!r} does not exist')
    seeds = seeds or (list(chosen.seeds) if chosen else [0, 1])
    max_jobs = max_jobs if max_jobs is not None else (chosen.max_jobs if chosen else 1)
    flops_size = flops_size or (list(chosen.flops_size) if chosen else [512, 512])
    if max_jobs < 1:
        raise ValueError(f'--max-jobs must be a positive integer, got {max_jobs}')
    scales = scales or ([0.5, 1.0, 2.0] if quick else list(chosen.scales) if chosen
                        else [0.5, 0.75, 1.0, 1.25, 1.5, 2.0])
    return StudySettings(groups=groups, seeds=seeds, scales=scales, flops_size=flops_size, max_jobs=max_jobs,
                         work_dir=work_dir, out=out, preset=chosen, quick=quick, **options)


def collect_command(settings: StudySettings) -> List[str]:
    """collect_results.py's command line tabulating every run of the study (and filling ``reproduce``)."""
    command = [sys.executable, tool_path(COLLECT), settings.work_dir, '--out', settings.out,
               '--flops-size', *map(str, settings.flops_size)]
    command += ['--metrics', *settings.metrics] if settings.metrics else []
    return command + (['--reproduce', settings.reproduce] if settings.reproduce else [])


def print_dry_run(study: Study, runs: Sequence[Run], make_data: Sequence[List[str]]) -> None:
    """Print the plan: a summary line, the data to write, each run's state and commands, the collection."""
    settings, preset, groups = study.settings, study.settings.preset, study.settings.groups
    pretrainings = sum(not run.evaluate for run in runs)
    kinds = f' ({pretrainings} pretrainings, {len(runs) - pretrainings} fine-tunings)' if pretrainings else ''
    factors = ' + '.join(f'{len(g.configs)} configs' + (f' x {len(g.encodings)} encodings' if g.encodings else '')
                         for g in groups)
    print(f'# {len(runs)} runs{kinds}: ({factors}) x {len(settings.seeds)} seeds, launcher {study.launcher.kind}, '
          f'up to {settings.max_jobs} at once; each run writes its config.py, trains, then evaluates'
          + (f'; environment {" ".join(f"{k}={v}" for k, v in preset.env.items())}' if preset else ''))
    for command in make_data:
        print(f'# write missing data\n{shell_line({}, command)}')
    for run in runs:
        print('\n'.join(study.dry_run(run)))
    print(f'# collect results into {settings.out}\n{shell_line({}, collect_command(settings))}')


def run_study(settings: StudySettings, launcher: Launcher, dry_run: bool = False) -> List[str]:
    """Write the preset's missing data, run every run (up to ``max_jobs`` at once), collect the results;
    returns the problems (empty when all went well). ``dry_run``: print what would run, run nothing."""
    runs = study_runs(settings.groups, settings.seeds, settings.work_dir)
    study = Study(settings, launcher, runs)
    make_data = data_commands(settings.preset, settings.data_root) if settings.preset else []
    if dry_run:
        print_dry_run(study, runs, make_data)
        return []

    for command in make_data:
        say(f'[{time.strftime("%H:%M:%S")}] write missing data: {shell_line({}, command)}')
        subprocess.check_call(command, stdout=subprocess.DEVNULL)
    study_start = time.time()
    with study.progress, ThreadPoolExecutor(max_workers=settings.max_jobs) as pool:
        try:
            failures = [f for f in pool.map(study.execute, runs) if f]
        except KeyboardInterrupt:  # start no more runs; those in flight end with their processes
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    if osp.isdir(settings.work_dir) and find_runs([settings.work_dir]):
        say(f'[{time.strftime("%H:%M:%S")}] collect results into {settings.out}')
        if subprocess.call(collect_command(settings)):
            failures.append(f'{shell_line({}, collect_command(settings))} failed')
    else:
        failures.append(f'no evaluated run under {settings.work_dir}: nothing to collect')
    say(f'study done in {time.time() - study_start:.0f} s (this invocation): {len(runs)} runs, '
        f'{len(failures)} problems')
    if failures:
        say('problems:', *(f'  - {f.splitlines()[0]}' for f in failures))
    return failures
