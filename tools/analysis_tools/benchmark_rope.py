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

import torch

from mmpe.analysis.benchmark_cases import DTYPES, rope_benchmark


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
    rope_benchmark(grid=args.grid, batch=args.batch, heads=args.heads, head_dim=args.head_dim, prefix=args.prefix,
                   theta=args.theta, dtypes=args.dtypes, repeats=args.repeats, warmup=args.warmup, device=args.device,
                   out=args.out)


if __name__ == '__main__':
    main()
