"""Fault injection (tools/analysis_tools/fault_injection.py): train a config with tools/train.py,
kill -9 the training (one process, or one rank of two gloo processes) at random moments or at chosen
points of a checkpoint save, relaunch it with ``--resume`` until its schedule ends, and compare its
final weights with those of an uninterrupted run.

Inside each training process ``FaultHook`` (the job's config adds it) records what the process is
doing, one line per event in an unbuffered trace file (so a kill loses none): where a random kill
landed is the last event before it. It can also pause at a chosen point, so that the kill lands
there deterministically (``POINTS``); a pause inside a write leaves on disk what a kill at that
moment leaves (a prefix of the data in the write's partial file). Checkpoint writes are traced by
wrapping ``mmpe.engine.checkpoints.write_atomic``, through which ``AtomicCheckpointHook`` writes.

Processes are started by this module, as torchrun or srun start them (``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``/``MASTER_PORT``, ``--launcher pytorch``) but without an agent that would stop the
other ranks: a rank is killed and the survivor must exit by itself within a bounded time. It does
when gloo sees the dead peer's connection closed ("Connection closed by peer"); a rank killed before
the rendezvous leaves the others waiting for it until the process group's timeout (``Schedule.
dist_timeout``, mmengine's ``env_cfg.dist_cfg.timeout``; torch's default is 30 min).

A study (``StudyJob``: compare_encodings.py) is killed whole, its session with the training or
evaluation in flight, and run again with the same command; ``check_steps`` reads the commands each
launch appended to the runs' steps.log (resumed from the newest complete checkpoint? an evaluated run
evaluated again?) and ``study_with_kills`` compares the final tables with an uninterrupted study's.
"""
import csv
import glob
import io
import json
import os
import os.path as osp
import random
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ..engine import checkpoints
from ..engine.checkpoints import LAST_CHECKPOINT, partial_path, resume_checkpoint
from .progress import PLAIN_LINE

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
TRAIN = osp.join(ROOT, 'tools', 'train.py')

# Where a deterministic kill lands: (point, the iteration it belongs to) -> what the process was doing.
POINTS = {
    'train_iter': 'training',  # before the iteration starts
    'validation': 'validation',  # at its first batch
    'checkpoint_write': 'checkpoint write',  # a prefix of iter_N.pth written to its partial file
    'checkpoint_saved': 'checkpoint saved, last_checkpoint not',  # iter_N.pth renamed, last_checkpoint not begun
    'last_checkpoint_write': 'last_checkpoint write',  # a prefix of last_checkpoint in its partial file
    'last_checkpoint_saved': 'last_checkpoint saved',  # before the checkpoint max_keep_ckpts drops is removed
}
STARTUP = 'startup'  # imports, building the Runner, loading the checkpoint
SHUTDOWN = 'shutdown'  # after the last iteration
PLACES = (STARTUP, *dict.fromkeys(POINTS.values()), SHUTDOWN)  # every place a kill can land, in run order


