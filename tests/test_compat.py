"""mmpe.engine.compat: mmcv's deformable attention without CUDA kernels, AmpOptimWrapper on CPU, the installed
path of an editable install, each fix only where its defect exists, mmpe without mmcv's compiled ops."""
import importlib.metadata
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from mmcv.ops import MultiScaleDeformableAttention
from mmcv.ops import multi_scale_deform_attn as msda

from mmpe.engine import compat
from mmpe.models import deform_attn

ROOT = Path(__file__).resolve().parents[1]


class FakeCuda(torch.Tensor):
    """A CPU tensor that says it is on CUDA: drives mmcv's CUDA branch on a CPU machine."""

    @property
    def is_cuda(self):
        return True


def deformable_attention_inputs():
    torch.manual_seed(0)
    attn = MultiScaleDeformableAttention(embed_dims=32, num_heads=2, num_levels=2, num_points=2,
                                         batch_first=True).eval()  # no dropout
    with torch.no_grad():  # mmcv zero-initialises the offsets: give them a value
        attn.sampling_offsets.weight.normal_(std=0.1)
    shapes = torch.tensor([[6, 8], [3, 4]])
    starts = torch.tensor([0, 48])
    value = torch.randn(2, 60, 32)
    query = torch.randn(2, 5, 32)
    reference_points = torch.rand(2, 5, 2, 2)
    inputs = dict(query=query, value=value, reference_points=reference_points, spatial_shapes=shapes,
                  level_start_index=starts)
    return attn, inputs


@pytest.fixture
def missing_cuda_kernels(monkeypatch):
    """mmcv as built without CUDA ops on a machine where mmcv takes its CUDA branch, with
    ``import mmpe``'s routing applied (restored afterwards)."""
    monkeypatch.setattr(deform_attn, 'mmcv_has_cuda_ops', lambda: False)
    monkeypatch.setattr(msda, 'MultiScaleDeformableAttnFunction', msda.MultiScaleDeformableAttnFunction)
    monkeypatch.setattr(compat.PyTorchDeformableAttnFunction, 'warned', False)
    monkeypatch.setattr(msda, 'IS_CUDA_AVAILABLE', True)
    kernel = msda.MultiScaleDeformableAttnFunction
    if kernel is compat.PyTorchDeformableAttnFunction:  # already routed by import mmpe (CPU-ops mmcv)
        kernel = compat.PyTorchDeformableAttnFunction.kernel
        monkeypatch.setattr(msda, 'MultiScaleDeformableAttnFunction', kernel)
    return kernel


def run_as_cuda(attn, inputs):
    """Forward with mmcv's projected values reported as CUDA tensors; returns a plain tensor."""
    project = attn.value_proj.forward
    attn.value_proj.forward = lambda x: project(x).as_subclass(FakeCuda)
    try:
        return attn(**inputs).as_subclass(torch.Tensor)
    finally:
        attn.value_proj.forward = project


def test_cuda_tensors_route_to_pytorch_when_mmcv_has_no_cuda_kernels(missing_cuda_kernels, monkeypatch):
    attn, inputs = deformable_attention_inputs()
    with torch.no_grad():
        with pytest.raises(RuntimeError):  # unpatched: mmcv calls its compiled kernel, absent for this device
            run_as_cuda(attn, inputs)
        compat.route_deformable_attention()
        assert msda.MultiScaleDeformableAttnFunction is compat.PyTorchDeformableAttnFunction
        logged = []
        monkeypatch.setattr('mmengine.logging.print_log', lambda msg, *args, **kwargs: logged.append(msg))
        routed = [run_as_cuda(attn, inputs) for _ in range(2)]
        monkeypatch.setattr(msda, 'IS_CUDA_AVAILABLE', False)  # mmcv's own CPU branch: the pytorch function
        expected = attn(**inputs)
    assert len(logged) == 1 and 'mmcv was built without CUDA ops' in logged[0]
    for out in routed:
        torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_other_devices_keep_mmcv_function(monkeypatch):
    """Only CUDA tensors are rerouted; others (mmcv's MLU branch) still reach mmcv's function."""
    calls = []
    monkeypatch.setattr(compat.PyTorchDeformableAttnFunction, 'kernel',
                        SimpleNamespace(apply=lambda *a: calls.append(a)))
    value = torch.zeros(1, 4, 2, 8)
    compat.PyTorchDeformableAttnFunction.apply(value, None, None, None, None, 64)
    assert len(calls) == 1 and calls[0][0] is value


