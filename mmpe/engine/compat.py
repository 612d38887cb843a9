"""Fixes for running the OpenMMLab 2.x stack (mmengine 0.10.7, mmcv 2.1.0, mmdet 3.3.0,
mmseg 1.2.2; written for torch 2.1) on torch 2.14 and numpy 2.

``apply`` runs when ``mmpe`` is imported. Each fix checks that its defect exists on this stack (a
feature check, not a version list) and changes nothing otherwise; applying twice changes nothing
more. ``APPLIED`` names the fixes in effect. Each fix names the upstream problem it works around;
delete it when the upstream release carries the fix. docs/user_guides/compatibility.md lists them.
"""
import importlib.util
import io
import logging
import os.path as osp
import pickle
import sys
from typing import List, Optional

import numpy as np
import torch

# Names of the fixes ``apply`` has put in effect in this process.
APPLIED: List[str] = []
_applied = False


def _history_buffer_getstate(self) -> dict:
    """Pickle a HistoryBuffer as its data only. Upstream (mmengine/logging/history_buffer.py)
    also pickles the class-level statistics functions, which torch.load(weights_only=True)
    cannot load; they are re-registered on the class at import anyway."""
    return {k: v for k, v in self.__dict__.items() if k != 'statistics_methods'}


def mmengine_checkpoints_load() -> bool:
    """Whether ``torch.load(f, map_location)``, the call mmengine 0.10.7's checkpoint loaders make
    (mmengine/runner/checkpoint.py), reads back what mmengine's message hub saves: a HistoryBuffer
    of numpy values."""
    from mmengine.logging import HistoryBuffer
    buffer = io.BytesIO()
    torch.save({'log_scalars': {'loss': HistoryBuffer([np.float64(1.0)], [1])}}, buffer)
    buffer.seek(0)
    try:
        torch.load(buffer, map_location='cpu')
        return True
    except pickle.UnpicklingError:
        return False


def allow_mmengine_checkpoints() -> bool:
    """torch >= 2.6 loads with weights_only=True, and mmengine 0.10.7 calls torch.load without
    weights_only, so ``--resume`` fails with "Unsupported global ... HistoryBuffer"
    (open-mmlab/mmengine#1655, fixed only on mmengine's main). Where that happens
    (``mmengine_checkpoints_load``), keep the safe loader and allow exactly what mmengine's
    checkpoints hold: HistoryBuffer logs, numpy arrays, scalars and dtypes (``NUMPY_GLOBALS``,
    also as numpy 1.x pickled them; the numpy generator state saved by mmpe.engine.hooks.RandomStateHook),
    and drop the statistics functions HistoryBuffer pickles."""
    if mmengine_checkpoints_load():
        return False
    from mmengine.logging import HistoryBuffer

    from ..converters.checkpoint import NUMPY_GLOBALS
    if 'statistics_methods' in HistoryBuffer([1.0], [1]).__getstate__():
        HistoryBuffer.__getstate__ = _history_buffer_getstate
    torch.serialization.add_safe_globals([HistoryBuffer, *NUMPY_GLOBALS])
    return True


def allow_cpu_distributed() -> bool:
    """Distributed training on CPU with the gloo backend (torchrun without GPUs).

    mmengine 0.10.7 calls torch.cuda.set_device in its pytorch launcher and passes
    device_ids=[LOCAL_RANK] to DistributedDataParallel, both wrong without CUDA; SyncBN
    (mmseg's default head norm) rejects CPU tensors (torch: "SyncBatchNorm expected input
    tensor to be on GPU"). On a machine without CUDA only: init the process group with gloo,
    wrap CPU modules with device_ids=None, and revert SyncBN to BatchNorm (per-process
    statistics), each with a warning.
    """
    if torch.cuda.is_available():
        return False
    import torch.distributed as torch_dist
    from mmengine.dist import utils as dist_utils
    from mmengine.logging import print_log
    from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm

    ddp_init = MMDistributedDataParallel.__init__

    def _init_dist_pytorch(backend, init_backend='torch', **kwargs):
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
    return True


