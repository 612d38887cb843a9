# UperNet, ViT-L/16 with RoPE-Mixed + mmseg's MultiLevelNeck, ADE20k 512x512, 160k iterations.
# ImageNet weights: the RoPE-ViT authors' weights in timm, vit_large_patch16_rope_mixed_224.naver_in1k (timm's Eva
# layout, converted on load; offline clusters: tools/misc/fetch_weights.py).
_base_ = './upernet_vit-l16-ape_mln_8xb2-160k_ade20k-512x512.py'

pretrained = 'timm://vit_large_patch16_rope_mixed_224.naver_in1k'
model = dict(backbone=dict(pos_embed=dict(type='rope_mixed'), init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
