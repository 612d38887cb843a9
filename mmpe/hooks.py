"""Training hooks."""
import random

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save the random number generators' states (python, numpy, torch CPU and CUDA) in every
    checkpoint and restore them on resume, so a resumed run draws the same random numbers
    (dropout, drop path, DINO's denoising queries) and the same data as an uninterrupted one,
    whatever seed the resumed run was started with.

    Two things in mmengine 0.10.7's resume need undoing. When the config's seed differs from the
    checkpoint's, ``Runner.resume`` adopts the checkpoint's seed and reseeds every generator
    after the checkpoint hooks have run; so the states are restored at ``before_train``, after
    that. And the train dataloader (sampler order, worker seeds) was built with the config's seed
    before resuming; it is rebuilt with the resumed seed.
    """

    priority = 'VERY_LOW'

    def __init__(self):
        self._state = None
        self._dataloader_seed = None

    def before_run(self, runner) -> None:
        # the train loop and its dataloader are built by now, with this seed; the checkpoint is not loaded yet
        self._dataloader_seed = runner.seed

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['rng_state'] = dict(
            python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state(),
            cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        self._state = checkpoint.get('rng_state')
        if self._state is None:
            runner.logger.warning('RandomStateHook: the checkpoint has no random state; resuming with fresh '
                                  'generators (the run will not repeat an uninterrupted one exactly)')

    def before_train(self, runner) -> None:
        if self._state is None:
            return
        if runner.seed != self._dataloader_seed:
            from mmengine.runner.loops import _InfiniteDataloaderIterator
            runner.logger.info(f'RandomStateHook: rebuilding the train dataloader with the resumed seed '
                               f'{runner.seed} (it was built with {self._dataloader_seed})')
            loop = runner.train_loop
            loop.dataloader = runner.build_dataloader(
                runner._train_dataloader, seed=runner.seed,  # the train_dataloader config
                diff_rank_seed=runner._randomness_cfg.get('diff_rank_seed', False))
            if hasattr(loop, 'dataloader_iterator'):  # IterBasedTrainLoop
                loop.dataloader_iterator = _InfiniteDataloaderIterator(loop.dataloader)
        state, self._state = self._state, None
        random.setstate(state['python'])
        np.random.set_state(state['numpy'])
        torch.set_rng_state(state['torch'])
        if state['cuda'] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state['cuda'])
