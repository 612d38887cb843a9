"""Parameters and FLOPs of a config's backbone for each encoding (``mmpe.analysis.complexity``).

    python tools/analysis_tools/flops.py CONFIG --shape H W [--encodings ape rope_mixed ...] [--out PREFIX]

One FLOP is one multiply-add (fvcore / mmengine convention); attention
(scaled_dot_product_attention: q k^T and attention x v) and the RoPE rotation (2 per rotated
q/k element) are counted, elementwise operations are not (listed under 'not counted').
Without --encodings the config's own encoding is measured. Writes PREFIX.md/.csv (default
work_dirs/flops/<config name>_<H>x<W>).
"""
import argparse
import os.path as osp

from mmengine.config import Config

import mmpe  # noqa: F401  (compatibility fixes and model registration)
from mmpe.analysis.complexity import ROPE_OPS, build_backbone, model_complexity
from mmpe.analysis.report import write_table
from mmpe.analysis.study import encoding_name, parse_encoding


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config')
    parser.add_argument('--shape', type=int, nargs=2, required=True, metavar=('H', 'W'), help='input image size')
    parser.add_argument('--encodings', nargs='+', help='preset names or NAME=DICT pos_embed dicts')
    parser.add_argument('--out', help='output prefix of the .md/.csv table')
    args = parser.parse_args()
    cfg = Config.fromfile(args.config)
    encodings = ([parse_encoding(e) for e in args.encodings] if args.encodings
                 else [(encoding_name(cfg.model.backbone.pos_embed), None)])
    rope_ops = {op.split('::')[-1] for op in ROPE_OPS}
    rows = []
    for name, pos_embed in encodings:
        if pos_embed is not None:
            cfg.model.backbone.pos_embed = pos_embed
        result = model_complexity(build_backbone(cfg), tuple(args.shape))
        by_op = result['flops_by_operator']
        rows.append({'backbone': cfg.model.backbone.type, 'encoding': name, 'input': 'x'.join(map(str, args.shape)),
                     'params (M)': result['params'] / 1e6, 'GFLOPs': result['flops'] / 1e9,
                     'attention GFLOPs': by_op.get('scaled_dot_product_attention', 0) / 1e9,
                     'RoPE GFLOPs': sum(v for k, v in by_op.items() if k in rope_ops) / 1e9,
                     'not counted': ', '.join(sorted(result['not_counted']))})
        print(rows[-1], flush=True)
    out = args.out or osp.join('work_dirs', 'flops',
                               f'{osp.splitext(osp.basename(args.config))[0]}_{args.shape[0]}x{args.shape[1]}')
    print(write_table(rows, out, f'{osp.basename(args.config)} backbone at {args.shape[0]}x{args.shape[1]}'))


if __name__ == '__main__':
    main()
