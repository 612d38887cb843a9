"""The PESI report of tools/analysis_tools/pesi.py: the PESI metrics (``mmpe.analysis.pesi``) of mmpe's
positional encodings, built-in and learned in checkpoints, and maps of their similarity around a few centre
cells.

Built-in rows (``builtin_rows``: widths of embed_dims / num_heads, random ones seeded):

- sincos: 2D sin-cos table
- sinusoid_raster: 1D sinusoid (LOOPE's interleaved sin/cos) of the 1-based raster index
- loope_static: 1D sinusoid of the 1-based Gilbert order = LOOPE with X_C = 0 (as initialised)
- ape_init: learned APE as initialised (truncated normal, std 0.02): a random table
- rope_axial: RoPE-Axial kernel (theta axial_theta)
- rope_mixed_init: RoPE-Mixed kernel at initialisation, mean over depth layers

Each checkpoint NAME=PATH (mmpe, mmdet/mmseg or timm ViT/Swin checkpoint; ``checkpoint_rows``) adds a row
per learned encoding it holds: NAME:ape (its table, resized bicubically to the grid as the model does),
NAME:rope_mixed (kernel, mean over layers; per_layer adds one row per layer) and NAME:loope
(E(X_G + X_C) on an image resized to the grid, or by default on a Three-Cell image: an H x H
board on square grids, a 14x14 board resized to other grids).
Additive encodings are compared by the cosine similarity of table rows ('cosine'), rotary ones by
the kernel s(p, q) = mean over pairs of cos(angle(p) - angle(q)) ('rope kernel').

Writes out/pesi.md, pesi.csv (``seconds``: wall time of the metrics of that row) and
pesi_maps_HxW.png per grid (similarity around a corner, the centre and an off-centre cell).
"""
import os
import time
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..converters import axial_as_mixed_freqs
from ..pos_embed import LearnedPosEmbed, LOOPEPosEmbed, RoPEMixed
from ..pos_embed.grid import HW
from . import tables
from .pesi import cosine_similarity_map, pesi_from_similarity
from .report import pyplot, write_table
from .three_cell import three_cell_images, three_cell_sample

COSINE, KERNEL = 'cosine', 'rope kernel'
Row = Tuple[str, str, str, np.ndarray]  # (name, COSINE or KERNEL, description, similarity (H, W, H, W))


def builtin_rows(hw: HW, *, embed_dims: int, num_heads: int, depth: int, axial_theta: float, mixed_theta: float,
                 seed: int) -> List[Row]:
    """Rows of the encodings without a checkpoint (module docstring), ``embed_dims`` wide (additive) or with
    ``num_heads`` heads (rotary; RoPE-Mixed: ``depth`` layers), random ones seeded by ``seed``."""
    c, heads = embed_dims, num_heads
    head_dim = c // heads
    torch.manual_seed(seed)
    ape = LearnedPosEmbed(c, hw).pos_embed.detach().reshape(hw[0], hw[1], c)
    mixed = [RoPEMixed(heads, head_dim, mixed_theta).freqs.detach() for _ in range(depth)]
    return [
        ('sincos', COSINE, f'2D sin-cos, {c} channels', cosine_similarity_map(tables.sincos_table(hw, c))),
        ('sinusoid_raster', COSINE, '1D sinusoid of the raster index',
         cosine_similarity_map(tables.sinusoid_table(tables.raster_order(hw), c))),
        ('loope_static', COSINE, '1D sinusoid of the Gilbert order (LOOPE, X_C = 0)',
         cosine_similarity_map(tables.loope_static_table(hw, c))),
        ('ape_init', COSINE, f'APE at init (trunc. normal, seed {seed})', cosine_similarity_map(ape)),
        ('rope_axial', KERNEL, f'theta {axial_theta:g}, head dim {head_dim}',
         tables.rope_kernel(axial_as_mixed_freqs(heads, head_dim, axial_theta), hw)),
        ('rope_mixed_init', KERNEL, f'init (theta {mixed_theta:g}), {heads} heads x {depth} layers, '
         f'seed {seed}', tables.rope_kernel(mixed, hw)),
    ]


def loope_image(module: LOOPEPosEmbed, hw: HW, image_path: Optional[str], seed: int) -> torch.Tensor:
    """(C, H*p, W*p) image for a LOOPE module: the image file ``image_path`` resized to the grid, else a
    Three-Cell image (``seed``): an H x H board on a square grid, a 14x14 board resized to other grids."""
    patch = module.context.features[0].kernel_size[0]
    if image_path:
        from torchvision.io import ImageReadMode, decode_image
        image = decode_image(image_path, mode=ImageReadMode.RGB).float() / 255
    else:
        board = hw[0] if hw[0] == hw[1] else 14
        image = three_cell_images(three_cell_sample(1, board, seed)[0], board, patch)[0]
    size = (hw[0] * patch, hw[1] * patch)
    if tuple(image.shape[1:]) != size:
        image = F.interpolate(image[None], size=size, mode='bilinear', antialias=True, align_corners=False)[0]
    return image


