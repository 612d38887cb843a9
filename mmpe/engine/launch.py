"""What tools/train.py and tools/test.py share: their common options, the config they load (with
``AtomicCheckpointHook`` for mmengine's checkpoint hook) and the mmengine Runner they build (mmdet
or mmseg, as the config's ``default_scope`` says); the test-time augmentation of tools/test.py and
eval_multires.py."""
import argparse
import atexit
import copy
import gc
import os
import os.path as osp
import re
import sys
import traceback
from typing import Optional

import torch
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.hooks import CheckpointHook
from mmengine.registry import RUNNERS
from mmengine.runner import Runner

from .config_names import config_file


def add_common_args(parser: argparse.ArgumentParser) -> None:
    """--work-dir, --cfg-options, --launcher and torch.distributed's --local-rank."""
    parser.add_argument('--work-dir', help='the directory for logs, checkpoints and results')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override settings of the config, e.g. train_cfg.max_iters=100')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def load_config(args: argparse.Namespace) -> Config:
    """The config of ``args.config`` (a path or a name such as ``'mmpe::dino/<config>.py'``) with the
    common options applied; the work dir defaults to ./work_dirs/<config name>."""
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    cfg = Config.fromfile(config_file(args.config))
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    use_atomic_checkpoints(cfg)
    return cfg


def use_atomic_checkpoints(cfg: Config) -> None:
    """Replace mmengine's ``CheckpointHook`` in ``cfg.default_hooks`` (mmengine's default when the config
    names none) by ``AtomicCheckpointHook`` (``mmpe.engine.checkpoints``: same arguments, files complete
    after a kill); a config's own checkpoint hook class, or ``checkpoint=None``, is kept."""
    hooks = cfg.setdefault('default_hooks', ConfigDict())
    hook = hooks.setdefault('checkpoint', ConfigDict(type='CheckpointHook', interval=1))  # as mmengine's Runner
    if hook is not None and hook.get('type') in ('CheckpointHook', CheckpointHook):
        hook['type'] = 'AtomicCheckpointHook'


LAUNCHER_RANK = {'pytorch': 'RANK', 'slurm': 'SLURM_PROCID', 'mpi': 'OMPI_COMM_WORLD_RANK'}


def launched_as_main(launcher: str) -> bool:
    """Whether this process is rank 0 of a job started by ``launcher`` (``--launcher``), read from the variable
    that launcher sets (``LAUNCHER_RANK``), before mmengine initialises torch.distributed; True for 'none'."""
    variable = LAUNCHER_RANK.get(launcher)
    return variable is None or os.environ.get(variable, '0') == '0'


def release_process_group() -> None:
    """Destroy the process group a distributed Runner initialised and join gloo's worker threads
    while Python still runs.

    ``destroy_process_group`` alone leaves the group alive while the Runner's DDP model holds it,
    so its worker threads outlive the interpreter; a thread that drops the last reference of a
    finished collective's tensors then takes the GIL during finalisation and the process aborts
    ('terminate called without an active exception'). Here the Runner is collected first, and the
    last reference to the group, ours, goes last: its destructor releases the GIL and joins them.
    """
    if not torch.distributed.is_initialized():
        return
    world = torch.distributed.group.WORLD
    torch.distributed.destroy_process_group()
    gc.collect()  # the Runner (a reference cycle once the tool's main() returned) and its DDP model
    del world


def build_runner(cfg: Config) -> Runner:
    """mmengine's Runner, or the config's own ``runner_type``. The process group a distributed run
    initialises is released at interpreter exit (``release_process_group``)."""
    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    atexit.unregister(release_process_group)  # registered once per process, however many runners it builds
    atexit.register(release_process_group)
    return runner


def lost_process(err: BaseException) -> Optional[str]:
    """One line for ``err`` when it is torch.distributed's sign that another process of this run is gone
    or unreachable (a ``torch.distributed.DistError``: the rendezvous or a collective timed out; or gloo's
    RuntimeError: the peer's connection was closed or reset), else None."""
    if not (isinstance(err, torch.distributed.DistError) or isinstance(err, RuntimeError) and '/gloo/' in str(err)):
        return None
    rank, world = os.environ.get('RANK', '?'), os.environ.get('WORLD_SIZE', '?')
    reason = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
    # gloo: '[.../pair.cc:561] Connection closed by peer [ADDR]:PORT. This is typically caused by ...'
    reason = re.sub(r'^\[[^\]]*\]\s*', '', reason).split(' This is typically')[0].rstrip('. ')
    return (f'rank {rank} of {world} stops: another process of this run is gone or unreachable ({reason}). Start '
            f'every process of the run again with --resume to continue from its last checkpoint.')


def train(cfg: Config) -> None:
    """Build the Runner and train. When another process of a distributed run is gone (``lost_process``),
    print the traceback, then that line, and exit with code 1."""
    try:
        build_runner(cfg).train()
    except RuntimeError as err:
        message = lost_process(err)
        if message is None:
            raise
        traceback.print_exc()
        print(message, file=sys.stderr)
        sys.exit(1)


def tta_config(cfg: Config, name: str) -> Config:
    """A copy of ``cfg`` that tests with test-time augmentation, as mmseg's and mmdet's
    tools/test.py ``--tta`` do: the test dataset's pipeline becomes ``cfg.tta_pipeline`` and the
    model is wrapped in ``cfg.tta_model`` (mmseg's SegTTAModel averages the segmentation logits over
    the pipeline's scales and flips; mmdet's DetTTAModel merges the boxes).

    name: the config's path, named in the error when ``tta_model`` or ``tta_pipeline`` is missing
    (mmseg configs inherit both from mmseg's default_runtime and dataset bases; mmdet's DINO bases
    define neither).
    """
    missing = [key for key in ('tta_model', 'tta_pipeline') if cfg.get(key) is None]
    if missing:
        raise ValueError(f'--tta: config {name} has no {" and no ".join(missing)}; define tta_model (e.g. '
                         f"dict(type='SegTTAModel') or dict(type='DetTTAModel', tta_cfg=...)) and tta_pipeline "
                         f'(a test pipeline with TestTimeAug) in the config')
    cfg = copy.deepcopy(cfg)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    return cfg