def test_compiled_kernel_kept_when_present(monkeypatch):
    monkeypatch.setattr(deform_attn, 'mmcv_has_cuda_ops', lambda: True)
    monkeypatch.setattr(msda, 'MultiScaleDeformableAttnFunction', compat.PyTorchDeformableAttnFunction.kernel
                        or msda.MultiScaleDeformableAttnFunction)
    kernel = msda.MultiScaleDeformableAttnFunction
    compat.route_deformable_attention()
    assert msda.MultiScaleDeformableAttnFunction is kernel


@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU autocast path: only without a GPU')
def test_amp_optim_wrapper_runs_bfloat16_on_cpu():
    from mmengine.optim import AmpOptimWrapper
    model = torch.nn.Linear(4, 2)
    wrapper = AmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1), dtype='bfloat16')
    before = model.weight.detach().clone()
    with wrapper.optim_context(model):
        out = model(torch.randn(3, 4))
    assert out.dtype == torch.bfloat16
    wrapper.update_params(out.float().square().mean())
    assert not torch.equal(model.weight, before)
    with pytest.raises(ValueError, match="dtype='bfloat16'"):
        AmpOptimWrapper(optimizer=torch.optim.SGD(model.parameters(), lr=0.1), dtype='float16')


def test_runner_compiles_with_plain_param_groups():
    """mmengine's Runner with compile=True: the optimizer's ConfigDict param groups (mmengine's registry
    makes them from a config file) become plain dicts with the same values just before train_step is
    compiled; without compile they stay as they are."""
    from mmengine.config import ConfigDict
    from mmengine.logging import MMLogger
    from mmengine.optim import OptimWrapper
    from mmengine.registry import OPTIMIZERS
    from mmengine.runner import Runner
    for compile_cfg in (False, True):
        param = torch.nn.Parameter(torch.zeros(1))
        optimizer = OPTIMIZERS.build(ConfigDict(type='SGD', lr=0.1, params=[dict(params=[param], lr=0.5)]))
        assert type(optimizer.param_groups[0]) is ConfigDict
        model = SimpleNamespace(train_step=lambda data, optim_wrapper: None)
        runner = SimpleNamespace(cfg=ConfigDict(compile=compile_cfg), optim_wrapper=OptimWrapper(optimizer),
                                 model=model, logger=MMLogger.get_current_instance())
        Runner._maybe_compile(runner, 'train_step')
        group = optimizer.param_groups[0]
        assert type(group) is (dict if compile_cfg else ConfigDict)
        assert group['lr'] == 0.5 and group['params'] == [param]
        assert hasattr(model.train_step, '_torchdynamo_orig_callable') == compile_cfg


def test_logged_scalars_compile_no_new_graphs():
    """A compiled step that logs a float as mmengine's optimizer wrapper logs the gradient norm
    (``message_hub.update_scalar``): new values compile no new graph (traced, ``HistoryBuffer.update``
    guarded on the value: a graph per step), and the log holds every value."""
    from mmengine.logging import MessageHub

    from mmpe.analysis.compilation import count_graphs
    hub = MessageHub.get_instance('test_logged_scalars')

    @torch.compile(backend='eager')
    def step(x):
        norm = x.norm()
        hub.update_scalar('train/grad_norm', float(norm))
        return norm * 2

    inputs = [torch.full((3,), float(i)) for i in range(1, 6)]
    counts = count_graphs(step, inputs)
    assert counts['new_graphs'][2:] == [0, 0, 0], counts
    assert hub.get_scalar('train/grad_norm').data[0].tolist() == pytest.approx([x.norm().item() for x in inputs])


