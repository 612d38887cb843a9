"""What the benchmark tools measure (tools/analysis_tools/benchmark_*.py, memory_soak.py,
compile_recompiles.py): each one's cases and comparison, on the helpers of ``mmpe.analysis.benchmark``
(interleaved timing, peak memory, ``report``). The tools' --help describe the rows.

- ``rope_benchmark``: rotating q and k, mmpe's RoPE-Axial / RoPE-Mixed against timm's apply_rot_embed_cat.
- ``gilbert_benchmark``: the vectorised ``gilbert_order`` against the recursive gilbert2d.
- ``vit_benchmark``: PEVisionTransformer encodings (APE, RoPE-Axial, RoPE-Mixed) and timm's RoPE-Mixed ViT:
  forward, forward+backward (optionally compiled) and the peak memory of a training step.
- ``swin_benchmark``: mmdet's SwinTransformer against PESwinTransformer ('rpb', 'rope_mixed', 'rope_axial').
- ``memory_soak``: many distinct input shapes through small backbones; resident memory and cache sizes.
- ``count_recompiles``: the graphs torch.compile builds over DINO-like input sizes.
"""
import inspect
import os
import time
from typing import Callable, Dict, Optional, Sequence, Tuple

import timm
import torch
from timm.layers.pos_embed_sincos import RotaryEmbeddingCat, RotaryEmbeddingMixed, apply_rot_embed_cat

from ..models import PESwinTransformer, PEVisionTransformer
from ..pos_embed import TABLE_CACHES, RoPEAxial, RoPEMixed, gilbert_order, mixed_cos_sin, rope_coords, rotate_pairs
from ..pos_embed.grid import HW
from ..testing import gilbert2d_reference
from .benchmark import peak_memory_mb, report, small_backbone, status_mb, time_interleaved
from .compilation import count_graphs, dino_sizes
from .progress import Item, Progress

# ----------------------------------------------------------------------------- RoPE rotation against timm

DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def timm_rotate(q, k, table, num_prefix_tokens):
    """timm Eva's attention: rotate the patch tokens of q and k (B, h, P+N, d) with a (..., N, 2d) table,
    cast back to the input dtype (Eva's ``type_as(v)``)."""
    if num_prefix_tokens:
        p = num_prefix_tokens
        return (torch.cat([q[:, :, :p], apply_rot_embed_cat(q[:, :, p:], table)], dim=2).type_as(q),
                torch.cat([k[:, :, :p], apply_rot_embed_cat(k[:, :, p:], table)], dim=2).type_as(k))
    return apply_rot_embed_cat(q, table).type_as(q), apply_rot_embed_cat(k, table).type_as(k)


def rope_cases(dtype_name: str, *, grid: HW, batch: int, heads: int, head_dim: int, prefix: int, theta: float,
               device: str) -> Dict[Tuple[str, str, str], Callable[[], object]]:
    """{(encoding, impl, work): zero-argument callable} for one dtype; mmpe's and timm's rotations are
    checked equal first (RuntimeError otherwise)."""
    dtype = DTYPES[dtype_name]
    h, d, p = heads, head_dim, prefix
    hw = grid
    qkv = torch.randn(batch, p + hw[0] * hw[1], 3 * h * d, device=device).to(dtype)
    qkv = qkv.unflatten(-1, (3, h, d)).permute(2, 0, 3, 1, 4)  # (3, B, h, P+N, d)
    qk, q, k = qkv[:2], qkv[0], qkv[1]

    axial = RoPEAxial(d, theta).to(device)
    timm_axial = RotaryEmbeddingCat(d, temperature=theta, in_pixels=False, grid_indexing='xy',
                                    feat_shape=list(hw)).to(device)
    axial_table = timm_axial.get_embed()  # (N, 2d) float32

    mixed = RoPEMixed(h, d).to(device)
    timm_mixed = RotaryEmbeddingMixed(h * d, depth=1, num_heads=h, grid_indexing='xy', feat_shape=list(hw)).to(device)
    with torch.no_grad():
        timm_mixed.freqs.copy_(mixed.freqs[:, None])  # same frequencies: (2, depth=1, h, d/2)
    mixed_table = timm_mixed.get_embed()[0]  # (h, N, 2d) float32
    coords = rope_coords(hw, p, torch.device(device))
    mixed_cos, mixed_sin = mixed_cos_sin(mixed.freqs, coords)

    def check(mmpe_out, timm_out):
        diff = (mmpe_out.float() - torch.stack(timm_out).float()).abs().max().item()
        tolerance = 1e-4 if dtype == torch.float32 else 5e-2
        if diff > tolerance:
            raise RuntimeError(f'mmpe and timm disagree by {diff:.3g} ({dtype_name})')

    with torch.no_grad():
        check(axial.rotate(qk, hw, p), timm_rotate(q, k, axial_table, p))
        check(mixed.rotate(qk, hw, p), timm_rotate(q, k, mixed_table, p))

    return {
        ('axial', 'mmpe', 'apply'): lambda: axial.rotate(qk, hw, p),
        ('axial', 'timm', 'apply'): lambda: timm_rotate(q, k, axial_table, p),
        ('mixed', 'mmpe', 'apply'): lambda: rotate_pairs(qk, mixed_cos, mixed_sin).to(dtype),
        ('mixed', 'timm', 'apply'): lambda: timm_rotate(q, k, mixed_table, p),
        ('mixed', 'mmpe', 'tables'): lambda: mixed_cos_sin(mixed.freqs, coords),
        ('mixed', 'timm', 'tables'): lambda: timm_mixed.get_embed()[0],
        ('mixed', 'mmpe', 'tables+apply'): lambda: mixed.rotate(qk, hw, p),
        ('mixed', 'timm', 'tables+apply'): lambda: timm_rotate(q, k, timm_mixed.get_embed()[0], p),
    }