class PyTorchDeformableAttnFunction:
    """Stands in for mmcv's ``MultiScaleDeformableAttnFunction`` (same ``apply`` arguments) when
    mmcv has no CUDA kernels: CUDA tensors go to mmcv's pure-PyTorch
    ``multi_scale_deformable_attn_pytorch`` (same result; more memory and time), with one
    warning; other devices (MLU) keep mmcv's compiled function."""

    kernel = None  # mmcv's MultiScaleDeformableAttnFunction, set by route_deformable_attention
    warned = False

    @classmethod
    def apply(cls, value, spatial_shapes, level_start_index, sampling_locations, attention_weights, im2col_step):
        """value (B, N_v, heads, C/heads), sampling_locations (B, N_q, heads, levels, points, 2),
        attention_weights (B, N_q, heads, levels, points) -> (B, N_q, C)."""
        from mmcv.ops.multi_scale_deform_attn import multi_scale_deformable_attn_pytorch
        from mmengine.logging import print_log
        if not value.is_cuda:
            return cls.kernel.apply(value, spatial_shapes, level_start_index, sampling_locations,
                                    attention_weights, im2col_step)
        if not cls.warned:
            print_log('mmcv was built without CUDA ops: MultiScaleDeformableAttention runs mmcv\'s pure-PyTorch '
                      'multi_scale_deformable_attn_pytorch on CUDA tensors (slower, more memory). Build mmcv '
                      'with CUDA ops: bash tools/setup_env.sh --cuda', 'current', logging.WARNING)
            cls.warned = True
        return multi_scale_deformable_attn_pytorch(value, spatial_shapes, sampling_locations, attention_weights)


def route_deformable_attention() -> bool:
    """mmcv's ``MultiScaleDeformableAttention.forward`` calls its compiled CUDA kernel
    (``MultiScaleDeformableAttnFunction.apply``) for every CUDA tensor when torch sees a GPU
    (mmcv/ops/multi_scale_deform_attn.py: ``if IS_CUDA_AVAILABLE and value.is_cuda``). An mmcv
    built without CUDA ops (e.g. on a login node without a GPU) has no such kernel, so DINO fails
    in its first step on a GPU. For such a build on a GPU machine only, replace the function that
    forward calls (``PyTorchDeformableAttnFunction``). Nothing to do without mmcv's compiled ops
    (mmcv-lite: no deformable attention at all), with CUDA kernels, or without a GPU."""
    try:
        from mmcv.ops import multi_scale_deform_attn

        from ..models import deform_attn
        has_cuda_ops = deform_attn.mmcv_has_cuda_ops()
    except ImportError:  # no compiled mmcv._ext
        return False
    if has_cuda_ops or not multi_scale_deform_attn.IS_CUDA_AVAILABLE \
            or multi_scale_deform_attn.MultiScaleDeformableAttnFunction is PyTorchDeformableAttnFunction:
        return False
    PyTorchDeformableAttnFunction.kernel = multi_scale_deform_attn.MultiScaleDeformableAttnFunction
    multi_scale_deform_attn.MultiScaleDeformableAttnFunction = PyTorchDeformableAttnFunction
    return True


def allow_cpu_bf16_amp() -> bool:
    """mmengine's AmpOptimWrapper (``tools/train.py --amp``) asserts a GPU, although mmengine's
    autocast runs on CPU with bfloat16. Without an accelerator only, accept
    ``AmpOptimWrapper(dtype='bfloat16')`` (CPU autocast; bfloat16 needs no loss scaling, so the
    loss scaler is disabled) and reject other dtypes with a clear error."""
    from mmengine.device import is_cuda_available, is_mlu_available, is_musa_available, is_npu_available
    from mmengine.optim import AmpOptimWrapper, OptimWrapper
    if is_cuda_available() or is_npu_available() or is_mlu_available() or is_musa_available():
        return False

    def __init__(self, loss_scale='dynamic', dtype=None, use_fsdp=False, **kwargs):
        if dtype not in ('bfloat16', torch.bfloat16):
            raise ValueError(f'AmpOptimWrapper without a GPU runs CPU autocast, which needs dtype=\'bfloat16\' '
                             f'(e.g. --cfg-options optim_wrapper.dtype=bfloat16); got dtype={dtype!r}')
        OptimWrapper.__init__(self, **kwargs)
        self._scale_update_param = None
        self.loss_scaler = torch.amp.GradScaler('cpu', enabled=False)
        self.cast_dtype = torch.bfloat16

    AmpOptimWrapper.__init__ = __init__
    return True