def checkpoint_rows(name: str, path: str, hw: HW, *, per_layer: bool, image_path: Optional[str],
                    seed: int) -> List[Row]:
    """Rows of the learned encodings in checkpoint ``path`` (module docstring), named ``name``:ENCODING;
    ``per_layer``, ``image_path`` and ``seed`` as in ``pesi_report``."""
    state = tables.backbone_state(path)
    rows = []
    if 'pos_embed.pos_embed' in state:
        rows.append((f'{name}:ape', COSINE, f'learned APE of {path}',
                     cosine_similarity_map(tables.ape_table(state, hw))))
    if any(k.endswith('attn.pos_embed.freqs') for k in state):
        freqs = tables.rope_mixed_freqs(state)
        rows.append((f'{name}:rope_mixed', KERNEL, f'mean over {len(freqs)} layer(s) of {path}',
                     tables.rope_kernel(freqs, hw)))
        if per_layer:
            rows += [(f'{name}:rope_mixed[{i}]', KERNEL, f'layer {i} of {path}', tables.rope_kernel(f, hw))
                     for i, f in enumerate(freqs)]
    if 'pos_embed.context.head.weight' in state:
        module = tables.loope_module(state)
        image = loope_image(module, hw, image_path, seed)
        rows.append((f'{name}:loope', COSINE, f'E(X_G + X_C) of {path} on {image_path or "a Three-Cell image"}',
                     cosine_similarity_map(tables.loope_table(module, image))))
    if not rows:
        raise ValueError(f'checkpoint {path!r} holds no learned encoding (APE table, RoPE-Mixed freqs or LOOPE '
                         f'context); fixed encodings are the built-in rows')
    return rows


def plot_maps(rows: List[Row], hw: HW, path: str) -> None:
    """Similarity maps around a corner, the centre and an off-centre cell, one row per encoding."""
    plt = pyplot()
    h, w = hw
    centres = [(0, 0), (h // 2, w // 2), (h // 4, (3 * w) // 4)]
    fig, axes = plt.subplots(len(rows), len(centres), figsize=(2.2 * len(centres) + 1.5, 2.0 * len(rows) + 0.5),
                             squeeze=False, layout='constrained')
    for axes_row, (name, kind, _, sim) in zip(axes, rows):
        low = min(sim[c].min() for c in centres)
        for ax, (r, c) in zip(axes_row, centres):
            image = ax.imshow(sim[r, c], vmin=low, vmax=1.0, cmap='viridis')
            ax.plot(c, r, 'r+', markersize=8)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f'centre (row {r}, col {c})', fontsize=8)
        axes_row[0].set_ylabel(f"{name.replace(':', chr(10))}\n({kind})", fontsize=8)
        fig.colorbar(image, ax=list(axes_row), shrink=0.9)
    fig.suptitle(f'similarity to the centre cell (+), {h}x{w} grid', fontsize=10)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def pesi_report(grids: Sequence[HW], *, embed_dims: int, num_heads: int, depth: int, axial_theta: float,
                mixed_theta: float, num_buckets: int, seed: int, checkpoints: Sequence[Tuple[str, str]] = (),
                per_layer: bool = False, image_path: Optional[str] = None, out: str) -> None:
    """The PESI metrics (``num_buckets`` angle buckets) of the built-in rows and of each (name, path) of
    ``checkpoints`` on every grid (H, W), written to ``out`` (module docstring). ``per_layer``: also a row
    per RoPE-Mixed layer; ``image_path``: the image LOOPE checkpoints see (default: a Three-Cell image)."""
    os.makedirs(out, exist_ok=True)
    table = []
    for hw in grids:
        rows = builtin_rows(hw, embed_dims=embed_dims, num_heads=num_heads, depth=depth, axial_theta=axial_theta,
                            mixed_theta=mixed_theta, seed=seed)
        for name, path in checkpoints:
            rows += checkpoint_rows(name, path, hw, per_layer=per_layer, image_path=image_path, seed=seed)
        for name, kind, description, sim in rows:
            start = time.perf_counter()
            metrics = pesi_from_similarity(sim, num_buckets)
            table.append(dict(grid=f'{hw[0]}x{hw[1]}', encoding=name, similarity=kind, **metrics,
                              seconds=time.perf_counter() - start, description=description))
        plot_maps(rows, hw, os.path.join(out, f'pesi_maps_{hw[0]}x{hw[1]}.png'))
    print(write_table(table, os.path.join(out, 'pesi'),
                      f'PESI metrics ({num_buckets} angle buckets; M_U, M_D: higher = more monotone, max 2; '
                      f'A_SU: lower = more symmetric)'))
    print(f'maps: {out}/pesi_maps_*.png')