def test_data_preprocessing_compiles_no_new_graphs():
    """A compiled step that starts as a model's ``train_step`` does, with mmseg's data preprocessor
    (device copy of the samples, padding to the crop size, normalisation): new batches of the same
    size compile no new graph (traced, mmengine's copy of the samples guarded on their metainfo's
    identity: a graph per batch), and the preprocessing is unchanged."""
    from mmseg.models import SegDataPreProcessor

    from mmpe.analysis.compilation import count_graphs
    from mmpe.testing import seg_batch
    preprocessor = SegDataPreProcessor(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375],
                                       bgr_to_rgb=True, size=(32, 48), pad_val=0, seg_pad_val=255)

    @torch.compile(backend='eager')
    def step(batch):
        data = preprocessor(batch, True)
        return data['inputs'].mean(), data['data_samples']

    batches = [seg_batch([(3, 32, 40), (3, 30, 48)], seed=i) for i in range(5)]
    counts = count_graphs(lambda batch: step(batch), batches)
    assert counts['new_graphs'][1:] == [0, 0, 0, 0], counts
    mean, samples = step(batches[0])
    eager = preprocessor(batches[0], True)
    torch.testing.assert_close(mean, eager['inputs'].mean())
    assert [s.metainfo for s in samples] == [s.metainfo for s in eager['data_samples']]
    assert all(torch.equal(a.gt_sem_seg.data, b.gt_sem_seg.data) for a, b in zip(samples, eager['data_samples']))


def test_one_column_bf16_convs_finite():
    """CPU bfloat16 autocast convolutions whose output is one column wide (a patch embedding of an
    input one patch wide), run between convolutions of other shapes as a model with varied inputs
    runs them, equal float32's to bfloat16 precision (oneDNN's AMX kernel, which
    ``finite_amx_bf16_convs`` bypasses, gave NaN in about one in five of them)."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 96, 4, stride=4)
    for h in range(4, 260, 4):
        for hw in [(h, w) for w in (4, 8, 16, 64)] + [(w, h) for w in (4, 8, 16, 64)]:
            x = torch.randn(1, 3, *hw)
            with torch.autocast('cpu', dtype=torch.bfloat16):
                out = conv(x)
            if out.shape[-1] == 1:
                torch.testing.assert_close(out.float(), conv(x), atol=0.05, rtol=0.02, msg=f'input {hw}')


@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason='needs a GPU: compares mmcv\'s CUDA kernel with its PyTorch path')
def test_cuda_kernel_matches_pytorch(monkeypatch):
    """On a GPU (tools/check_gpu.sh): mmcv was built with CUDA ops, and its kernel gives the
    outputs and gradients of the pure-PyTorch function."""
    assert deform_attn.mmcv_has_cuda_ops(), 'mmcv has no CUDA ops: run bash tools/setup_env.sh --cuda'
    attn, inputs = deformable_attention_inputs()
    attn.cuda()
    inputs = {k: v.cuda() for k, v in inputs.items()}
    results = []
    for kernel in (True, False):
        monkeypatch.setattr(msda, 'IS_CUDA_AVAILABLE', kernel)
        attn.zero_grad()
        out = attn(**inputs)
        out.square().sum().backward()
        results.append([out] + [p.grad for p in attn.parameters()])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter (this repository on the path), its output; fails on a non-zero exit."""
    proc = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT), **env), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def mmpe_is_editable() -> bool:
    """True when mmpe's installed distribution does not hold the package (pip install -e, PEP 660)."""
    return not Path(importlib.metadata.distribution('mmpe').locate_file('mmpe')).is_dir()


