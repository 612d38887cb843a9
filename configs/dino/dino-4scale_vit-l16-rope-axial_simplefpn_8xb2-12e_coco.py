# DINO 4-scale, ViT-L/16 with RoPE-Axial (theta 100) + simple feature pyramid (ViTDet windows), COCO, 12 epochs.
# ImageNet weights: the RoPE-ViT authors' weights in timm, vit_large_patch16_rope_224.naver_in1k (timm's Eva
# layout, converted on load; offline clusters: tools/misc/fetch_weights.py).
_base_ = './dino-4scale_vit-l16-ape_simplefpn_8xb2-12e_coco.py'

pretrained = 'timm://vit_large_patch16_rope_224.naver_in1k'
model = dict(backbone=dict(pos_embed=dict(type='rope_axial'), init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