def rope_benchmark(*, grid: HW, batch: int, heads: int, head_dim: int, prefix: int, theta: float,
                   dtypes: Sequence[str], repeats: int, warmup: int, device: str, out: str) -> None:
    """The cases of ``rope_cases`` for every dtype, timed interleaved (no_grad), with the ratios to timm's
    time for the same work (``ratio``) and to its apply-only time (``vs_timm_apply``): ``out``/rope_vs_timm."""
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)

    cases = {}
    for dtype_name in dtypes:
        cases.update({(dtype_name, *key): fn for key, fn in rope_cases(
            dtype_name, grid=grid, batch=batch, heads=heads, head_dim=head_dim, prefix=prefix, theta=theta,
            device=device).items()})
    with torch.no_grad():
        times = time_interleaved({' / '.join(key): fn for key, fn in cases.items()}, warmup=warmup,
                                 repeats=repeats, device=device, progress='RoPE rotation')
    rows = [dict(zip(('dtype', 'encoding', 'impl', 'work'), key), ms=times[' / '.join(key)] * 1e3) for key in cases]

    def timm_row(row, work):
        return next(r for r in rows if r['impl'] == 'timm' and r['work'] == work
                    and r['dtype'] == row['dtype'] and r['encoding'] == row['encoding'])

    for row in rows:
        row['vs_timm_apply'] = round(row['ms'] / timm_row(row, 'apply')['ms'], 3)
    setting = (f"q and k ({batch}, {heads}, {prefix}+{grid[0]}x{grid[1]}, "
               f"{head_dim}), {device}, {torch.get_num_threads()} threads, median of {repeats}")
    report(rows, lambda row: timm_row(row, row['work']), 'ms', os.path.join(out, 'rope_vs_timm'),
           f'Rotating q and k: mmpe vs timm apply_rot_embed_cat ({setting})')


# ----------------------------------------------------------------------------- Gilbert order

def gilbert_benchmark(shapes: Sequence[str], *, repeats: int, warmup: int, out: str) -> None:
    """``gilbert_order`` without its cache ('vectorised') against ``mmpe.testing.gilbert2d_reference``
    ('recursive') on every grid of ``shapes`` ('HxW'), one thread; the outputs are checked equal first.
    ``ratio`` = time / recursive time for the same shape: ``out``/gilbert."""
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)

    recursive, vectorised = gilbert2d_reference, inspect.unwrap(gilbert_order)  # unwrap: bypass the cache
    cases = {}
    for shape in shapes:
        hw = tuple(int(s) for s in shape.lower().split('x'))
        if not torch.equal(vectorised(*hw), recursive(*hw)):
            raise RuntimeError(f'gilbert_order differs from the recursive gilbert2d at {shape}')
        cases[f'{shape} / recursive'] = lambda hw=hw: recursive(*hw)
        cases[f'{shape} / vectorised'] = lambda hw=hw: vectorised(*hw)
    times = time_interleaved(cases, warmup=warmup, repeats=repeats, progress='Gilbert order')
    rows = [dict(zip(('shape', 'impl'), name.split(' / ')), ms=t * 1e3) for name, t in times.items()]
    by_name = {(row['shape'], row['impl']): row for row in rows}
    report(rows, lambda row: by_name[row['shape'], 'recursive'], 'ms', os.path.join(out, 'gilbert'),
           f'gilbert_order: recursive generator vs breadth-first vectorised (CPU, median of {repeats})')


