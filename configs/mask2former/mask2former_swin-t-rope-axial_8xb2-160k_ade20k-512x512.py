# Mask2Former, Swin-T with RoPE-Axial (theta 50, window-local coordinates, no RPB), ADE20k 512x512, 160k iterations.
# ImageNet weights: the RoPE-ViT authors' swin_rope_axial_tiny_patch4_window7_224 from the Hugging Face hub (their
# Swin RoPE layout, detected and converted on load; offline clusters: tools/misc/fetch_weights.py).
_base_ = './mask2former_swin-t-rpb_8xb2-160k_ade20k-512x512.py'

pretrained = 'hf://naver-ai/swin_rope_axial_tiny_patch4_window7_224'
model = dict(backbone=dict(pos_embed=dict(type='rope_axial'), init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
