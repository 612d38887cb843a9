"""Fixes for running the OpenMMLab 2.x stack (mmengine 0.10.7, mmcv 2.1.0, mmdet 3.3.0,
mmseg 1.2.2; written for torch 2.1) on torch 2.14 and numpy 2.

Everything here is applied once, when ``mmpe`` is imported. Each fix names the upstream
problem it works around; delete it when the upstream release carries the fix.
"""
import logging

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
    scalars; the numpy generator state saved by mmpe.hooks.RandomStateHook)."""
    from mmengine.logging import HistoryBuffer
    HistoryBuffer.__getstate__ = _history_buffer_getstate
    torch.serialization.add_safe_globals([
        HistoryBuffer, np.ndarray, np.dtype, np._core.multiarray._reconstruct, np._core.multiarray.scalar,
        *{type(np.dtype(t)) for t in ('float64', 'float32', 'int64', 'int32', 'uint32', 'uint8', 'bool')},
    ])


def allow_cpu_distributed() -> None:
    """Distributed training on CPU with the gloo backend (torchrun without GPUs).

    mmengine 0.10.7 calls torch.cuda.set_device in its pytorch launcher and passes
    device_ids=[LOCAL_RANK] to DistributedDataParallel, both wrong without CUDA; SyncBN
    (mmseg's default head norm) rejects CPU tensors (torch: "SyncBatchNorm expected input
    tensor to be on GPU"). On a machine without CUDA: init the process group with gloo, wrap
    with device_ids=None, and revert SyncBN to BatchNorm (per-process statistics), each with a
    warning.
    """
    import torch.distributed as torch_dist
    from mmengine.dist import utils as dist_utils
    from mmengine.logging import print_log
    from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm

    init_dist_pytorch = dist_utils._init_dist_pytorch
    ddp_init = MMDistributedDataParallel.__init__

    def _init_dist_pytorch(backend, init_backend='torch', **kwargs):
        if torch.cuda.is_available():
            return init_dist_pytorch(backend, init_backend=init_backend, **kwargs)
        if backend != 'gloo':
            print_log(f'CUDA is not available: distributed backend {backend!r} replaced by gloo', 'current',
                      logging.WARNING)
        torch_dist.init_process_group(backend='gloo', **kwargs)

    def __init__(self, module, detect_anomalous_params=False, **kwargs):
        if not any(p.is_cuda for p in module.parameters()):
            kwargs['device_ids'] = None
            if any(isinstance(m, torch.nn.SyncBatchNorm) for m in module.modules()):
                print_log('SyncBN needs CUDA: reverted to BatchNorm for CPU training', 'current', logging.WARNING)
                module = revert_sync_batchnorm(module)
        ddp_init(self, module, detect_anomalous_params, **kwargs)

    dist_utils._init_dist_pytorch = _init_dist_pytorch
    MMDistributedDataParallel.__init__ = __init__


def apply() -> None:
    """Apply every fix once."""
    global _applied
    if _applied:
        return
    allow_mmengine_checkpoints()
    allow_cpu_distributed()
    _applied = True