@HOOKS.register_module()
class FaultHook(Hook):
    """Record a training process's events in ``trace_dir/launch<L>_rank<R>.txt`` and pause where
    ``trace_dir/plan.json`` says (written by ``Job.launch`` before each launch: ``launch`` L,
    ``pause_at`` (a ``POINTS`` key or null), ``pause_step`` (the iteration it belongs to, 1-based),
    ``pause_rank``, ``fraction`` (of a paused write's data in its partial file)).

    Events: ``start``; ``resumed N`` (the checkpoint's iteration); ``iter N`` (before iteration N);
    ``val N`` / ``val_end``; ``write_begin NAME`` / ``write_end NAME``; ``paused POINT``; ``finished``.
    Each line is ``<unix time> <event>``."""

    priority = 'VERY_HIGH'

    def __init__(self, trace_dir: str):
        with open(osp.join(trace_dir, 'plan.json')) as f:
            self.plan = json.load(f)
        self.trace_dir = trace_dir
        self._fd = None
        self._runner = None

    def _record(self, event: str) -> None:
        os.write(self._fd, f'{time.time():.3f} {event}\n'.encode())

    def _pausing(self, point: str, step: int) -> bool:
        plan = self.plan
        return plan['pause_at'] == point and plan['pause_step'] == step and plan['pause_rank'] == self._runner.rank

    def _pause(self, point: str) -> None:
        self._record(f'paused {point}')
        while True:  # until the harness kills this process
            time.sleep(3600)

    def before_run(self, runner) -> None:
        self._runner = runner
        path = osp.join(self.trace_dir, f'launch{self.plan["launch"]}_rank{runner.rank}.txt')
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        self._record('start')
        write = checkpoints.write_atomic

        def traced_write(path: str, data: bytes) -> None:
            name = osp.basename(path)
            kind = 'last_checkpoint' if name == LAST_CHECKPOINT else 'checkpoint'
            step = runner.iter + 1  # saves run in after_train_iter, before the loop counts the iteration
            if kind == 'last_checkpoint' and self._pausing('checkpoint_saved', step):
                self._pause('checkpoint_saved')
            self._record(f'write_begin {name}')
            if self._pausing(f'{kind}_write', step):
                with open(partial_path(path), 'wb') as f:
                    f.write(data[:int(len(data) * self.plan['fraction'])])
                self._pause(f'{kind}_write')
            write(path, data)
            self._record(f'write_end {name}')
            if kind == 'last_checkpoint' and self._pausing('last_checkpoint_saved', step):
                self._pause('last_checkpoint_saved')
        checkpoints.write_atomic = traced_write

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._record(f'resumed {checkpoint["meta"]["iter"]}')

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self._pausing('train_iter', runner.iter + 1):
            self._pause('train_iter')
        self._record(f'iter {runner.iter + 1}')

    def before_val_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if batch_idx == 0:
            self._record(f'val {runner.iter}')
            if self._pausing('validation', runner.iter):
                self._pause('validation')

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._record('val_end')

    def after_run(self, runner) -> None:
        self._record('finished')


def landing(events: Sequence[str]) -> str:
    """Where a kill landed (one of ``PLACES``), from the trace events the killed process wrote."""
    if not events:
        return STARTUP
    event, _, detail = events[-1].partition(' ')
    if event == 'paused':
        return POINTS[detail]
    if event == 'write_begin':
        return POINTS['last_checkpoint_write' if detail == LAST_CHECKPOINT else 'checkpoint_write']
    if event == 'write_end':
        return POINTS['last_checkpoint_saved' if detail == LAST_CHECKPOINT else 'checkpoint_saved']
    return {'start': STARTUP, 'resumed': STARTUP, 'iter': POINTS['train_iter'], 'val': POINTS['validation'],
            'val_end': POINTS['train_iter'], 'finished': SHUTDOWN}[event]


# ----------------------------------------------------------------------------- the harness side

@dataclass(frozen=True)
class Schedule:
    """What every launch of a job trains: ``config`` for ``iters`` iterations with a checkpoint every
    ``interval`` (and at the end), keeping ``max_keep_ckpts``, validating every ``val_interval``;
    ``dist_timeout`` seconds bound how long a rank waits for a missing one (``env_cfg.dist_cfg.timeout``)."""
    config: str
    iters: int = 12
    interval: int = 2
    val_interval: int = 4
    max_keep_ckpts: int = 1
    dist_timeout: int = 60

    @property
    def checkpoint_steps(self) -> List[int]:
        return sorted(set(range(self.interval, self.iters + 1, self.interval)) | {self.iters})

    @property
    def val_steps(self) -> List[int]:
        return list(range(self.val_interval, self.iters + 1, self.val_interval))

    def config_text(self, trace_dir: str) -> str:
        """A config inheriting ``config`` with this schedule and ``FaultHook`` added to its hooks."""
        base = Config.fromfile(self.config)
        hooks = [dict(hook) for hook in base.get('custom_hooks', [])] + [dict(type='FaultHook', trace_dir=trace_dir)]
        imports = list(base.get('custom_imports', {}).get('imports', ['mmpe'])) + ['mmpe.analysis.faults']
        return '\n'.join([
            f'_base_ = [{osp.abspath(self.config)!r}]',
            f'custom_imports = dict(imports={imports!r}, allow_failed_imports=False)',
            f'custom_hooks = {hooks!r}',
            f'train_cfg = dict(max_iters={self.iters}, val_interval={self.val_interval})',
            f'default_hooks = dict(checkpoint=dict(by_epoch=False, interval={self.interval}, '
            f'max_keep_ckpts={self.max_keep_ckpts}), logger=dict(interval=1))',
            f'env_cfg = dict(dist_cfg=dict(timeout={self.dist_timeout}))', ''])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@dataclass