@pytest.mark.skipif(torch.cuda.is_available(), reason='expects the fixes of a machine without a GPU')
def test_fixes_in_effect_on_a_cpu_machine():
    """Here (torch 2.14, mmengine 0.10.7, an mmcv with CPU ops, no GPU) every fix but the deformable
    attention routing (mmcv takes its CUDA branch only when torch sees a GPU) has a defect to fix,
    and mmpe's editable install (tools/setup_env.sh) the one of mmengine's get_installed_path."""
    expected = ['allow_mmengine_checkpoints', 'allow_cpu_distributed', 'allow_cpu_bf16_amp', 'weight_ignored_pixels']
    expected += ['locate_editable_installs'] if mmpe_is_editable() else []
    expected += ['compile_plain_param_groups', 'eager_scalar_logs', 'eager_data_preprocessing']
    expected += ['finite_amx_bf16_convs'] if torch.cpu._is_amx_tile_supported() else []
    assert compat.APPLIED == expected
    assert compat.mmengine_checkpoints_load()
    assert compat.class_weight_ignores_pixels()
    compat.apply()  # once per process
    assert compat.APPLIED == expected


def test_installed_path_of_an_editable_install():
    """mmengine's get_installed_path (where 'mmpe::' / 'mmdet::' configs are looked for) gives the
    directory mmpe is imported from, also for the editable install; other packages' paths as before."""
    import mmdet
    from mmengine.config import config as mmengine_config
    from mmengine.utils import get_installed_path

    import mmpe
    assert get_installed_path('mmpe') == mmengine_config.get_installed_path('mmpe') == str(Path(mmpe.__file__).parent)
    assert get_installed_path('mmdet') == str(Path(mmdet.__file__).parent)


def test_no_fix_where_its_defect_is_absent():
    """A stack with none of the defects: torch.load not defaulting to weights_only (as before torch
    2.6), a GPU, mmcv with CUDA ops, mmpe installed from a wheel, optimizers keeping plain-dict param
    groups. ``import mmpe`` then changes nothing in mmengine, mmcv or torch (but its registrations)."""
    proc = run_python('''
        import importlib.util, os
        import torch
        torch.cuda.is_available = lambda: True        # a GPU machine
        torch.cpu._is_amx_tile_supported = lambda: False   # a CPU without AMX (no oneDNN AMX convolution)
        from mmengine.config import ConfigDict
        # an mmengine whose ConfigDict keeps nested dicts plain (as the optimizer's param groups)
        ConfigDict.__init__ = lambda self, *args, **kwargs: dict.__init__(self, *args, **kwargs)
        from mmengine.runner import Runner
        import mmcv.ops
        mmcv.ops.get_compiling_cuda_version = lambda: '13.0'   # mmcv built with CUDA ops
        from mmcv.ops import multi_scale_deform_attn as msda
        from mmengine.dist import utils as dist_utils
        from mmengine.logging import HistoryBuffer
        HistoryBuffer.update = torch.compiler.disable(HistoryBuffer.update)  # an mmengine whose logs are not traced
        from mmengine.model import BaseDataPreprocessor   # ... nor its copies of the data samples
        BaseDataPreprocessor.cast_data = torch.compiler.disable(BaseDataPreprocessor.cast_data)
        from mmengine.model import MMDistributedDataParallel
        from mmengine.optim import AmpOptimWrapper
        import torch.nn.functional as F
        from mmseg.models.losses import cross_entropy_loss
        def fixed_cross_entropy(pred, label, weight=None, class_weight=None, reduction='mean', avg_factor=None,
                                ignore_index=-100, avg_non_ignore=False):   # an mmseg without the defect
            return F.cross_entropy(pred, label, weight=class_weight, ignore_index=ignore_index)
        cross_entropy_loss.cross_entropy = fixed_cross_entropy
        from mmengine.utils import package_utils
        stock_installed_path = package_utils.get_installed_path
        package_utils.get_installed_path = lambda package: (  # a regular (not editable) install of mmpe
            os.path.dirname(importlib.util.find_spec(package).origin) if package == 'mmpe'
            else stock_installed_path(package))
        def state():
            return (dist_utils._init_dist_pytorch, MMDistributedDataParallel.__init__, AmpOptimWrapper.__init__,
                    HistoryBuffer.__getstate__, HistoryBuffer.update, msda.MultiScaleDeformableAttnFunction,
                    BaseDataPreprocessor.cast_data, torch.nn.Conv2d._conv_forward,
                    cross_entropy_loss.cross_entropy,
                    package_utils.get_installed_path, Runner._maybe_compile,
                    # torch registers its own (DTensor ...) as its modules load: the others
                    [g for g in torch.serialization.get_safe_globals() if not repr(g).startswith("<class 'torch.")])
        before = state()
        import mmpe
        from mmpe.engine import compat
        assert state() == before, (before, state())
        print('applied:', compat.APPLIED)
    ''', TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD='1')
    assert proc.stdout.strip() == 'applied: []'


