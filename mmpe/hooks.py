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
    (dropout, drop path, DINO's denoising queries) as an uninterrupted one.

    mmengine reseeds at start but does not restore generator states on resume. Data-loading
    randomness is already reproduced by mmengine (seeded workers, skipped batches) when
    ``num_workers > 0``.
    """

    priority = 'VERY_LOW'

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['rng_state'] = dict(
            python=random.getstate(), numpy=np.random.get_state(), torch=torch.get_rng_state(),
            cuda=torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [])

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('rng_state')
        if state is None:
            runner.logger.warning('RandomStateHook: the checkpoint has no random state; resuming with fresh '
                                  'generators (the run will not repeat an uninterrupted one exactly)')
            return
        random.setstate(state['python'])
        np.random.set_state(state['numpy'])
        torch.set_rng_state(state['torch'])
        if state['cuda'] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state['cuda'])
