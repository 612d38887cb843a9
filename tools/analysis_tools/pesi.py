"""PESI metrics (M_U, M_D, A_SU; LOOPE paper, docs/design.md section 9) of mmpe's positional encodings,
and maps of their similarity around a few centre cells.

    python tools/analysis_tools/pesi.py                                  # built-in encodings at 14x14, ViT-B widths
    python tools/analysis_tools/pesi.py --grids 14x14 7x7 16x24 --out work_dirs/pesi
    python tools/analysis_tools/pesi.py --checkpoint tc_ape=work_dirs/three_cell/checkpoints/ape_seed0.pth \\
        --checkpoint tc_loope=work_dirs/three_cell/checkpoints/loope_seed0.pth --per-layer

Built-in rows (widths of --embed-dims / --num-heads, seeded by --seed):
  sincos            2D sin-cos table
  sinusoid_raster   1D sinusoid (LOOPE's interleaved sin/cos) of the 1-based raster index
  loope_static      1D sinusoid of the 1-based Gilbert order = LOOPE with X_C = 0 (as initialised)
  ape_init          learned APE as initialised (truncated normal, std 0.02): a random table
  rope_axial        RoPE-Axial kernel (theta --axial-theta)
  rope_mixed_init   RoPE-Mixed kernel at initialisation, mean over --depth layers
Each --checkpoint NAME=PATH (mmpe, mmdet/mmseg or timm ViT/Swin checkpoint) adds a row per learned
encoding it holds: NAME:ape (its table, resized bicubically to the grid as the model does),
NAME:rope_mixed (kernel, mean over layers; --per-layer adds one row per layer) and NAME:loope
(E(X_G + X_C) on --image resized to the grid, or by default on a Three-Cell image: an H x H
board on square grids, a 14x14 board resized to other grids).
Additive encodings are compared by the cosine similarity of table rows ('cosine'), rotary ones by
the kernel s(p, q) = mean over pairs of cos(angle(p) - angle(q)) ('rope kernel').

Writes --out/pesi.md, pesi.csv (``seconds``: wall time of the metrics of that row) and
pesi_maps_HxW.png per grid (similarity around a corner, the centre and an off-centre cell).
"""
import argparse
import os
import time

import torch
import torch.nn.functional as F

from mmpe.analysis import (ape_table, backbone_state, cosine_similarity_map, loope_module, loope_static_table,
                           loope_table, pesi_from_similarity, raster_order, rope_kernel, rope_mixed_freqs,
                           pyplot, sincos_table, sinusoid_table, three_cell_images, three_cell_sample, write_table)
from mmpe.converters import axial_as_mixed_freqs
from mmpe.pos_embed import LearnedPosEmbed, RoPEMixed

COSINE, KERNEL = 'cosine', 'rope kernel'


def grid_arg(text: str):
    try:
        h, w = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'grid must look like 14x14 (rows x columns), got {text!r}')
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f'grid sides must be positive, got {text!r}')
    return h, w


