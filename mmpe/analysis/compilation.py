"""``torch.compile`` of whole models: where dynamo breaks the graph (per part of a detector or a
segmentor), how many graphs it compiles over changing input sizes, and training steps of a config
as mmengine's Runner runs them, eager or compiled as its ``compile=True`` does."""
import random
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
from torch._dynamo.utils import counters

from ..testing import build_model, det_batch, seg_batch
from .benchmark import peak_memory_mb, time_interleaved

# The submodules of an mmdet detection transformer (DINO) that must compile without graph breaks.
DETECTOR_PARTS = ('backbone', 'neck', 'encoder', 'decoder')
# Profiler names of the operators compiling leaves to the same library kernels on CPU (inductor calls
# them as extern kernels): matrix products, convolutions (oneDNN, also inductor's fused mkldnn:: ones)
# and the fused attention kernel.
MATMUL_OPS = ('aten::mm', 'aten::addmm', 'aten::bmm', 'aten::baddbmm', 'aten::_addmm_activation')
MATMUL_NAME_PARTS = ('convolution', 'scaled_dot_product', 'flash_attention', 'mkldnn::')
# mmpe's deformable attention operator (its forward and backward): opaque to the compiler.
DEFORM_ATTN_OPS = ('mmpe::ms_deform_attn', 'mmpe::ms_deform_attn_backward')
# The profiler event of a call of an inductor-compiled graph: its own time is the generated kernels'.
COMPILED_GRAPH_EVENT = '## Call CompiledFxGraph'


def dino_sizes(num: int, seed: int = 0) -> List[Tuple[int, int]]:
    """(H, W) of DINO's multi-scale resize: short side in 480..800 (step 32), long side <= 1333,
    aspect ratio of a random COCO-like image (3:4 .. 16:9), either orientation."""
    rng = random.Random(seed)
    sizes = []
    for _ in range(num):
        short, aspect = rng.choice(range(480, 801, 32)), rng.uniform(4 / 3, 16 / 9)
        long = min(1333, round(short * aspect))
        sizes.append((short, long) if rng.random() < 0.7 else (long, short))
    return sizes


def part_inputs(model: torch.nn.Module, forward: Callable[[], object],
                parts: Sequence[str]) -> Dict[str, Tuple[tuple, dict]]:
    """The (args, kwargs) each submodule ``model.<part>`` is called with during ``forward()``
    (its last call), e.g. a detector's encoder inputs from one loss forward."""
    captured = {}

    def hook(part):
        def capture(module, args, kwargs):
            captured[part] = (args, kwargs)
        return capture

    handles = [getattr(model, part).register_forward_pre_hook(hook(part), with_kwargs=True) for part in parts]
    try:
        forward()
    finally:
        for handle in handles:
            handle.remove()
    missing = [part for part in parts if part not in captured]
    if missing:
        raise ValueError(f'parts {missing} of {type(model).__name__} were not called by the forward')
    return captured


def break_sites(explanation) -> List[str]:
    """One line per graph break of a ``torch._dynamo.explain`` result: the innermost user frame
    ('<path after site-packages/>:<line> <function>') and the first line of dynamo's reason."""
    sites = []
    for reason in explanation.break_reasons:
        frame = reason.user_stack[-1] if reason.user_stack else None
        where = f'{frame.filename.split("site-packages/")[-1]}:{frame.lineno} {frame.name}' if frame else '?'
        sites.append(f'{where}: {reason.reason.strip().splitlines()[0]}')
    return sites


def explain_parts(model: torch.nn.Module, forward: Callable[[], object], parts: Sequence[str]) -> List[dict]:
    """``torch._dynamo.explain`` of each part of ``model`` on the inputs it gets in ``forward()``:
    rows with part, graphs, graph_breaks and break_sites (see ``break_sites``)."""
    rows = []
    for part, (args, kwargs) in part_inputs(model, forward, parts).items():
        torch._dynamo.reset()
        explanation = torch._dynamo.explain(getattr(model, part))(*args, **kwargs)
        rows.append(dict(part=part, graphs=explanation.graph_count, graph_breaks=explanation.graph_break_count,
                         break_sites=break_sites(explanation)))
    return rows


def explain_whole(forward: Callable[[], object]) -> dict:
    """``torch._dynamo.explain`` of ``forward()`` (e.g. a detector's loss forward): graphs,
    graph_breaks and break_sites."""
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(forward)()
    return dict(graphs=explanation.graph_count, graph_breaks=explanation.graph_break_count,
                break_sites=break_sites(explanation))


def count_graphs(step: Callable[[object], object], inputs: Iterable) -> dict:
    """Run ``step(x)`` (which calls a ``torch.compile``-d model) for each x of ``inputs`` after
    ``torch._dynamo.reset()``; returns the graphs dynamo compiled for each input (``new_graphs``, a list)
    and the graph breaks it met in all (``graph_breaks``)."""
    torch._dynamo.reset()
    counters.clear()
    new_graphs = []
    for x in inputs:
        before = counters['stats']['unique_graphs']
        step(x)
        new_graphs.append(counters['stats']['unique_graphs'] - before)
    return dict(new_graphs=new_graphs, graph_breaks=sum(counters['graph_break'].values()))


