# UperNet, ViT-L/16 DINOv3 + mmseg's MultiLevelNeck, ADE20k 512x512, 160k iterations, with layer-wise learning-rate
# decay; the ViT-B config with what differs. ViT-L settings as the other ViT-L UperNet configs (mmseg's BEiT-L
# UperNet: features of blocks 7, 11, 15, 23, 1024 channels, drop path 0.2).
# Weights: Meta's DINOv3 ViT-L/16 (LVD-1689M) as timm publishes it, vit_large_patch16_dinov3.lvd1689m.
# Layer-wise lr decay 0.8 (ViTDet's ViT-L value; 0.8 ** 25 ~ 0.65 ** 13: the patch embedding gets the same share
# of the lr as in the ViT-B config).
_base_ = './upernet_vit-b16-dinov3_mln_8xb2-160k_ade20k-512x512.py'

pretrained = 'timm://vit_large_patch16_dinov3.lvd1689m'
model = dict(
    backbone=dict(embed_dims=1024, depth=24, num_heads=16, drop_path_rate=0.2, out_indices=(7, 11, 15, 23),
                  init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[1024] * 4, out_channels=1024),
    decode_head=dict(in_channels=[1024] * 4),
    auxiliary_head=dict(in_channels=1024))

optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.8))