def checkpoint_arg(text: str):
    name, sep, path = text.partition('=')
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f'--checkpoint takes NAME=PATH, got {text!r}')
    return name, path


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--grids', nargs='+', type=grid_arg, default=[(14, 14)], help='grids HxW (rows x columns)')
    parser.add_argument('--embed-dims', type=int, default=768, help='table width of the additive encodings')
    parser.add_argument('--num-heads', type=int, default=12, help='heads; RoPE head dim = embed-dims / num-heads')
    parser.add_argument('--depth', type=int, default=12, help='layers of the initial RoPE-Mixed row')
    parser.add_argument('--axial-theta', type=float, default=100.0)
    parser.add_argument('--mixed-theta', type=float, default=10.0)
    parser.add_argument('--num-buckets', type=int, default=60, help='angle buckets of M_D')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random (initial) APE and RoPE-Mixed rows')
    parser.add_argument('--checkpoint', action='append', type=checkpoint_arg, default=[], metavar='NAME=PATH')
    parser.add_argument('--per-layer', action='store_true', help='also one row per layer of RoPE-Mixed checkpoints')
    parser.add_argument('--image', help='image for LOOPE checkpoints, resized to each grid (default: a Three-Cell '
                                        'image, see above)')
    parser.add_argument('--out', default='work_dirs/pesi')
    args = parser.parse_args(argv)
    if args.embed_dims % args.num_heads or (args.embed_dims // args.num_heads) % 4 or args.embed_dims % 4:
        parser.error(f'--embed-dims {args.embed_dims} must be a multiple of 4 and of --num-heads {args.num_heads} '
                     f'with a head dim divisible by 4')
    return args


def builtin_rows(args, hw):
    """[(name, kind, description, similarity (H, W, H, W))] of the encodings without a checkpoint."""
    c, heads = args.embed_dims, args.num_heads
    head_dim = c // heads
    torch.manual_seed(args.seed)
    ape = LearnedPosEmbed(c, hw).pos_embed.detach().reshape(hw[0], hw[1], c)
    mixed = [RoPEMixed(heads, head_dim, args.mixed_theta).freqs.detach() for _ in range(args.depth)]
    return [
        ('sincos', COSINE, f'2D sin-cos, {c} channels', cosine_similarity_map(sincos_table(hw, c))),
        ('sinusoid_raster', COSINE, '1D sinusoid of the raster index',
         cosine_similarity_map(sinusoid_table(raster_order(hw), c))),
        ('loope_static', COSINE, '1D sinusoid of the Gilbert order (LOOPE, X_C = 0)',
         cosine_similarity_map(loope_static_table(hw, c))),
        ('ape_init', COSINE, f'APE at init (trunc. normal, seed {args.seed})', cosine_similarity_map(ape)),
        ('rope_axial', KERNEL, f'theta {args.axial_theta:g}, head dim {head_dim}',
         rope_kernel(axial_as_mixed_freqs(heads, head_dim, args.axial_theta), hw)),
        ('rope_mixed_init', KERNEL, f'init (theta {args.mixed_theta:g}), {heads} heads x {args.depth} layers, '
         f'seed {args.seed}', rope_kernel(mixed, hw)),
    ]


def loope_image(args, module, hw) -> torch.Tensor:
    """(C, H*p, W*p) image for a LOOPE module: --image resized to the grid, else a Three-Cell
    image (seed --seed): an H x H board on a square grid, a 14x14 board resized to other grids."""
    patch = module.context.features[0].kernel_size[0]
    if args.image:
        from torchvision.io import ImageReadMode, decode_image
        image = decode_image(args.image, mode=ImageReadMode.RGB).float() / 255
    else:
        board = hw[0] if hw[0] == hw[1] else 14
        image = three_cell_images(three_cell_sample(1, board, args.seed)[0], board, patch)[0]
    size = (hw[0] * patch, hw[1] * patch)
    if tuple(image.shape[1:]) != size:
        image = F.interpolate(image[None], size=size, mode='bilinear', antialias=True, align_corners=False)[0]
    return image


def checkpoint_rows(args, name, path, hw):
    """Rows for the learned encodings in checkpoint ``path``."""
    state = backbone_state(path)
    rows = []
    if 'pos_embed.pos_embed' in state:
        rows.append((f'{name}:ape', COSINE, f'learned APE of {path}', cosine_similarity_map(ape_table(state, hw))))
    if any(k.endswith('attn.pos_embed.freqs') for k in state):
        freqs = rope_mixed_freqs(state)
        rows.append((f'{name}:rope_mixed', KERNEL, f'mean over {len(freqs)} layer(s) of {path}',
                     rope_kernel(freqs, hw)))
        if args.per_layer:
            rows += [(f'{name}:rope_mixed[{i}]', KERNEL, f'layer {i} of {path}', rope_kernel(f, hw))
                     for i, f in enumerate(freqs)]
    if 'pos_embed.context.head.weight' in state:
        module = loope_module(state)
        image = loope_image(args, module, hw)
        rows.append((f'{name}:loope', COSINE, f'E(X_G + X_C) of {path} on {args.image or "a Three-Cell image"}',
                     cosine_similarity_map(loope_table(module, image))))
    if not rows:
        raise ValueError(f'checkpoint {path!r} holds no learned encoding (APE table, RoPE-Mixed freqs or LOOPE '
                         f'context); fixed encodings are the built-in rows')
    return rows


def plot_maps(rows, hw, path):
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


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    table = []
    for hw in args.grids:
        rows = builtin_rows(args, hw)
        for name, path in args.checkpoint:
            rows += checkpoint_rows(args, name, path, hw)
        for name, kind, description, sim in rows:
            start = time.perf_counter()
            metrics = pesi_from_similarity(sim, args.num_buckets)
            table.append(dict(grid=f'{hw[0]}x{hw[1]}', encoding=name, similarity=kind, **metrics,
                              seconds=time.perf_counter() - start, description=description))
        plot_maps(rows, hw, os.path.join(args.out, f'pesi_maps_{hw[0]}x{hw[1]}.png'))
    print(write_table(table, os.path.join(args.out, 'pesi'),
                      f'PESI metrics ({args.num_buckets} angle buckets; M_U, M_D: higher = more monotone, max 2; '
                      f'A_SU: lower = more symmetric)'))
    print(f'maps: {args.out}/pesi_maps_*.png')


if __name__ == '__main__':
    main()
