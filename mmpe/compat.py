"""Fixes for running the OpenMMLab 2.x stack (mmengine 0.10.7, mmcv 2.1.0, mmdet 3.3.0,
mmseg 1.2.2; written for torch 2.1) on torch 2.14 and numpy 2.

Everything here is applied once, when ``mmpe`` is imported. Each fix names the upstream
problem it works around; delete it when the upstream release carries the fix.
"""
import numpy as np
import torch

_applied = False


def _history_buffer_getstate(self) -> dict:
    """Pickle a HistoryBuffer as its data only. Upstream (mmengine/logging/history_buffer.py)
    also pickles the class-level statistics functions, which torch.load(weights_only=True)
    cannot load; they are re-registered on the class at import anyway."""
    return {k: v for k, v in self.__dict__.items() if k != 'statistics_methods'}


def allow_mmengine_checkpoints() -> None:
    """torch >= 2.6 loads with weights_only=True, and mmengine 0.10.7 calls torch.load without
    weights_only, so ``--resume`` fails with "Unsupported global ... HistoryBuffer"
    (open-mmlab/mmengine#1655, fixed only on mmengine's main). Keep the safe loader and
    allow exactly what mmengine's checkpoints hold: HistoryBuffer logs (numpy arrays and
    scalars)."""
    from mmengine.logging import HistoryBuffer
    HistoryBuffer.__getstate__ = _history_buffer_getstate
    torch.serialization.add_safe_globals([
        HistoryBuffer, np.ndarray, np.dtype, np._core.multiarray._reconstruct, np._core.multiarray.scalar,
        *{type(np.dtype(t)) for t in ('float64', 'float32', 'int64', 'int32', 'bool')},
    ])


def apply() -> None:
    """Apply every fix once."""
    global _applied
    if _applied:
        return
    allow_mmengine_checkpoints()
    _applied = True
