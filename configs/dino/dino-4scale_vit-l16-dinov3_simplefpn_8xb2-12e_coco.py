# DINO 4-scale, ViT-L/16 DINOv3 + simple feature pyramid (ViTDet: 14x14 windows, global attention in blocks 5, 11,
# 17, 23), COCO, 12 epochs, with layer-wise learning-rate decay; the ViT-B config with what differs.
# Weights: Meta's DINOv3 ViT-L/16 (LVD-1689M) as timm publishes it, vit_large_patch16_dinov3.lvd1689m.
# ViTDet's ViT-L fine-tuning: layer-wise lr decay 0.8, drop path 0.4.
_base_ = './dino-4scale_vit-b16-dinov3_simplefpn_8xb2-12e_coco.py'

pretrained = 'timm://vit_large_patch16_dinov3.lvd1689m'
depth = 24
model = dict(
    backbone=dict(embed_dims=1024, depth=depth, num_heads=16, drop_path_rate=0.4,
                  global_attn_indices=(5, 11, 17, 23), out_indices=(depth - 1, ),
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=1024))

optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.8))
