# UperNet, ViT-L/16 with a learned absolute position embedding (APE) + mmseg's MultiLevelNeck, ADE20k 512x512,
# 160k iterations: the ViT-B APE config with the backbone made large. The baseline of the ViT-L encoding
# comparison; the other ViT-L UperNet configs inherit from it.
# ViT-L settings are mmseg's BEiT-L UperNet's (features of blocks 7, 11, 15, 23; drop path 0.2); the RoPE-ViT
# paper does not list them.
# ImageNet weights: the RoPE-ViT authors' deit_large_patch16_LS (DeiT-III with APE) from the Hugging Face hub,
# converted on load (offline clusters: tools/misc/fetch_weights.py).
_base_ = './upernet_vit-b16-ape_mln_8xb2-160k_ade20k-512x512.py'

pretrained = 'hf://naver-ai/deit_large_patch16_LS'
model = dict(
    backbone=dict(
        embed_dims=1024,
        depth=24,
        num_heads=16,
        drop_path_rate=0.2,
        out_indices=(7, 11, 15, 23),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[1024, 1024, 1024, 1024], out_channels=1024),
    decode_head=dict(in_channels=[1024, 1024, 1024, 1024]),
    auxiliary_head=dict(in_channels=1024))
