"""Checkpoints that survive a kill: atomic writes, the checkpoint hook that uses them, and the
checkpoint ``--resume`` resumes from.

mmengine 0.10.7's ``CheckpointHook`` writes ``iter_N.pth`` in place (``LocalBackend.put``:
``open(path, 'wb')``), then ``last_checkpoint`` with ``open(path, 'w')``, and with
``max_keep_ckpts`` deletes the oldest checkpoint before it saves the new one. A kill (pre-emption,
a time limit, a dying node) in the middle leaves a truncated checkpoint, an empty
``last_checkpoint`` (mmengine's resume then fails with "FileNotFoundError:  can not be found."),
or with ``max_keep_ckpts=1`` no checkpoint at all; with no ``last_checkpoint`` left, mmengine
silently trains from the start.

Here every file is written to a temporary file in the same folder (``partial_path``), flushed,
fsynced and renamed over its name (``write_atomic``), so a kill leaves the old file or the new one,
complete. ``AtomicCheckpointHook`` (registered in mmengine's HOOKS; mmpe's tools use it in place of
``CheckpointHook``, ``mmpe.engine.launch.load_config``) writes checkpoints and ``last_checkpoint``
that way and removes an old checkpoint only once ``last_checkpoint`` names the new one.
``resume_checkpoint`` decides what ``--resume`` resumes from, and refuses, naming the file and the
newest complete checkpoint next to it, a truncated or corrupt checkpoint or an empty or dangling
``last_checkpoint``.
"""
import glob
import logging
import os
import os.path as osp
import zipfile
from typing import List, Optional

import torch
from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log
from mmengine.registry import HOOKS

LAST_CHECKPOINT = 'last_checkpoint'  # the file in the work dir naming the newest checkpoint (mmengine's name)
ATOMIC_BACKEND = 'local_atomic'  # mmengine file backend name of AtomicLocalBackend
PARTIAL_SUFFIX = '.partial'


def partial_path(path: str) -> str:
    """The temporary file ``write_atomic`` writes before renaming it to ``path``: hidden, in the same
    folder (a rename is atomic within one filesystem), not ending in .pth."""
    return osp.join(osp.dirname(path), f'.{osp.basename(path)}{PARTIAL_SUFFIX}')