class Pause:
    """Pause rank ``rank`` at ``point`` of iteration ``step``, with ``fraction`` of a paused write's data written."""
    point: str
    step: int
    rank: int = 0
    fraction: float = 0.5


class Job:
    """One training schedule run in ``root`` (``work/`` its work dir, ``traces/``, ``logs/``) by
    ``processes`` processes, launched again and again with ``--resume``; ``env`` is added to each
    process's environment."""

    def __init__(self, schedule: Schedule, root: str, processes: int, env: Optional[Dict[str, str]] = None):
        self.schedule, self.root, self.processes = schedule, root, processes
        self.work_dir, self.trace_dir, self.log_dir = (osp.join(root, name) for name in ('work', 'traces', 'logs'))
        for folder in (self.trace_dir, self.log_dir):
            os.makedirs(folder, exist_ok=True)
        self.env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1', **(env or {}))
        self.config = osp.join(root, 'config.py')
        with open(self.config, 'w') as f:
            f.write(schedule.config_text(self.trace_dir))
        self.launches = 0

    def launch(self, pause: Optional[Pause] = None) -> List[subprocess.Popen]:
        """Start the next launch, every rank in its own session (so that a kill of one takes its
        dataloader workers with it); returns the processes by rank."""
        index, self.launches = self.launches, self.launches + 1
        plan = dict(launch=index, pause_at=pause and pause.point, pause_step=pause and pause.step,
                    pause_rank=pause and pause.rank, fraction=pause.fraction if pause else 0.0)
        with open(osp.join(self.trace_dir, 'plan.json'), 'w') as f:
            json.dump(plan, f)
        argv = [sys.executable, TRAIN, self.config, '--work-dir', self.work_dir, '--resume']
        port = free_port()
        procs = []
        for rank in range(self.processes):
            env = dict(self.env)
            if self.processes > 1:
                env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(self.processes),
                           MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
            with open(self.log(index, rank), 'w') as log:
                procs.append(subprocess.Popen(argv + (['--launcher', 'pytorch'] if self.processes > 1 else []),
                                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                              start_new_session=True))
        return procs

    def log(self, launch: int, rank: int) -> str:
        return osp.join(self.log_dir, f'launch{launch}_rank{rank}.log')

    def events(self, launch: int, rank: int) -> List[str]:
        """The trace events (without their time) launch ``launch``'s rank ``rank`` wrote."""
        return [line.split(' ', 1)[1] for line in self.times(launch, rank)]

    def times(self, launch: int, rank: int) -> List[str]:
        path = osp.join(self.trace_dir, f'launch{launch}_rank{rank}.txt')
        if not osp.isfile(path):
            return []
        with open(path) as f:
            return f.read().splitlines()

    def final_state(self) -> Dict[str, torch.Tensor]:
        return torch.load(osp.join(self.work_dir, f'iter_{self.schedule.iters}.pth'), map_location='cpu')['state_dict']


def wait_all(procs: Sequence[subprocess.Popen], timeout: float) -> bool:
    """Wait until every process has exited (True), or ``timeout`` seconds passed (False)."""
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return False
    return True