# ----------------------------------------------------------------------------- ViT against timm

VIT_ARCHS = {'small': dict(embed_dims=384, depth=12, num_heads=6), 'base': dict(embed_dims=768, depth=12, num_heads=12),
             'large': dict(embed_dims=1024, depth=24, num_heads=16)}
VIT_CASES = {'APE': dict(type='ape'), 'RoPE-Axial': dict(type='rope_axial'), 'RoPE-Mixed': dict(type='rope_mixed')}
TIMM_CASE = 'timm RoPE-Mixed'
COMPILED = 'compiled '


def vit_model(case: str, arch: str, device: str) -> torch.nn.Module:
    """The ViT of ``case`` (a ``VIT_CASES`` name, ``TIMM_CASE``, or either after ``COMPILED``) in the RoPE-ViT
    layout (CLS token, LayerScale, final norm), random weights."""
    if case.startswith(COMPILED):
        return torch.compile(vit_model(case[len(COMPILED):], arch, device))
    if case == TIMM_CASE:
        model = timm.create_model(f'vit_{arch}_patch16_rope_mixed_224', pretrained=False, dynamic_img_size=True)
    else:
        dims = VIT_ARCHS[arch]
        model = PEVisionTransformer(**dims, layer_scale_init_value=1e-5, pos_embed=VIT_CASES[case],
                                    out_indices=dims['depth'] - 1)
    return model.to(device)


