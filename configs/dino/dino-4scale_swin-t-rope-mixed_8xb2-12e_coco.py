# DINO 4-scale, Swin-T with RoPE-Mixed (learnable frequencies, window-local coordinates, no RPB).
# ImageNet weights: the RoPE-ViT authors' swin_rope_mixed_tiny_patch4_window7_224, converted with
#   python tools/convert_swin.py swin_rope_mixed_tiny_patch4_window7_224.pth \
#       checkpoints/swin-t-rope-mixed_mmpe.pth --pos-embed rope_mixed
# Set `pretrained` to the converted file; nothing is downloaded.
_base_ = './dino-4scale_swin-t-rpb_8xb2-12e_coco.py'

pretrained = 'checkpoints/swin-t-rope-mixed_mmpe.pth'
model = dict(
    backbone=dict(
        pos_embed=dict(type='rope_mixed'),
        convert_weights=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