def kill(proc: subprocess.Popen) -> None:
    """kill -9 the process and everything in its session (its dataloader workers)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def exit_message(log_file: str) -> str:
    """How a process explained its exit: mmpe's line for a lost process (``mmpe.engine.launch.lost_process``),
    else the last line of its log that names an error; shortened."""
    with open(log_file, errors='replace') as f:
        lines = [re.sub(r'^\[rank\d+\]:\s*', '', line.strip()) for line in f]
    lines = [line for line in lines if ' stops: another process of this run' in line] or \
        [line for line in lines if re.search(r'(Error|Exception)\b', line)]
    if not lines:
        return ''
    line = lines[-1].replace('|', '/')  # a markdown table cell
    return line if len(line) <= 200 else line[:197] + '...'


def checkpoint_iter(path: Optional[str]) -> int:
    """The iteration of checkpoint ``path`` (0: none, a start from scratch)."""
    return 0 if path is None else int(torch.load(path, map_location='cpu', mmap=True)['meta']['iter'])


def survivor_bound(schedule: Schedule) -> float:
    """Seconds a survivor may take to exit after a kill: a rank killed before the rendezvous leaves the
    others waiting until the timeout, which torch's TCPStore client waits out twice (it retries once,
    after a random delay of up to about the timeout); 60 s more for starting up and exiting."""
    return 3 * schedule.dist_timeout + 60


@dataclass
class Kill:
    """One kill: planned (a ``POINTS`` key or 'random'), where it landed (``PLACES``), what followed."""
    processes: int
    run: int
    launch: int
    planned: str
    rank: int
    landed: str = ''
    resume_expected: Optional[int] = None  # iteration of the checkpoint resume_checkpoint named after the kill
    resumed: Optional[int] = None  # iteration the next launch started from (0: scratch; None: killed before)
    survivor_seconds: Optional[float] = None  # kill -> the other ranks exited (several processes)
    survivor_message: str = ''


@dataclass
class RunResult:
    """One job driven to the end of its schedule through kills."""
    processes: int
    run: int
    kills: List[Kill] = field(default_factory=list)
    launches: int = 0
    resumes: int = 0  # launches that started from a checkpoint
    resumed_as_expected: int = 0  # launches that started where resume_checkpoint said before the launch (0: scratch)
    from_scratch: int = 0  # launches that started at iteration 1 although a complete checkpoint existed
    failures: List[str] = field(default_factory=list)  # refused resumes, wrong resumes, hung survivors, failed launches
    equal: bool = False  # final weights torch.equal to the uninterrupted run's


@dataclass
class Timing:
    """From an uninterrupted launch: seconds to the first iteration, and per iteration after it."""
    startup: float
    per_iter: float


def reference_run(job: Job, timeout: float = 3600) -> Timing:
    """Run ``job`` once without kills; raise if it fails. Returns its timing (for random kill times)."""
    start = time.time()
    procs = job.launch()
    if not wait_all(procs, timeout) or any(proc.returncode for proc in procs):
        for proc in procs:
            kill(proc)
        raise RuntimeError(f'the uninterrupted run failed; see {job.log(0, 0)}')
    stamps = {event: float(stamp) for stamp, event in (line.split(' ', 1) for line in job.times(0, 0))}
    first, finished = stamps['iter 1'], stamps['finished']
    return Timing(startup=first - start, per_iter=(finished - first) / job.schedule.iters)


@dataclass
class KillPlan:
    """How to kill a launch: at ``pause`` (then ``rank`` is the paused rank), or, without one, rank
    ``rank`` after ``delay`` seconds (unless the launch ended before)."""
    rank: int
    pause: Optional[Pause] = None
    delay: float = 0.0


Planner = Callable[[int], Optional[KillPlan]]  # iteration the next launch resumes from -> its kill, or None


def random_planner(rng: random.Random, schedule: Schedule, processes: int, timing: Timing, kills: int,
                   random_share: float = 0.5) -> Planner:
    """Up to ``kills`` kills: with probability ``random_share`` (or when no point is ahead) after a
    random delay within the launch's expected duration (``timing``), else at a random one of ``POINTS``
    of an iteration still ahead (checkpoint points on rank 0, the only rank that writes), with a
    random fraction of a paused write's data written; the rank is random."""
    planned = []

    def plan(resume_from: int) -> Optional[KillPlan]:
        if len(planned) == kills:
            return None
        rank = rng.randrange(processes)
        kill_plan = KillPlan(rank, delay=rng.uniform(0, timing.startup + (schedule.iters - resume_from)
                                                     * timing.per_iter))
        if rng.random() >= random_share:
            point = rng.choice(list(POINTS))
            steps = {'train_iter': range(1, schedule.iters + 1), 'validation': schedule.val_steps}.get(
                point, schedule.checkpoint_steps)
            ahead = [step for step in steps if step > resume_from]
            if ahead:
                rank = rank if point in ('train_iter', 'validation') else 0
                kill_plan = KillPlan(rank, Pause(point, rng.choice(ahead), rank, rng.uniform(0.05, 0.95)))
        planned.append(kill_plan)
        return kill_plan
    return plan


