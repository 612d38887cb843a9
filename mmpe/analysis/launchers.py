"""Starting the study's runs from outside: the command line that launches a tool the way its users
launch training, and who is running a run (its lock).

``mmpe.engine.launch`` is the other side: what a tool does with its ``--launcher`` once started.

Launchers (``Launcher.command``):

- ``none``: ``python TOOL ARGS`` (one process).
- ``pytorch``: ``python -m torch.distributed.run --nproc-per-node GPUS --master-port PORT TOOL ARGS
  --launcher pytorch`` on this node, as tools/dist_train.sh (GPUs: nccl; no CUDA: gloo on CPU).
- ``slurm``: ``srun -p PARTITION --job-name=NAME --gres=gpu:GPUS_PER_NODE --ntasks=GPUS
  --ntasks-per-node=GPUS_PER_NODE --cpus-per-task=CPUS_PER_TASK --kill-on-bad-exit=1 SRUN_ARGS
  python -u TOOL ARGS --launcher slurm``, exactly what tools/slurm_train.sh runs for the same
  values (defaults GPUS 8, GPUS_PER_NODE min(8, GPUS), CPUS_PER_TASK 5; tests/test_study_launch.py
  runs both and compares); mmengine's slurm launcher reads the port from ``MASTER_PORT``, set in
  the command's environment.

Every run of a study gets its own port, ``MASTER_PORT`` (default 29500) plus the run's index, so
runs in flight at once on one node never share one.

Run directory state: ``study.lock`` (``RunLock``); the checkpoint a run resumes from is
``mmpe.engine.checkpoints.resume_checkpoint``'s.
"""
import os
import os.path as osp
import socket
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

LAUNCHERS = ('none', 'pytorch', 'slurm')
DEFAULT_PORT = 29500
SLURM_DEFAULTS = dict(gpus=8, max_gpus_per_node=8, cpus_per_task=5)  # as tools/slurm_train.sh


@dataclass
class Launcher:
    """How each tool of a run is started; options that do not apply to ``kind`` are an error.

    ``gpus``: processes (pytorch: required; slurm: default 8); ``gpus_per_node``,
    ``cpus_per_task``, ``partition`` (required) and ``srun_args``: slurm only.
    """
    kind: str = 'none'
    gpus: Optional[int] = None
    gpus_per_node: Optional[int] = None
    cpus_per_task: Optional[int] = None
    partition: Optional[str] = None
    srun_args: Sequence[str] = ()
    python: str = sys.executable

    def __post_init__(self):
        if self.kind not in LAUNCHERS:
            raise ValueError(f'launcher must be one of {", ".join(LAUNCHERS)}, got {self.kind!r}')
        slurm_only = dict(partition=self.partition, gpus_per_node=self.gpus_per_node,
                          cpus_per_task=self.cpus_per_task, srun_args=self.srun_args or None)
        given = [f'--{k.replace("_", "-")}' for k, v in slurm_only.items() if v is not None]
        if self.kind != 'slurm' and given:
            raise ValueError(f'{", ".join(given)}: options of --launcher slurm, not of --launcher {self.kind}')
        if self.kind == 'none' and self.gpus is not None:
            raise ValueError("--gpus applies to --launcher pytorch or slurm; --launcher none runs one process")
        if self.kind == 'pytorch' and self.gpus is None:
            raise ValueError('--launcher pytorch needs --gpus N (processes on this node)')
        if self.kind == 'slurm':
            if not self.partition:
                raise ValueError('--launcher slurm needs --partition P')
            self.gpus = SLURM_DEFAULTS['gpus'] if self.gpus is None else self.gpus
            if self.gpus_per_node is None:
                self.gpus_per_node = min(SLURM_DEFAULTS['max_gpus_per_node'], self.gpus)
            if self.cpus_per_task is None:
                self.cpus_per_task = SLURM_DEFAULTS['cpus_per_task']
        for name in ('gpus', 'gpus_per_node', 'cpus_per_task'):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f'--{name.replace("_", "-")} must be a positive integer, got {value!r}')
        if self.kind == 'slurm' and self.gpus % self.gpus_per_node:
            raise ValueError(f'--gpus ({self.gpus}) must be a multiple of --gpus-per-node ({self.gpus_per_node}): '
                             f'every node runs --gpus-per-node processes')

    def command(self, tool: str, args: Sequence[str], job_name: str, port: int) -> Tuple[Dict[str, str], List[str]]:
        """(environment to add, argv) that runs ``tool`` (a script path) with ``args`` under this
        launcher; ``job_name`` names the slurm job, ``port`` is the rendezvous port of torch.distributed."""
        if self.kind == 'none':
            return {}, [self.python, tool, *args]
        if self.kind == 'pytorch':
            return {}, [self.python, '-m', 'torch.distributed.run', '--nproc-per-node', str(self.gpus),
                        '--master-port', str(port), tool, *args, '--launcher', 'pytorch']
        return {'MASTER_PORT': str(port)}, [
            'srun', '-p', self.partition, f'--job-name={job_name}', f'--gres=gpu:{self.gpus_per_node}',
            f'--ntasks={self.gpus}', f'--ntasks-per-node={self.gpus_per_node}',
            f'--cpus-per-task={self.cpus_per_task}', '--kill-on-bad-exit=1', *self.srun_args,
            self.python, '-u', tool, *args, '--launcher', 'slurm']


