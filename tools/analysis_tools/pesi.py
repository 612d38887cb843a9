"""PESI metrics (M_U, M_D, A_SU; LOOPE paper, docs/design.md section 9) of mmpe's positional encodings,
and maps of their similarity around a few centre cells.

    python tools/analysis_tools/pesi.py                                  # built-in encodings at 14x14, ViT-B widths
    python tools/analysis_tools/pesi.py --grids 14x14 7x7 16x24 --out work_dirs/pesi
    python tools/analysis_tools/pesi.py --checkpoint tc_ape=work_dirs/three_cell/checkpoints/ape_seed0.pth \\
        --checkpoint tc_loope=work_dirs/three_cell/checkpoints/loope_seed0.pth --per-layer

The rows (widths of --embed-dims / --num-heads, RoPE-Mixed over --depth layers, seeded by --seed), their
similarity and the outputs: ``mmpe.analysis.pesi_report``, below.
"""
import argparse

from mmpe.analysis import pesi_report as report


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
    details = report.__doc__.split('\n\n', 1)[1]  # after its summary line
    parser = argparse.ArgumentParser(description='\n'.join([__doc__, details]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
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


def main(argv=None):
    args = parse_args(argv)
    report.pesi_report(args.grids, embed_dims=args.embed_dims, num_heads=args.num_heads, depth=args.depth,
                       axial_theta=args.axial_theta, mixed_theta=args.mixed_theta, num_buckets=args.num_buckets,
                       seed=args.seed, checkpoints=args.checkpoint, per_layer=args.per_layer, image_path=args.image,
                       out=args.out)


if __name__ == '__main__':
    main()