def scripted_planner(pauses: Sequence[Pause]) -> Planner:
    """Kill the launches one after the other at ``pauses``, then let the next one finish."""
    remaining = list(pauses)
    return lambda resume_from: KillPlan(remaining[0].rank, remaining.pop(0)) if remaining else None


def started_from(events: Sequence[str]) -> Optional[int]:
    """The iteration a launch started from: its checkpoint's, 0 when it started at iteration 1 without
    one, None when it was killed before either."""
    for event in events:
        if event.startswith('resumed '):
            return int(event.split()[1])
        if event == 'iter 1':
            return 0
    return None


def run_with_kills(job: Job, run: int, reference: Dict[str, torch.Tensor], planner: Planner,
                   wait_timeout: float = 1800) -> RunResult:
    """Launch ``job`` with ``--resume`` until its schedule ends, killing one rank of each launch as
    ``planner`` says (a launch that ends before its delayed kill is not killed). Before each launch,
    ``resume_checkpoint`` names the checkpoint the launch must resume from; its trace says what it
    resumed from. At the end, the final weights are compared with ``reference`` and no partial file
    may be left."""
    result = RunResult(processes=job.processes, run=run)
    schedule = job.schedule
    previous: Optional[Kill] = None
    while True:
        launch = job.launches
        try:
            expected = checkpoint_iter(resume_checkpoint(job.work_dir))
        except checkpoints.ResumeError as err:
            result.failures.append(f'launch {launch}: {err}')
            return result
        if previous is not None:
            previous.resume_expected = expected
        plan = planner(expected)
        pause = plan and plan.pause
        procs = job.launch(pause)
        result.launches += 1
        killed = None
        if pause is not None:
            deadline = time.monotonic() + wait_timeout
            while not any(event.startswith('paused') for event in job.events(launch, pause.rank)):
                if any(proc.poll() is not None for proc in procs) or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            else:
                killed = Kill(job.processes, run, launch, pause.point, pause.rank)
        elif plan is not None and not wait_all(procs, plan.delay):
            killed = Kill(job.processes, run, launch, 'random', plan.rank)
        if killed is not None:
            rank = killed.rank
            kill(procs[rank])
            killed_at = time.monotonic()
            killed.landed = landing(job.events(launch, rank))
            survivors = [proc for r, proc in enumerate(procs) if r != rank]
            if not wait_all(survivors, survivor_bound(schedule)):
                result.failures.append(f'launch {launch}: a survivor of the kill of rank {rank} did not exit within '
                                       f'{survivor_bound(schedule)} s')
                for proc in survivors:
                    kill(proc)
            if survivors:
                killed.survivor_seconds = time.monotonic() - killed_at
                killed.survivor_message = exit_message(job.log(launch, 1 if rank == 0 else 0))
            result.kills.append(killed)
        elif not wait_all(procs, wait_timeout) or any(proc.returncode for proc in procs):
            for proc in procs:
                kill(proc)
            result.failures.append(f'launch {launch} failed (exit codes {[p.returncode for p in procs]}); see '
                                   f'{job.log(launch, 0)}')
            return result
        start = started_from(job.events(launch, 0))
        if previous is not None:
            previous.resumed = start
        if start is not None:
            result.resumes += start > 0
            result.resumed_as_expected += start == expected
            result.from_scratch += start == 0 and expected > 0
            if start != expected:
                result.failures.append(f'launch {launch} started from iteration {start}, expected {expected}')
        if killed is None:
            break
        previous = killed
    final = job.final_state()
    result.equal = set(final) == set(reference) and all(torch.equal(value, reference[key])
                                                        for key, value in final.items())
    leftovers = [name for name in os.listdir(job.work_dir) if name.endswith(checkpoints.PARTIAL_SUFFIX)]
    if leftovers:
        result.failures.append(f'partial files left in {job.work_dir}: {leftovers}')
    return result


# ----------------------------------------------------------------------------- tables