def config_model(config: str, options: Optional[dict] = None, device='cpu'):
    """(cfg, model, optim_wrapper) of a config file with ``options`` merged (``Config.merge_from_dict``):
    the model built and initialised as the Runner does, but without pretrained backbone weights
    (``init_cfg=None``), on ``device``; the config's optimizer wrapper, its param groups plain dicts
    (as the Runner's with ``compile=True``: mmpe.engine.compat.compile_plain_param_groups)."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(dict(options or {}, **{'model.backbone.init_cfg': None}))
    model = build_model(cfg.model, cfg.default_scope).to(device)
    return cfg, model, build_optim_wrapper(model, cfg.optim_wrapper.to_dict())


def config_batch(cfg, image_shapes: Sequence[Tuple[int, int, int]], num_items: Optional[Sequence[int]] = None) -> dict:
    """A random batch for ``cfg``'s model: mmdet (boxes, ``num_items`` per image) or mmseg (label maps)."""
    if cfg.default_scope == 'mmdet':
        return det_batch(image_shapes, num_classes=cfg.model.bbox_head.num_classes, num_items=num_items)
    return seg_batch(image_shapes, num_classes=cfg.model.decode_head.num_classes)


def train_step_case(config: str, image_shapes: Sequence[Tuple[int, int, int]], backend: Optional[str],
                    options: Optional[dict] = None, device='cpu') -> Callable[[], dict]:
    """A zero-argument training step of ``config``'s model (seed 0) on one random batch, as mmengine's
    Runner runs it: ``model.train_step(batch, optim_wrapper)`` (preprocessing, loss forward, backward,
    optimizer step); eager when ``backend`` is None, else through ``torch.compile(model.train_step,
    backend=backend)``, what the Runner's ``compile=True`` (inductor) does."""
    torch.manual_seed(0)
    cfg, model, optim_wrapper = config_model(config, options, device)
    batch = config_batch(cfg, image_shapes)
    step = model.train_step if backend is None else torch.compile(model.train_step, backend=backend)
    return lambda: step(batch, optim_wrapper)


def eager_vs_compiled(config: str, image_shapes: Sequence[Tuple[int, int, int]], options: Optional[dict] = None,
                      device='cpu', warmup: int = 1, repeats: int = 5, memory: bool = True,
                      backend: str = 'inductor', profile: bool = False) -> List[dict]:
    """Training steps of ``config`` eager and compiled with ``backend`` (``train_step_case``), same weights
    and batch, timed in one process (``time_interleaved``: median of ``repeats``): rows with mode, step_s,
    first_step_s (the first call; compiled: includes compilation), compile_s (first_step_s - step_s),
    and peak_mb, the peak memory of one step above what the model and optimizer hold
    (``peak_memory_mb``: on CPU in a fresh process per mode). ``profile``: also where one more step
    of each mode spends its time (``step_time_shares``, its keys prefixed ``profiled_``)."""
    steps, first = {}, {}
    backends = {'eager': None, 'compiled': backend}
    for mode in backends:
        steps[mode] = train_step_case(config, image_shapes, backends[mode], options, device)
        start = time.perf_counter()
        steps[mode]()
        first[mode] = time.perf_counter() - start
    medians = time_interleaved(steps, warmup, repeats, device)
    rows = []
    for mode, seconds in medians.items():
        row = dict(mode=mode, step_s=seconds, first_step_s=first[mode], compile_s=first[mode] - seconds)
        if profile:
            row.update({f'profiled_{key}': value for key, value in step_time_shares(steps[mode]).items()})
        if memory:
            row['peak_mb'] = peak_memory_mb(device, train_step_case, config, image_shapes, backends[mode], options,
                                            device)
        rows.append(row)
    return rows


def is_matmul_or_conv(name: str) -> bool:
    """Whether a profiler event ``name`` is a matrix product, convolution or fused attention kernel."""
    return name in MATMUL_OPS or any(part in name for part in MATMUL_NAME_PARTS)


def step_time_shares(step: Callable[[], object]) -> Dict[str, float]:
    """Where one call of ``step()`` spends its wall time, in seconds (torch.profiler, CPU):
    matmul_conv_s (operators' own time in matrix products, convolutions and fused attention:
    ``is_matmul_or_conv``, the library kernels compiling calls as eager does), deform_attn_s (mmpe's
    deformable attention operator, forward and backward, all inside it), compiled_kernels_s (the code
    inductor generated: its compiled graphs' own time), other_ops_s (every other operator's own time:
    elementwise, reductions, copies, indexing) and outside_ops_s (wall time no operator covers: Python,
    numpy / scipy, the profiler's own overhead); they add up to wall_s, the profiled call's time."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        step()
        wall = time.perf_counter() - start
    events = prof.key_averages()
    ops = sum(e.self_cpu_time_total for e in events) / 1e6
    shares = dict(wall_s=wall,
                  matmul_conv_s=sum(e.self_cpu_time_total for e in events if is_matmul_or_conv(e.key)) / 1e6,
                  deform_attn_s=sum(e.cpu_time_total for e in events if e.key in DEFORM_ATTN_OPS) / 1e6,
                  compiled_kernels_s=sum(e.self_cpu_time_total for e in events
                                         if e.key.startswith(COMPILED_GRAPH_EVENT)) / 1e6)
    shares['other_ops_s'] = ops - shares['matmul_conv_s'] - shares['deform_attn_s'] - shares['compiled_kernels_s']
    shares['outside_ops_s'] = wall - ops
    return shares
