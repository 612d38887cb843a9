# UperNet, Swin-T with RoPE-Axial (theta 50, window-local coordinates, no RPB), ADE20k 512x512, 160k iterations.
# ImageNet weights: the RoPE-ViT authors' swin_rope_axial_tiny_patch4_window7_224, converted with
#   python tools/convert_swin.py swin_rope_axial_tiny_patch4_window7_224.pth \
#       checkpoints/swin-t-rope-axial_mmpe.pth --pos-embed rope_axial
# Set `pretrained` to the converted file; nothing is downloaded.
_base_ = './upernet_swin-t-rpb_8xb2-160k_ade20k-512x512.py'

pretrained = 'checkpoints/swin-t-rope-axial_mmpe.pth'
model = dict(
    backbone=dict(
        pos_embed=dict(type='rope_axial'),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