def summary_rows(results: Sequence[RunResult]) -> List[dict]:
    """One row per number of processes: kills, resumes, failures, runs equal to the uninterrupted one."""
    rows = []
    for processes in sorted({r.processes for r in results}):
        runs = [r for r in results if r.processes == processes]
        kills = [k for r in runs for k in r.kills]
        exits = [k.survivor_seconds for k in kills if k.survivor_seconds is not None]
        rows.append({
            'processes': processes, 'runs': len(runs), 'launches': sum(r.launches for r in runs),
            'kills': len(kills), 'at a planned point': sum(k.planned != 'random' for k in kills),
            'at a random time': sum(k.planned == 'random' for k in kills),
            'resumes': sum(r.resumes for r in runs),
            'started where expected': sum(r.resumed_as_expected for r in runs),
            'restarts from scratch': sum(r.from_scratch for r in runs),
            'survivor exit, max s': f'{max(exits):.0f} ({len(exits)} kills)' if exits else 'n/a',
            'failures': sum(len(r.failures) for r in runs),
            'runs equal to the uninterrupted one': f'{sum(r.equal for r in runs)}/{len(runs)}'})
    return rows


def place_rows(results: Sequence[RunResult]) -> List[dict]:
    """Where the kills landed: one row per place (``PLACES``), one column per number of processes."""
    counts = sorted({r.processes for r in results})
    return [{'landed in': place, **{f'{n} process{"es" if n > 1 else ""}': sum(
        k.landed == place for r in results if r.processes == n for k in r.kills) for n in counts}}
        for place in PLACES]


def kill_rows(results: Sequence[RunResult]) -> List[dict]:
    """Every kill: what was planned, where it landed, what the next launch resumed from."""
    return [{'processes': k.processes, 'run': k.run, 'launch': k.launch, 'planned': k.planned,
             'killed rank': k.rank, 'landed in': k.landed, 'resume expected from': k.resume_expected,
             'next launch started from': 'killed before' if k.resumed is None else k.resumed,
             'survivor exit s': 'n/a' if k.survivor_seconds is None else round(k.survivor_seconds, 1),
             'survivor message': k.survivor_message or 'n/a'}
            for r in results for k in r.kills]


# ----------------------------------------------------------------------------- a study under kills

COMPARE = osp.join(ROOT, 'tools', 'analysis_tools', 'compare_encodings.py')
# Columns of collect_results.py's tables measured in wall-clock time: they differ from run to run.
MEASURED_COLUMNS = ('s/iter', 'memory (MB)')
# Where a kill of compare_encodings.py lands, from the last step line it printed (its progress lines say no step).
STUDY_PLACES = ('startup', 'training', 'evaluation', 'between steps', 'collection', 'shutdown')


def study_place(output: str) -> str:
    """Where a kill of compare_encodings.py landed (one of ``STUDY_PLACES``), from its output so far."""
    lines = [line for line in output.splitlines() if (re.match(r'\[\d\d:\d\d:\d\d\] ', line) and
             not PLAIN_LINE.match(line)) or line.startswith('study done')]
    if not lines:
        return 'startup'
    last = lines[-1]
    if last.startswith('study done'):
        return 'shutdown'
    if ' collect results into ' in last:
        return 'collection'
    step = re.search(r': (train|evaluate)\b(?!.* done in )', last)
    return {'train': 'training', 'evaluate': 'evaluation'}[step[1]] if step else 'between steps'


@dataclass
class RunState:
    """What a run directory held before a launch of the study."""
    steps: int  # characters of its steps.log
    resume_from: int  # iteration of the checkpoint it must resume from (0: none)
    evaluated: bool


