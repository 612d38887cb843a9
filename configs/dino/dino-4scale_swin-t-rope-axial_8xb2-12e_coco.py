# DINO 4-scale, Swin-T with RoPE-Axial (fixed frequencies, theta 50, window-local coordinates, no RPB).
# ImageNet weights: the RoPE-ViT authors' swin_rope_axial_tiny_patch4_window7_224 from the Hugging Face
# hub (their Swin RoPE layout, detected and converted on load; offline clusters: tools/misc/fetch_weights.py).
_base_ = './dino-4scale_swin-t-rpb_8xb2-12e_coco.py'

pretrained = 'hf://naver-ai/swin_rope_axial_tiny_patch4_window7_224'
model = dict(
    backbone=dict(
        pos_embed=dict(type='rope_axial'),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