def write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a kill at any moment leaves either the previous file (or
    none) or the new one, complete: ``partial_path(path)`` is written, flushed and fsynced, renamed
    to ``path`` (``os.replace``), then the folder is fsynced so that the rename survives a power cut.
    One writer per path (each run has its own work dir)."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    partial = partial_path(path)
    with open(partial, 'wb') as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose writes are atomic (``write_atomic``); reads, listing and
    removal are LocalBackend's. Name: ``backend_args=dict(backend='local_atomic')``."""

    def put(self, obj: bytes, filepath) -> None:
        write_atomic(str(filepath), obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        write_atomic(str(filepath), obj.encode(encoding))


register_backend(ATOMIC_BACKEND, AtomicLocalBackend)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` (same arguments) whose files are complete or absent after a kill
    at any moment.

    - Checkpoints (periodic, last and best) in a local folder go through ``AtomicLocalBackend``
      (``backend_args`` default); other storage (``backend_args``, ``file_client_args``, a URI
      ``out_dir``) is written as upstream does.
    - ``last_checkpoint`` is written with ``write_atomic``, after the checkpoint it names.
    - With ``max_keep_ckpts``, the oldest kept checkpoint is removed after the new one is saved and
      named in ``last_checkpoint`` (upstream removes it first). The new checkpoint's
      ``keep_ckpt_ids`` still lists it, so resuming from it removes it (``CheckpointHook.before_train``)
      if a kill came before the removal.
    - ``before_train`` removes the partial files of writes a kill interrupted.
    """

    def __init__(self, *args, out_dir=None, file_client_args=None, backend_args=None, **kwargs):
        if backend_args is None and file_client_args is None and (out_dir is None or '://' not in str(out_dir)):
            backend_args = dict(backend=ATOMIC_BACKEND)
        super().__init__(*args, out_dir=out_dir, file_client_args=file_client_args, backend_args=backend_args,
                         **kwargs)

    def before_train(self, runner) -> None:
        super().before_train(runner)
        if not is_main_process():
            return
        folders = {runner.work_dir} | ({self.out_dir} if isinstance(self.file_backend, LocalBackend) else set())
        for folder in sorted(folders):
            for partial in glob.glob(osp.join(glob.escape(folder), f'.*{PARTIAL_SUFFIX}')):
                os.remove(partial)
                runner.logger.info(f'Removed {partial}, the partial file of a write that was interrupted')

    def _save_checkpoint_with_step(self, runner, step: int, meta: dict) -> None:
        """Upstream's (mmengine 0.10.7), reordered: save, name in ``last_checkpoint``, then remove."""
        stale: List[int] = []
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                stale.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', stale + list(self.keep_ckpt_ids))
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(self.out_dir, filename, self.file_client_args, save_optimizer=self.save_optimizer,
                               save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=self.by_epoch,
                               backend_args=self.backend_args, **self.args)
        if not is_main_process():
            return
        write_atomic(osp.join(runner.work_dir, LAST_CHECKPOINT), str(self.last_ckpt).encode())
        for old in stale:
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # checkpoints saved by deepspeed are directories
                self.file_backend.rmtree(path)


# ----------------------------------------------------------------------------- reading on --resume

class ResumeError(ValueError):
    """``--resume`` has no complete checkpoint to resume from; the message says which file is wrong
    and names the newest complete checkpoint next to it."""


def checkpoint_problem(path: str) -> Optional[str]:
    """Why ``path`` is not a complete checkpoint, or None when it is. A torch zip archive (what
    ``torch.save`` writes) must have its central directory (a truncated file has not) and every
    member's CRC32 must match; any other file must load with ``torch.load``."""
    if not osp.isfile(path):
        return 'does not exist'
    if osp.getsize(path) == 0:
        return 'is empty'
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                damaged = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            return f'is corrupt ({err})'
        return None if damaged is None else f'is corrupt (member {damaged} fails its CRC check)'
    try:
        torch.load(path, map_location='cpu')
    except Exception as err:  # noqa: BLE001 -- whatever torch raises, the file is not a checkpoint
        return f'is truncated or corrupt: not a complete zip archive, and torch.load fails ({type(err).__name__}: ' \
               f'{str(err).splitlines()[0] if str(err) else ""})'
    return None


def newest_complete_checkpoint(folder: str, exclude: Optional[str] = None) -> Optional[str]:
    """The most recently modified complete ``*.pth`` file in ``folder`` other than ``exclude``, or None."""
    candidates = [path for path in glob.glob(osp.join(glob.escape(folder), '*.pth'))
                  if osp.isfile(path) and (exclude is None or osp.abspath(path) != osp.abspath(exclude))]
    for path in sorted(candidates, key=osp.getmtime, reverse=True):
        if checkpoint_problem(path) is None:
            return path
    return None


def _alternative(folder: str, exclude: Optional[str] = None) -> str:
    """What to do instead: resume from the newest complete checkpoint in ``folder``, or, with none,
    train from the start."""
    newest = newest_complete_checkpoint(folder, exclude)
    if newest is None:
        return (f'there is no complete checkpoint in {folder}: delete {osp.join(folder, LAST_CHECKPOINT)} to train '
                f'the run from the start')
    return f'the newest complete checkpoint next to it is {newest}: resume from it with --resume {newest}'


def last_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``work_dir/last_checkpoint`` names, as a path valid here; None without that file.

    mmengine writes an absolute path. A run that died on another node names that node's path: on a
    shared filesystem it exists here too; where the work dir was moved or is mounted elsewhere, the
    file of the same name in ``work_dir`` is the one. An empty file, or a name that exists neither
    there nor here, is a ``ResumeError`` (never a silent restart)."""
    pointer = osp.join(work_dir, LAST_CHECKPOINT)
    if not osp.isfile(pointer):
        return None
    with open(pointer) as f:
        recorded = f.read().strip()
    if not recorded:
        raise ResumeError(f'cannot resume: {pointer} is empty (its write was interrupted); {_alternative(work_dir)}')
    here = osp.join(work_dir, osp.basename(recorded))
    for path in (recorded, here):
        if osp.isfile(path):
            return path
    raise ResumeError(f'cannot resume: {pointer} names checkpoint {recorded}, which exists neither there nor as '
                      f'{here} (restore it, or resume from another); {_alternative(work_dir)}')


def resume_checkpoint(work_dir: str, load_from: Optional[str] = None) -> Optional[str]:
    """The complete checkpoint to resume from: ``load_from`` when given (``--resume PATH``), else the
    one ``work_dir/last_checkpoint`` names (``--resume``); without that file the newest complete
    ``*.pth`` in ``work_dir`` (a kill came between the first checkpoint and its ``last_checkpoint``;
    with a warning), or None when there is none (a first start: train from the beginning). A
    truncated or corrupt checkpoint, or an empty or dangling ``last_checkpoint``, is a
    ``ResumeError`` naming the file and the newest complete checkpoint next to it."""
    named_by = ''
    if load_from is None:
        load_from = last_checkpoint(work_dir)
        named_by = f' (named by {osp.join(work_dir, LAST_CHECKPOINT)})'
        if load_from is None:
            newest = newest_complete_checkpoint(work_dir)
            if newest is not None:
                print_log(f'{work_dir} has no {LAST_CHECKPOINT}: resuming from its newest complete checkpoint '
                          f'{newest}', 'current', logging.WARNING)
            return newest
    elif '://' in load_from:  # a URL or another storage backend: mmengine reads it
        return load_from
    problem = checkpoint_problem(load_from)
    if problem is not None:
        folder = osp.dirname(osp.abspath(load_from))
        raise ResumeError(f'cannot resume: checkpoint {load_from}{named_by} {problem}; '
                          f'{_alternative(folder, load_from)}')
    return load_from
