"""Convert a Swin checkpoint (official Microsoft Swin, timm Swin, or the RoPE-ViT authors' Swin RoPE
``swin_rope_{axial,mixed}_{tiny,small,base}_patch4_window7_224``) to PESwinTransformer (mmdet layout).

    python tools/model_converters/convert_swin.py swin_rope_mixed_tiny_patch4_window7_224.pth swin_t_rope_mixed.pth \\
        --pos-embed rope_mixed

Not needed to train: PESwinTransformer detects and converts these layouts on load (also by name,
``hf://naver-ai/swin_rope_mixed_tiny_patch4_window7_224``, ``timm://swin_tiny_patch4_window7_224.ms_in1k``).
The output (for ``init_cfg=dict(type='Pretrained', checkpoint='swin_t_rope_mixed.pth')`` with the same
``pos_embed``) is a plain mmdet-layout file. Objects the originals pickle besides tensors (their yacs
config) are read as plain dicts; --trust-pickle reads other trusted files with
torch.load(weights_only=False).
"""
import argparse

import torch

from mmpe.converters import backbone_state_dict, convert_swin, load_state_file, swin_layout
from mmpe.models.swin import SWIN_AXIAL_THETA
from mmpe.pos_embed import PosEmbedSpec


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='Swin checkpoint (.pth, .safetensors; any layout mmpe.converters.swin_layout '
                                    'detects)')
    parser.add_argument('dst', help='output checkpoint for PESwinTransformer')
    parser.add_argument('--pos-embed', default='rpb', choices=['rpb', 'rope_axial', 'rope_mixed', 'ape'],
                        help="encoding of the target model (RoPE checkpoints: 'rope_axial' or 'rope_mixed')")
    parser.add_argument('--theta', type=float, default=None,
                        help=f"RoPE-Axial theta of the target model (default {SWIN_AXIAL_THETA:g}, "
                             f"PESwinTransformer's, as the authors' Swin)")
    parser.add_argument('--trust-pickle', action='store_true',
                        help='read a trusted checkpoint that pickles objects weights_only cannot stand in for '
                             'with torch.load(weights_only=False)')
    return parser.parse_args()


def main():
    args = parse_args()
    pos_embed = dict(type=args.pos_embed)
    if args.theta is not None:
        pos_embed['theta'] = args.theta
    original = backbone_state_dict(load_state_file(args.src, args.trust_pickle))
    layout = swin_layout(original)
    state_dict = convert_swin(original, PosEmbedSpec.parse(pos_embed, axial_theta=SWIN_AXIAL_THETA), layout=layout)
    torch.save({'state_dict': state_dict, 'meta': {'pos_embed': pos_embed, 'converted_from': args.src,
                                                   'layout': layout}}, args.dst)
    print(f'{args.src} ({layout} layout) -> {args.dst}: {len(state_dict)} tensors for '
          f'PESwinTransformer(pos_embed={pos_embed})')


if __name__ == '__main__':
    main()