def base_port() -> int:
    """``MASTER_PORT`` from the environment, else 29500: the port of a study's first run."""
    value = os.environ.get('MASTER_PORT', str(DEFAULT_PORT))
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ValueError(f'MASTER_PORT must be a port number (1-65535), got {value!r}')
    return int(value)


# ----------------------------------------------------------------------------- run directory state

class RunLock:
    """``run_dir/study.lock``, holding ``HOST PID`` of the study process running the run (training
    and evaluation, whatever launcher runs them), so that two study invocations never run one run
    at once (e.g. a second invocation for the same work dir on a login node or in another job).

    ``acquire`` creates the file atomically (O_EXCL). A lock left by a process that is gone from
    this host is stale and taken over; one held by a live process here is respected. A lock from
    another host cannot be checked from here: the run is skipped unless ``force`` (use it when
    that study is known to be dead, e.g. its job was cancelled). ``release`` removes the lock if it is still ours.
    """

    NAME = 'study.lock'

    def __init__(self, run_dir: str):
        self.path = osp.join(run_dir, self.NAME)
        self.owner = f'{socket.gethostname()} {os.getpid()}'

    def holder(self) -> Optional[str]:
        """``HOST PID`` of the lock's holder, None when unlocked."""
        try:
            with open(self.path) as f:
                return f.read().strip() or '? ?'
        except FileNotFoundError:
            return None

    def blocker(self, force: bool = False) -> Optional[str]:
        """Why this process may not run the run now (None: it may): the lock's live or foreign holder."""
        holder = self.holder()
        if holder is None or holder == self.owner:
            return None
        host, _, pid = holder.partition(' ')
        if host == socket.gethostname():
            if pid.isdigit() and pid_alive(int(pid)):
                return f'running in process {pid} on this host ({self.path})'
            return None  # stale: its process is gone
        if force:
            return None
        return (f'locked by process {pid} on host {host} ({self.path}); if that study is no longer running, '
                f'rerun with --force or delete the lock')

    def acquire(self, force: bool = False) -> Optional[str]:
        """Take the lock; returns None when taken, else why not (see ``blocker``). The lock appears
        with its content at once (a hard link to a complete file of this process), so a kill never
        leaves an empty lock that no one could take over; a stale or forced one is replaced likewise."""
        mine = f'{self.path}.{os.getpid()}'
        with open(mine, 'w') as f:
            f.write(self.owner)
        try:
            os.link(mine, self.path)
        except FileExistsError:
            reason = self.blocker(force)
            if reason:
                return reason
            os.replace(mine, self.path)  # take over a stale (or forced) lock
        finally:
            if osp.exists(mine):
                os.remove(mine)
        return None

    def release(self) -> None:
        if self.holder() == self.owner:
            os.remove(self.path)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True