class StudyJob:
    """``compare_encodings.py ARGV --work-dir ROOT/work --out ROOT/out`` (one process, ``--max-jobs``
    as ARGV says), launched again and again; its output per launch in ``ROOT/launch<L>.log``."""

    def __init__(self, argv: Sequence[str], root: str, env: Optional[Dict[str, str]] = None):
        self.argv, self.root = list(argv), root
        self.work_dir, self.out = osp.join(root, 'work'), osp.join(root, 'out')
        os.makedirs(root, exist_ok=True)
        self.env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1', **(env or {}))
        self.launches = 0

    def launch(self) -> subprocess.Popen:
        """Start the next launch in its own session (a kill takes its training and evaluation along)."""
        index, self.launches = self.launches, self.launches + 1
        with open(self.log(index), 'w') as log:
            return subprocess.Popen([sys.executable, COMPARE, *self.argv, '--work-dir', self.work_dir, '--out',
                                     self.out], cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def log(self, launch: int) -> str:
        return osp.join(self.root, f'launch{launch}.log')

    def output(self, launch: int) -> str:
        with open(self.log(launch), errors='replace') as f:
            return f.read()

    def run_dirs(self) -> List[str]:
        """The run directories the study has made: ``.../seed<k>`` with its ``config.py``."""
        return sorted(osp.dirname(p) for p in glob.glob(osp.join(self.work_dir, '**', 'seed*', 'config.py'),
                                                       recursive=True))

    def states(self) -> Dict[str, RunState]:
        """Every run directory's state now (``resume_checkpoint`` may raise a ``ResumeError``)."""
        states = {}
        for run_dir in self.run_dirs():
            steps = osp.join(run_dir, 'steps.log')
            states[run_dir] = RunState(steps=osp.getsize(steps) if osp.isfile(steps) else 0,
                                       resume_from=checkpoint_iter(resume_checkpoint(run_dir)),
                                       evaluated=osp.isfile(osp.join(run_dir, 'multires', 'multires.csv')))
        return states

    def tables(self) -> Dict[str, List[List[str]]]:
        """The collected tables (markdown and CSV under --out) as rows of cells, without the columns
        measured in wall-clock time (``MEASURED_COLUMNS``) and with this job's root replaced by 'ROOT'."""
        tables = {}
        for path in sorted(glob.glob(osp.join(self.out, '**', '*.md'), recursive=True) +
                           glob.glob(osp.join(self.out, '**', '*.csv'), recursive=True)):
            with open(path, newline='') as f:
                text = f.read().replace(self.root, 'ROOT')
            if path.endswith('.csv'):
                rows = list(csv.reader(io.StringIO(text)))
            else:
                rows = [[cell.strip() for cell in line.strip().strip('|').split('|')] if line.startswith('|')
                        else [line] for line in text.splitlines()]
            header = next((row for row in rows if set(row) & set(MEASURED_COLUMNS)), [])
            drop = {i for i, cell in enumerate(header) if cell in MEASURED_COLUMNS}
            tables[osp.relpath(path, self.out)] = [[cell for i, cell in enumerate(row) if i not in drop or
                                                    len(row) != len(header)] for row in rows]
        return tables


@dataclass
class StudyKill:
    """One kill of the study: after ``delay`` s of launch ``launch``, where it landed, the locks it left."""
    run: int
    launch: int
    delay: float
    landed: str = ''
    stale_locks: int = 0


@dataclass
class StudyResult:
    """One study driven to its end through kills."""
    run: int
    kills: List[StudyKill] = field(default_factory=list)
    launches: int = 0
    trainings_resumed: int = 0  # train steps that resumed from the checkpoint their run had
    from_scratch: int = 0  # train steps that started over although their run had a complete checkpoint
    evaluations: int = 0  # evaluation steps started
    evaluations_repeated: int = 0  # ... of a run that was evaluated already
    failures: List[str] = field(default_factory=list)
    equal: bool = False  # final tables equal to the uninterrupted study's


def check_steps(job: StudyJob, before: Dict[str, RunState], result: StudyResult) -> None:
    """Check the train and evaluation steps one launch started (the lines it appended to each run's
    steps.log) against the run directories' state before it."""
    for run_dir in job.run_dirs():
        state = before.get(run_dir, RunState(0, 0, False))
        with open(osp.join(run_dir, 'steps.log'), errors='replace') as f:
            f.seek(state.steps)
            commands = [line for line in f.read().splitlines() if line.startswith('$ ')]
        for command in commands:
            if 'tools/train.py' in command:
                resumed = re.search(r'--resume \S*iter_(\d+)\.pth', command)
                start = int(resumed[1]) if resumed else 0
                result.trainings_resumed += start > 0
                if start != state.resume_from:
                    result.from_scratch += start == 0
                    result.failures.append(f'{run_dir}: training started from iteration {start}, its newest '
                                           f'complete checkpoint is of iteration {state.resume_from}')
            elif 'eval_multires.py' in command:
                result.evaluations += 1
                if state.evaluated:
                    result.evaluations_repeated += 1
                    result.failures.append(f'{run_dir}: evaluated again')


def study_with_kills(job: StudyJob, run: int, reference: Dict[str, List[List[str]]], duration: float, runs: int,
                     kills: int, rng: random.Random, timeout: float = 7200) -> StudyResult:
    """Launch the study (of ``runs`` runs) until it ends, killing its session (the study, its training
    or evaluation, its collection) in the first ``kills`` launches, after a random delay within the
    part of ``duration`` (the uninterrupted study's) still to come (by runs not yet evaluated, at
    least a fifth: start-up and collection); every launch's steps are checked (``check_steps``); at
    the end every run must be evaluated, no lock or partial file left, and the tables equal
    ``reference``."""
    result = StudyResult(run=run)
    while True:
        launch = job.launches
        try:
            before = job.states()
        except checkpoints.ResumeError as err:
            result.failures.append(f'launch {launch}: {err}')
            return result
        proc = job.launch()
        result.launches += 1
        killed = None
        if len(result.kills) < kills:
            evaluated = sum(state.evaluated for state in before.values())
            delay = rng.uniform(0, duration * max(0.2, 1 - evaluated / runs))
            if not wait_all([proc], delay):
                killed = StudyKill(run, launch, delay)
                kill(proc)
                killed.landed = study_place(job.output(launch))
                killed.stale_locks = len(glob.glob(osp.join(job.work_dir, '**', 'study.lock'), recursive=True))
                result.kills.append(killed)
        if killed is None and (not wait_all([proc], timeout) or proc.returncode):
            kill(proc)
            result.failures.append(f'launch {launch} failed (exit code {proc.returncode}); see {job.log(launch)}')
            return result
        check_steps(job, before, result)
        if killed is None:
            break
    for run_dir in job.run_dirs():
        left = [name for name in os.listdir(run_dir) if name == 'study.lock' or name.endswith(
            checkpoints.PARTIAL_SUFFIX)]
        if left or not osp.isfile(osp.join(run_dir, 'multires', 'multires.csv')):
            result.failures.append(f'{run_dir}: ' + (f'left {left}' if left else 'not evaluated'))
    tables = job.tables()
    result.equal = bool(tables) and tables == reference
    return result


def study_summary_rows(results: Sequence[StudyResult]) -> List[dict]:
    """One row: kills of the study, where they landed, resumes and repeats, tables equal."""
    kills = [k for r in results for k in r.kills]
    return [{'studies': len(results), 'launches': sum(r.launches for r in results), 'kills': len(kills),
             'landed': ', '.join(f'{place} {n}' for place in STUDY_PLACES
                                 if (n := sum(k.landed == place for k in kills))),
             'stale locks left by kills': sum(k.stale_locks for k in kills),
             'trainings resumed': sum(r.trainings_resumed for r in results),
             'restarts from scratch': sum(r.from_scratch for r in results),
             'evaluations': sum(r.evaluations for r in results),
             'evaluations repeated': sum(r.evaluations_repeated for r in results),
             'failures': sum(len(r.failures) for r in results),
             'tables equal to the uninterrupted study': f'{sum(r.equal for r in results)}/{len(results)}'}]


def reference_study(job: StudyJob, timeout: float = 7200) -> float:
    """Run the study once without kills; raise if it fails. Returns its duration in seconds."""
    start = time.time()
    proc = job.launch()
    if not wait_all([proc], timeout) or proc.returncode:
        kill(proc)
        raise RuntimeError(f'the uninterrupted study failed; see {job.log(0)}')
    return time.time() - start


def study_config(base: str, iters: int, interval: int) -> str:
    """A study config: ``base`` trained for ``iters`` iterations with a checkpoint every ``interval``
    (a small study whose trainings can be killed between checkpoints)."""
    return '\n'.join([
        f'_base_ = [{osp.abspath(base)!r}]',
        f'train_cfg = dict(max_iters={iters}, val_interval={iters})',
        f"param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=1.0, begin=0, end={iters}, by_epoch=False)]",
        f'default_hooks = dict(checkpoint=dict(interval={interval}), logger=dict(interval=1))', ''])