def class_weight_ignores_pixels() -> bool:
    """Whether mmseg's ``cross_entropy`` with a ``class_weight`` accepts labels holding ``ignore_index``
    (the 255 that padding to the crop size writes into label maps)."""
    from mmseg.models.losses import cross_entropy_loss
    try:
        cross_entropy_loss.cross_entropy(torch.zeros(1, 2, 1, 2), torch.tensor([[[0, 255]]]),
                                         class_weight=torch.ones(2), ignore_index=255)
        return True
    except IndexError:
        return False


def weight_ignored_pixels() -> bool:
    """mmseg 1.2.2's ``cross_entropy`` (mmseg/models/losses/cross_entropy_loss.py) averages a
    class-weighted loss over ``torch.stack([class_weight[cls] for cls in label])``, which indexes the
    class weights with the ignored label too: any ignored pixel (mmseg's own padding of label maps to
    the crop size writes 255) fails with "IndexError: index 255 is out of bounds"
    (open-mmlab/mmsegmentation#3734, #3831; PR #3457 unmerged). Where that happens
    (``class_weight_ignores_pixels``), hand mmseg the average factor it meant, the sum of the class
    weights of the pixels that are not ignored: F.cross_entropy's own weighted mean, and exactly
    mmseg's value for labels without ignored pixels. Ignored pixels weigh 0 whatever
    ``avg_non_ignore`` says (a class weight for them does not exist). Nothing to do without mmseg's models
    (e.g. mmcv without its compiled ops, which mmseg.models imports)."""
    try:
        if class_weight_ignores_pixels():
            return False
    except ImportError:
        return False
    from mmseg.models.losses import cross_entropy_loss
    upstream = cross_entropy_loss.cross_entropy

    def cross_entropy(pred, label, weight=None, class_weight=None, reduction='mean', avg_factor=None,
                      ignore_index=-100, avg_non_ignore=False):
        if class_weight is not None and avg_factor is None and reduction == 'mean':
            valid = label != ignore_index
            avg_factor = torch.where(valid, class_weight[label.where(valid, 0)], 0).sum()
        return upstream(pred, label, weight, class_weight, reduction, avg_factor, ignore_index, avg_non_ignore)

    cross_entropy_loss.cross_entropy = cross_entropy
    return True


def _import_dir(package: str) -> Optional[str]:
    """The directory ``package`` is imported from, or None when it does not import as a package."""
    spec = importlib.util.find_spec(package)
    return osp.dirname(spec.origin) if spec is not None and spec.origin is not None else None


def locate_editable_installs() -> bool:
    """mmengine 0.10.7's ``get_installed_path`` (mmengine/utils/package_utils.py), which finds the
    ``.mim/configs`` of ``'mmpe::'`` / ``'mmdet::'`` names, joins the distribution's location with the
    package name. For an editable install (``pip install -e``, PEP 660: tools/setup_env.sh) the
    location is site-packages while the package stays in its source tree, so the path does not exist
    and every config name of the package fails. Where that happens for mmpe, return the directory
    the package is imported from whenever the joined path does not exist."""
    from mmengine.utils import package_utils
    stock = package_utils.get_installed_path
    if osp.isdir(stock('mmpe')):
        return False

    def get_installed_path(package: str) -> str:
        path = stock(package)
        return path if osp.isdir(path) else _import_dir(package) or path

    for name in ('mmengine.utils.package_utils', 'mmengine.utils', 'mmengine.config.config', 'mmengine.hub.hub'):
        module = sys.modules.get(name)
        if module is not None and getattr(module, 'get_installed_path', None) is stock:
            module.get_installed_path = get_installed_path
    return True


def compile_plain_param_groups() -> bool:
    """mmengine's Runner with ``compile=True`` compiles ``model.train_step``, the optimizer step
    included, and mmengine's optimizer constructor hands torch ``ConfigDict`` param groups (its registry
    turns every dict of the optimizer config into one); dynamo (torch 2.14) fails on them while tracing
    torch.optim's step ("'UserDefinedDictVariable' object has no attribute 'items'"), so the first
    iteration raises. Where the constructor gives such groups: just before the Runner compiles, every
    param group becomes a plain dict (same keys, same values). Resumed optimizers already have plain
    dicts (``Optimizer.load_state_dict`` rebuilds the groups)."""
    from mmengine.config import ConfigDict
    from mmengine.optim import OptimWrapperDict
    from mmengine.runner import Runner
    # DefaultOptimWrapperConstructor puts its list of group dicts into the optimizer's ConfigDict config
    if type(ConfigDict(params=[{}]).params[0]) is dict:
        return False
    maybe_compile = Runner._maybe_compile

    def _maybe_compile(self, target: str) -> None:
        if self.cfg.get('compile'):
            wrappers = self.optim_wrapper.values() if isinstance(self.optim_wrapper, OptimWrapperDict) \
                else [self.optim_wrapper]
            for wrapper in wrappers:
                groups = wrapper.optimizer.param_groups
                groups[:] = [dict(group) for group in groups]
        maybe_compile(self, target)

    Runner._maybe_compile = _maybe_compile
    return True


