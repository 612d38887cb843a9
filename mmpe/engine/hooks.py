"""Training hooks."""
import random

import numpy as np
import torch
from mmengine.dist import all_gather_object
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS


def get_rng_state() -> dict:
    """This process's generators: python, numpy, torch CPU and the current CUDA device's."""
    return dict(python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state(),
                cuda=torch.cuda.get_rng_state() if torch.cuda.is_available() else None)


def set_rng_state(state: dict) -> None:
    """Restore what ``get_rng_state`` returned (its CUDA state only where CUDA is available)."""
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if state['cuda'] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state['cuda'])


def saves_after_train_iter(runner, hook: CheckpointHook) -> bool:
    """Whether ``hook`` saves a checkpoint in this iteration's ``after_train_iter`` (the condition of
    mmengine 0.10.7's CheckpointHook.after_train_iter)."""
    return not hook.by_epoch and (hook.every_n_train_iters(runner, hook.interval, hook.save_begin)
                                  or hook.save_last and hook.is_last_train_iter(runner))


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save every process's random number generators (python, numpy, torch CPU and its CUDA
    device's) in every checkpoint and restore them on resume, so a resumed run draws the same
    random numbers (dropout, drop path, DINO's denoising queries) and the same data as an
    uninterrupted one, whatever seed the resumed run was started with.

    Under DDP each process has its own generators (distinct streams with
    ``randomness.diff_rank_seed=True``), but mmengine 0.10.7 writes checkpoints on rank 0 and calls
    ``before_save_checkpoint`` there only. So all processes gather their states
    (``all_gather_object``) where CheckpointHook saves (after the iterations it saves at, after
    every training epoch and validation), just before it: this hook's priority LOW runs before
    CheckpointHook's VERY_LOW. The checkpoint holds one state per rank and each rank restores its
    own; resumed with another number of processes, every process keeps the generators mmengine
    seeded, with a warning.

    Validation leaves the generators as it found them: its dataloader draws from torch's CPU
    generator, and a resumed run does not repeat the validation that followed its checkpoint.

    Two things in mmengine 0.10.7's resume need undoing. When the config's seed differs from the
    checkpoint's, ``Runner.resume`` adopts the checkpoint's seed and reseeds every generator
    after the checkpoint hooks have run; so the states are restored at ``before_train``, after
    that. And the train dataloader (sampler order, worker seeds) was built with the config's seed
    before resuming; it is rebuilt with the resumed seed.
    """

    priority = 'LOW'

    def __init__(self):
        self._states = None  # every rank's generators, gathered where a checkpoint may be saved
        self._before_val = None  # this rank's generators when validation started
        self._state = None  # this rank's generators from the resumed checkpoint
        self._dataloader_seed = None

    def before_run(self, runner) -> None:
        # the train loop and its dataloader are built by now, with this seed; the checkpoint is not loaded yet
        self._dataloader_seed = runner.seed

    def _gather(self) -> None:
        self._states = all_gather_object(get_rng_state())

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        self._states = None  # older than this iteration

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        if any(isinstance(hook, CheckpointHook) and saves_after_train_iter(runner, hook) for hook in runner.hooks):
            self._gather()

    def after_train_epoch(self, runner) -> None:
        self._gather()

    def before_val_epoch(self, runner) -> None:
        self._before_val = get_rng_state()

    def after_val_epoch(self, runner, metrics=None) -> None:
        set_rng_state(self._before_val)
        self._gather()

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._states is None:
            runner.logger.warning('RandomStateHook: this checkpoint is saved where the processes\' random states '
                                  'were not gathered; it holds none (a resume from it will not be exact)')
        else:
            checkpoint['rng_states'] = self._states

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        states = checkpoint.get('rng_states')
        if states is None:
            runner.logger.warning('RandomStateHook: the checkpoint has no random state; resuming with fresh '
                                  'generators (the run will not repeat an uninterrupted one exactly)')
        elif len(states) != runner.world_size:
            runner.logger.warning(
                f'RandomStateHook: the checkpoint holds the random states of {len(states)} processes and this '
                f'run has {runner.world_size}: they are not restored. Every process keeps the python, numpy, '
                f'torch CPU and CUDA generators mmengine seeded, so dropout, drop path and other random draws '
                f'will not repeat the uninterrupted run')
        else:
            self._state = states[runner.rank]

    def before_train(self, runner) -> None:
        if runner.seed != self._dataloader_seed:  # Runner.resume adopted the checkpoint's seed
            from mmengine.runner.loops import _InfiniteDataloaderIterator
            runner.logger.info(f'RandomStateHook: rebuilding the train dataloader with the resumed seed '
                               f'{runner.seed} (it was built with {self._dataloader_seed})')
            loop = runner.train_loop
            loop.dataloader = runner.build_dataloader(
                runner._train_dataloader, seed=runner.seed,  # the train_dataloader config
                diff_rank_seed=runner._randomness_cfg.get('diff_rank_seed', False))
            if hasattr(loop, 'dataloader_iterator'):  # IterBasedTrainLoop
                loop.dataloader_iterator = _InfiniteDataloaderIterator(loop.dataloader)
        if self._state is not None:
            state, self._state = self._state, None
            set_rng_state(state)
