"""Convert a ViT checkpoint (timm Eva or VisionTransformer, the RoPE-ViT authors' DeiT-III) for PEVisionTransformer.

    python tools/model_converters/convert_timm_vit.py vit_base_patch16_rope_mixed_224.safetensors out.pth

The output holds {'state_dict': ...} and loads with
``init_cfg=dict(type='Pretrained', checkpoint='out.pth')``. Not needed to train: the backbone
detects and converts these layouts on load (also by name: timm://MODEL.TAG, hf://OWNER/REPO).
"""
import argparse

import torch

from mmpe.converters import convert_timm_vit, load_state_file, timm_vit_layout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='timm checkpoint (.pth, .pt, .bin or .safetensors)')
    parser.add_argument('dst', help='output .pth file')
    parser.add_argument('--num-heads', type=int, default=None,
                        help="attention heads; only needed for the RoPE-ViT authors' RoPE-Mixed checkpoints "
                             "(flat 'freqs')")
    parser.add_argument('--trust-pickle', action='store_true',
                        help='read a trusted torch file with weights_only=False (e.g. DeiT checkpoints with args)')
    args = parser.parse_args()

    state = load_state_file(args.src, trust_pickle=args.trust_pickle)
    layout = timm_vit_layout(state)
    converted, ignored = convert_timm_vit(state, args.num_heads)
    for key, reason in ignored.items():
        print(f'dropped {key}: {reason}')
    torch.save({'state_dict': converted, 'meta': {'source': args.src, 'layout': layout}}, args.dst)
    print(f'{layout} layout, {len(state)} keys -> {len(converted)} keys written to {args.dst}')


if __name__ == '__main__':
    main()