def eager_scalar_logs() -> bool:
    """mmengine's Runner with ``compile=True`` compiles ``model.train_step``, and its optimizer wrapper
    logs the gradient norm there (``OptimWrapper._clip_grad``: ``message_hub.update_scalar``, a
    ``HistoryBuffer.update`` that appends the float to a numpy array). Dynamo traces that numpy code
    and guards on the logged value, so it compiles again at every clipped step until its cache limit.
    Where ``HistoryBuffer.update`` is traced: it runs eagerly (``torch.compiler.disable``); eager
    runs do not change."""
    from mmengine.logging import HistoryBuffer
    if getattr(HistoryBuffer.update, '_torchdynamo_disable', False):
        return False
    HistoryBuffer.update = torch.compiler.disable(HistoryBuffer.update)
    return True


def eager_data_preprocessing() -> bool:
    """A model's ``train_step`` (what the Runner compiles with ``compile=True``) starts with its data
    preprocessor, whose ``cast_data`` moves every data sample to the device (``BaseDataElement.to``:
    ``new()`` deep-copies the metainfo). Dynamo traces the copy and guards on the identity of each
    sample's metainfo values, new objects at every batch: a new graph for every batch (mmseg's UperNet,
    mmdet's models) until the recompile limit. Where ``cast_data`` is traced: it runs eagerly
    (``torch.compiler.disable``); eager runs do not change."""
    from mmengine.model import BaseDataPreprocessor
    if getattr(BaseDataPreprocessor.cast_data, '_torchdynamo_disable', False):
        return False
    BaseDataPreprocessor.cast_data = torch.compiler.disable(BaseDataPreprocessor.cast_data)
    return True


def finite_amx_bf16_convs() -> bool:
    """oneDNN 3.12's AMX bfloat16 convolution (``brg_conv_fwd:avx10_1_512_amx``, torch 2.14.1 on a CPU
    with AMX) sometimes writes NaN or garbage when the output is one column wide (output width 1: a
    patch embedding of an input at most one patch wide, a neck conv on a 1-wide map). It depends on
    the convolutions run before, so it comes and goes (about one call in five in
    tests/test_compat.py's sequence). Where the CPU has AMX: a bfloat16 CPU ``nn.Conv2d`` whose
    output is one column wide is computed again in float32 and cast back to bfloat16; every other
    convolution is unchanged."""
    if not (torch.backends.mkldnn.is_available() and torch.cpu._is_amx_tile_supported()):
        return False
    conv_forward = torch.nn.Conv2d._conv_forward
    if getattr(conv_forward, '_mmpe_one_column_fp32', False):
        return False

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]):
        out = conv_forward(self, input, weight, bias)
        if out.shape[-1] == 1 and out.dtype == torch.bfloat16 and out.device.type == 'cpu':
            with torch.autocast('cpu', enabled=False):
                out = conv_forward(self, input.float(), weight.float(),
                                   None if bias is None else bias.float()).to(torch.bfloat16)
        return out

    _conv_forward._mmpe_one_column_fp32 = True
    torch.nn.Conv2d._conv_forward = _conv_forward
    return True


FIXES = (allow_mmengine_checkpoints, allow_cpu_distributed, route_deformable_attention, allow_cpu_bf16_amp,
         weight_ignored_pixels, locate_editable_installs, compile_plain_param_groups, eager_scalar_logs,
         eager_data_preprocessing, finite_amx_bf16_convs)


def apply() -> None:
    """Apply, once per process, every fix whose defect exists here; their names go to ``APPLIED``."""
    global _applied
    if not _applied:
        APPLIED.extend(fix.__name__ for fix in FIXES if fix())
        _applied = True