@pytest.mark.parametrize('ignored', [0, 7])
def test_class_weighted_loss_with_ignored_pixels(ignored):
    """mmseg's CrossEntropyLoss with class weights on a label map holding 255 (padding to the crop size)
    equals PyTorch's weighted mean over the pixels that are not ignored; without ignored pixels, the value
    mmseg's own formula gives, sum(w[y] ce) / sum(w[y])."""
    from mmseg.models.losses import CrossEntropyLoss  # the class itself: a default scope left at mmdet
    torch.manual_seed(0)                                # (by an earlier test) would build mmdet's from MODELS
    weights = [0.25, 1.0, 2.0]
    loss = CrossEntropyLoss(loss_weight=1.0, class_weight=weights)
    pred, label = torch.randn(2, 3, 4, 5), torch.randint(0, 3, (2, 4, 5))
    label.view(-1)[:ignored] = 255
    expected = torch.nn.functional.cross_entropy(pred, label, weight=torch.tensor(weights), ignore_index=255)
    if not ignored:
        per_pixel = torch.nn.functional.cross_entropy(pred, label, reduction='none')
        w = torch.tensor(weights)[label]
        assert torch.allclose(expected, (w * per_pixel).sum() / w.sum())
    assert torch.allclose(loss(pred, label, ignore_index=255), expected)


def test_pos_embed_and_backbones_import_without_mmcv_compiled_ops():
    """mmcv without its compiled ``_ext`` (e.g. mmcv-lite): the pure-PyTorch encodings and the
    backbones import and run; only mmcv.ops (DINO's deformable attention) is missing."""
    proc = run_python('''
        import importlib.abc, sys
        class NoCompiledOps(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name == 'mmcv._ext':
                    raise ImportError('mmcv._ext is not built')
        sys.meta_path.insert(0, NoCompiledOps())
        import torch
        from mmpe.pos_embed import build_pos_embed
        rope = build_pos_embed(dict(type='rope_mixed'), 'attention', num_heads=4, head_dim=16)
        print(tuple(rope.rotate(torch.randn(1, 4, 6, 16), (2, 3)).shape))
        from mmpe.models import PESwinTransformer
        swin = PESwinTransformer(embed_dims=32, depths=(1, 1), num_heads=(2, 4), strides=(4, 2), out_indices=(1,))
        print(tuple(swin(torch.randn(1, 3, 64, 96))[0].shape))
        from mmpe.engine import compat
        print('applied:', compat.APPLIED)
        try:
            import mmcv.ops
        except ImportError as err:
            print('mmcv.ops:', err)
    ''')
    lines = proc.stdout.strip().splitlines()
    assert lines[:2] == ['(1, 4, 6, 16)', '(1, 64, 8, 12)'], proc.stdout
    assert 'route_deformable_attention' not in lines[2]
    assert lines[3] == 'mmcv.ops: mmcv._ext is not built'
