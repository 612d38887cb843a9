"""Speed of rotating q and k with mmpe's RoPE-Axial / RoPE-Mixed against timm's apply_rot_embed_cat.

    python tools/analysis_tools/benchmark_rope.py                       # ViT-B shapes, 64x64 tokens, fp32 and bf16, CPU
    python tools/analysis_tools/benchmark_rope.py --grid 32x48 --repeats 21

q and k are the views of one qkv projection output (B, N, 3*h*d) -> (3, B, h, N, d), as in an
attention layer: mmpe rotates the stacked ``qkv[:2]`` in one ``rotate`` call, timm applies
``apply_rot_embed_cat`` to q and to k (as timm's Eva does, prefix tokens kept out with a cat).
Both rotate with float32 tables: bf16 q/k are rotated in float32 and cast back to bf16 (timm by
type promotion and Eva's ``type_as(v)``, done here too; mmpe inside ``rotate``).

Rows, all timed interleaved in one run (no_grad):
- axial 'apply': mmpe ``RoPEAxial.rotate`` (its tables cached per grid) vs timm with the table of
  ``RotaryEmbeddingCat(in_pixels=False, grid_indexing='xy')``.
- mixed 'apply': the rotation alone, from precomputed tables (mmpe ``mixed_cos_sin`` + ``rotate_pairs``,
  timm ``RotaryEmbeddingMixed.get_embed()`` of one layer + ``apply_rot_embed_cat``).
- mixed 'tables': building the tables from the learnable frequencies alone.
- mixed 'tables+apply': what one attention layer pays per call (mmpe ``RoPEMixed.rotate``; timm
  ``get_embed`` + apply; timm's Eva builds them once per forward for all layers, the same work per layer).
``ratio`` = time / timm's time for the same work; ``vs_timm_apply`` = time / timm's apply-only time.
"""
import argparse
import os

import torch
from timm.layers.pos_embed_sincos import RotaryEmbeddingCat, RotaryEmbeddingMixed, apply_rot_embed_cat

from mmpe.analysis.benchmark import report, time_interleaved
from mmpe.pos_embed import RoPEAxial, RoPEMixed, mixed_cos_sin, rope_coords, rotate_pairs

DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def timm_rotate(q, k, table, num_prefix_tokens):
    """timm Eva's attention: rotate the patch tokens of q and k (B, h, P+N, d) with a (..., N, 2d) table,
    cast back to the input dtype (Eva's ``type_as(v)``)."""
    if num_prefix_tokens:
        p = num_prefix_tokens
        return (torch.cat([q[:, :, :p], apply_rot_embed_cat(q[:, :, p:], table)], dim=2).type_as(q),
                torch.cat([k[:, :, :p], apply_rot_embed_cat(k[:, :, p:], table)], dim=2).type_as(k))
    return apply_rot_embed_cat(q, table).type_as(q), apply_rot_embed_cat(k, table).type_as(k)


def make_cases(args, dtype_name):
    """{(encoding, impl, work): zero-argument callable} for one dtype."""
    dtype, device = DTYPES[dtype_name], args.device
    h, d, p = args.heads, args.head_dim, args.prefix
    hw = args.grid
    qkv = torch.randn(args.batch, p + hw[0] * hw[1], 3 * h * d, device=device).to(dtype)
    qkv = qkv.unflatten(-1, (3, h, d)).permute(2, 0, 3, 1, 4)  # (3, B, h, P+N, d)
    qk, q, k = qkv[:2], qkv[0], qkv[1]

    axial = RoPEAxial(d, args.theta).to(device)
    timm_axial = RotaryEmbeddingCat(d, temperature=args.theta, in_pixels=False, grid_indexing='xy',
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--grid', default='64x64', help='token grid HxW (default 64x64, 1024 px at patch 16)')
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--heads', type=int, default=12)
    parser.add_argument('--head-dim', type=int, default=64)
    parser.add_argument('--prefix', type=int, default=0, help='prefix (CLS) tokens, not rotated')
    parser.add_argument('--theta', type=float, default=100.0, help='RoPE-Axial theta')
    parser.add_argument('--dtypes', nargs='+', default=['fp32', 'bf16'], choices=list(DTYPES))
    parser.add_argument('--repeats', type=int, default=15)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch default)')
    parser.add_argument('--out', default='work_dirs/benchmark_rope')
    args = parser.parse_args()
    args.grid = tuple(int(s) for s in args.grid.lower().split('x'))
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)

    cases = {}
    for dtype_name in args.dtypes:
        cases.update({(dtype_name, *key): fn for key, fn in make_cases(args, dtype_name).items()})
    with torch.no_grad():
        times = time_interleaved({' / '.join(key): fn for key, fn in cases.items()}, warmup=args.warmup,
                                 repeats=args.repeats, device=args.device)
    rows = [dict(zip(('dtype', 'encoding', 'impl', 'work'), key), ms=times[' / '.join(key)] * 1e3) for key in cases]

    def timm_row(row, work):
        return next(r for r in rows if r['impl'] == 'timm' and r['work'] == work
                    and r['dtype'] == row['dtype'] and r['encoding'] == row['encoding'])

    for row in rows:
        row['vs_timm_apply'] = round(row['ms'] / timm_row(row, 'apply')['ms'], 3)
    setting = (f"q and k ({args.batch}, {args.heads}, {args.prefix}+{args.grid[0]}x{args.grid[1]}, "
               f"{args.head_dim}), {args.device}, {torch.get_num_threads()} threads, median of {args.repeats}")
    report(rows, lambda row: timm_row(row, row['work']), 'ms', os.path.join(args.out, 'rope_vs_timm'),
           f'Rotating q and k: mmpe vs timm apply_rot_embed_cat ({setting})')


if __name__ == '__main__':
    main()
