# DINO 4-scale, Swin-T with RoPE-Axial (fixed frequencies, theta 50, window-local coordinates, no RPB).
# ImageNet weights: the RoPE-ViT authors' swin_rope_axial_tiny_patch4_window7_224, converted with
#   python tools/convert_swin.py swin_rope_axial_tiny_patch4_window7_224.pth \
#       checkpoints/swin-t-rope-axial_mmpe.pth --pos-embed rope_axial
# Set `pretrained` to the converted file; nothing is downloaded.
_base_ = './dino-4scale_swin-t-rpb_8xb2-12e_coco.py'

pretrained = 'checkpoints/swin-t-rope-axial_mmpe.pth'
model = dict(
    backbone=dict(
        pos_embed=dict(type='rope_axial'),
        convert_weights=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