def vit_features(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model.forward_features(x) if isinstance(model, timm.models.eva.Eva) else model(x)[0]


def vit_step(case: str, arch: str, size, device: str, train: bool):
    """A zero-argument callable: one forward (no_grad) or one forward+backward at ``size``."""
    model = vit_model(case, arch, device).train(train)
    x = torch.randn(1, 3, *size, device=device)

    def forward():
        with torch.no_grad():
            vit_features(model, x)

    def train_step():
        vit_features(model, x).square().mean().backward()
        model.zero_grad(set_to_none=True)

    return train_step if train else forward


def vit_train_step(case: str, arch: str, size, device: str):
    """Module-level setup for cpu_peak_memory_mb (runs in a spawned process)."""
    return vit_step(case, arch, size, device, train=True)


def vit_benchmark(*, size: HW, arch: str, repeats: int, warmup: int, device: str, modes: Sequence[str],
                  compile: bool, memory: bool, out: str) -> None:
    """Time of every case per mode ('forward', 'forward+backward'; ``compile`` adds compiled APE and RoPE-Mixed
    to the latter), ratio to APE (``out``/time_vs_ape) and mmpe's RoPE-Mixed against timm's
    (``out``/time_vs_timm); ``memory``: the peak memory of a training step per case (``out``/train_step_memory)."""
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    setting = f'ViT-{arch[0].upper()}/16, {size[0]}x{size[1]}, batch 1, {device} fp32, ' \
              f'{torch.get_num_threads()} threads'

    cases = [*VIT_CASES, TIMM_CASE]
    rows = []
    for mode in modes:
        train = mode == 'forward+backward'
        compiled = [COMPILED + 'APE', COMPILED + 'RoPE-Mixed'] if train and compile else []
        steps = {case: vit_step(case, arch, size, device, train) for case in cases + compiled}
        times = time_interleaved(steps, warmup=warmup, repeats=repeats, device=device, progress=f'ViT {mode}')
        rows += [dict(encoding=case, mode=mode, seconds=times[case]) for case in steps]
        del steps

    def same_mode(baseline):
        def baseline_of(row):
            base = COMPILED + baseline if row['encoding'].startswith(COMPILED) else baseline
            return next(r for r in rows if r['encoding'] == base and r['mode'] == row['mode'])
        return baseline_of

    if rows:
        report([dict(r) for r in rows], same_mode('APE'), 'seconds', os.path.join(out, 'time_vs_ape'),
               f'Time, ratio to APE ({setting})')
        vs_timm = [dict(r) for r in rows if r['encoding'] in ('RoPE-Mixed', TIMM_CASE)]
        report(vs_timm, same_mode(TIMM_CASE), 'seconds', os.path.join(out, 'time_vs_timm'),
               f'mmpe RoPE-Mixed vs timm Eva ({setting})')

    if memory:
        with Progress('ViT training-step memory', [Item(case) for case in cases], unit='cases') as progress:
            peaks = [dict(encoding=case, peak_mb=peak_memory_mb(device, vit_train_step, case, arch, size, device))
                     for case in progress.track(cases)]
        report(peaks, lambda row: peaks[0], 'peak_mb', os.path.join(out, 'train_step_memory'),
               f'Peak memory of a training step, ratio to APE ({setting})')


# ----------------------------------------------------------------------------- Swin against mmdet

SWIN_T = dict(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size=7, drop_path_rate=0.0)
SWIN_MODELS = ('mmdet SwinTransformer', 'mmpe rpb', 'mmpe rope_mixed', 'mmpe rope_axial')
SWIN_BASELINE = SWIN_MODELS[0]


def swin_model(name: str) -> torch.nn.Module:
    """Swin-T by name (random weights)."""
    torch.manual_seed(0)
    if name == SWIN_BASELINE:
        from mmdet.models.backbones import SwinTransformer
        return SwinTransformer(**SWIN_T)
    return PESwinTransformer(**SWIN_T, pos_embed=dict(type=name.split()[1]))


def swin_train_step(name: str, size, batch: int, device: str):
    """Setup for memory measurement: a zero-argument forward+backward of model ``name``."""
    model = swin_model(name).to(device)
    model.train()
    images = torch.randn(batch, 3, *size, device=device)

    def step():
        sum(out.mean() for out in model(images)).backward()
        model.zero_grad(set_to_none=True)
    return step


def model_row(rows, name):
    """``report``'s baseline_of: the row of model ``name``."""
    return lambda row: next(r for r in rows if r['model'] == name)


def forward_step(model, images):
    def step():
        with torch.no_grad():
            model(images)
    return step


def swin_benchmark(*, size: HW, batch: int, repeats: int, warmup: int, device: str, skip: Sequence[str],
                   out_dir: str) -> None:
    """Forward and forward+backward time of ``SWIN_MODELS`` (ratio to mmdet; ``out_dir``/forward,
    forward_backward) and the peak memory of one forward+backward above the model (ratio to mmpe rpb;
    ``out_dir``/train_memory); ``skip``: 'time' and/or 'memory'."""
    os.makedirs(out_dir, exist_ok=True)
    size, shape = tuple(size), f'{batch}x3x{size[0]}x{size[1]}'
    setting = f'{shape}, {device} fp32, {torch.get_num_threads()} threads, torch {torch.__version__}'
    if 'time' not in skip:
        images = torch.randn(batch, 3, *size, device=device)
        models = {name: swin_model(name).to(device) for name in SWIN_MODELS}
        for model in models.values():
            model.eval()  # mmdet's SwinTransformer.train() returns None, so no chaining
        models['mmpe rpb'].load_state_dict(models[SWIN_BASELINE].state_dict())  # same weights, same outputs

        forward = time_interleaved({n: forward_step(m, images) for n, m in models.items()}, warmup, repeats, device,
                                   progress='Swin-T forward')
        rows = [dict(model=n, input=shape, forward_s=t) for n, t in forward.items()]
        report(rows, model_row(rows, SWIN_BASELINE), 'forward_s', os.path.join(out_dir, 'forward'),
               f'Swin-T forward, {setting}; ratio to mmdet')

        train = {n: swin_train_step(n, size, batch, device) for n in SWIN_MODELS}
        fwd_bwd = time_interleaved(train, warmup, repeats, device, progress='Swin-T forward+backward')
        rows = [dict(model=n, input=shape, forward_backward_s=t, vs_rpb=round(t / fwd_bwd['mmpe rpb'], 3))
                for n, t in fwd_bwd.items()]
        report(rows, model_row(rows, SWIN_BASELINE), 'forward_backward_s', os.path.join(out_dir, 'forward_backward'),
               f'Swin-T forward+backward, {setting}; ratio to mmdet')
        del train, models

    if 'memory' in skip:
        return
    with Progress('Swin-T training-step memory', [Item(name) for name in SWIN_MODELS], unit='models') as progress:
        rows = [dict(model=name, input=shape, peak_train_mem_mb=peak_memory_mb(device, swin_train_step, name, size,
                                                                               batch, device))
                for name in progress.track(SWIN_MODELS)]
    for row in rows:
        row['vs_mmdet'] = round(row['peak_train_mem_mb'] / rows[0]['peak_train_mem_mb'], 3)
    report(rows, model_row(rows, 'mmpe rpb'), 'peak_train_mem_mb', os.path.join(out_dir, 'train_memory'),
           f'Swin-T peak memory of one forward+backward above the model, {setting}; ratio to mmpe rpb')


# ----------------------------------------------------------------------------- memory soak

SOAK_VIT_ENCODINGS = ('ape', 'sincos', 'rope_axial', 'rope_mixed', 'loope')
SOAK_SWIN_ENCODINGS = ('rpb', 'rope_mixed', 'loope')
SOAK_MODELS = [f'vit-{e}' for e in SOAK_VIT_ENCODINGS] + [f'swin-{e}' for e in SOAK_SWIN_ENCODINGS]


def soak(name: str, num_shapes: int, warmup: int, seed: int = 0, progress: Optional[Progress] = None) -> dict:
    """Train-step ``num_shapes`` distinct random shapes through model ``name``; memory and cache sizes.
    ``progress``: its next ``num_shapes`` items are the steps."""
    torch.manual_seed(seed)
    model = small_backbone(name).train()
    gen = torch.Generator().manual_seed(seed)
    shapes, seen = [], set()
    while len(shapes) < num_shapes:
        shape = tuple(torch.randint(64, 513, (2,), generator=gen).tolist())
        if shape not in seen:
            seen.add(shape)
            shapes.append(shape)
    for cache in TABLE_CACHES.values():
        cache.clear()
    largest = {key: 0 for key in TABLE_CACHES}
    after_warmup = None
    for i, (h, w) in enumerate(progress.track(shapes) if progress else shapes):
        outs = model(torch.randn(1, 3, h, w))
        sum(out.float().mean() for out in outs).backward()
        model.zero_grad(set_to_none=True)
        for key, cache in TABLE_CACHES.items():
            largest[key] = max(largest[key], len(cache))
        if i + 1 == warmup:
            after_warmup = status_mb('VmRSS')
    over = [f'{key} {largest[key]} > {TABLE_CACHES[key].maxsize}' for key in largest
            if largest[key] > TABLE_CACHES[key].maxsize]
    used = {key.split('.')[-1]: f'{n}/{TABLE_CACHES[key].maxsize}' for key, n in largest.items() if n}
    return dict(model=name, shapes=num_shapes, rss_after_warmup_mb=after_warmup, rss_end_mb=status_mb('VmRSS'),
                growth_mb=status_mb('VmRSS') - after_warmup, caches_used=' '.join(f'{k} {v}' for k, v in used.items()),
                caches_over_bound=' '.join(over) or 'none')


def memory_soak(models: Sequence[str], *, shapes: int, warmup: int, out: str) -> None:
    """``soak`` of every model (``SOAK_MODELS`` names): ``out``/memory_soak. Run it in a process started with
    ``MALLOC_ENV`` (glibc returns freed blocks at once, so resident memory follows the live tensors)."""
    os.makedirs(out, exist_ok=True)
    rows = []
    items = [Item(f'{name} step {k + 1}/{shapes}', kind=name) for name in models for k in range(shapes)]
    with Progress('memory soak', items, unit='steps') as progress:
        for name in models:
            rows.append(soak(name, shapes, warmup, progress=progress))
            print(rows[-1], flush=True)
    report(rows, lambda row: None, 'growth_mb', os.path.join(out, 'memory_soak'),
           f'Resident memory over {shapes} distinct input shapes (64..512 px), training steps, '
           f'after {warmup} warm-up shapes')


# ----------------------------------------------------------------------------- torch.compile recompiles

RECOMPILE_MODELS = ('vit-rope_mixed', 'vit-rope_axial', 'vit-ape', 'swin-rope_mixed', 'swin-rpb')


def count_recompiles(models: Sequence[str], *, sizes: int, out: str) -> None:
    """Each model (``RECOMPILE_MODELS`` names) compiled once, a training step at each of ``sizes`` DINO-like
    sizes; the graphs dynamo compiled and its graph breaks: ``out``/recompiles."""
    os.makedirs(out, exist_ok=True)
    hw_sizes = dino_sizes(sizes)
    rows = []
    items = [Item(f'{name} {h}x{w}', kind=name) for name in models for h, w in hw_sizes]
    with Progress('compiled training steps', items, unit='steps') as progress:
        for name in models:
            model = torch.compile(small_backbone(name).train())

            def step(size: HW) -> None:
                sum(y.mean() for y in model(torch.randn(1, 3, *size))).backward()
                model.zero_grad(set_to_none=True)

            start = time.perf_counter()
            counts = count_graphs(step, progress.track(hw_sizes))
            rows.append(dict(model=name, sizes=len(hw_sizes), distinct_sizes=len(set(hw_sizes)),
                             graphs_compiled=sum(counts['new_graphs']), graph_breaks=counts['graph_breaks'],
                             seconds=time.perf_counter() - start))
            print(rows[-1], flush=True)
    report(rows, lambda row: None, 'graphs_compiled', os.path.join(out, 'recompiles'),
           f'torch.compile graphs over {len(hw_sizes)} DINO-like input sizes (training steps, '
           f'torch {torch.__version__})')
