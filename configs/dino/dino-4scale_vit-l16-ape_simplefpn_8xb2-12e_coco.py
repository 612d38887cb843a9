# DINO 4-scale, ViT-L/16 with a learned absolute position embedding (APE) + simple feature pyramid (ViTDet: 14x14
# windows, global attention in blocks 5, 11, 17, 23), COCO, 12 epochs: the ViT-B APE config with the backbone
# made large. The baseline of the ViT-L encoding comparison; the other ViT-L configs inherit from it.
# ViT-L settings are ViTDet's (Li et al. 2022; detectron2's ViTDet ViT-L configs, also mmdet's
# dino-eva_02_vitdet_l config): global attention in every sixth block, drop path 0.4. The RoPE-ViT paper does not
# list them.
# ImageNet weights: the RoPE-ViT authors' deit_large_patch16_LS (DeiT-III with APE) from the Hugging Face hub,
# converted on load (offline clusters: tools/misc/fetch_weights.py).
_base_ = './dino-4scale_vit-b16-ape_simplefpn_8xb2-12e_coco.py'

pretrained = 'hf://naver-ai/deit_large_patch16_LS'
depth = 24
model = dict(
    backbone=dict(
        embed_dims=1024,
        depth=depth,
        num_heads=16,
        drop_path_rate=0.4,
        global_attn_indices=(5, 11, 17, 23),
        out_indices=(23, ),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=1024))

# The ViT-B config's optimizer rules, extended to the 24 blocks (norms without weight decay).
backbone_no_decay = dict(lr_mult=0.1, decay_mult=0.0)
optim_wrapper = dict(paramwise_cfg=dict(
    custom_keys={f'backbone.blocks.{block}.norm': backbone_no_decay for block in range(depth)}))
