# Encoding study, segmentation: the same task, data, head and schedule as
# upernet_vit-tiny_layout.py with a small Swin (window attention; its default encoding is RPB).
_base_ = './upernet_vit-tiny_layout.py'

study = dict(backbone='Swin-tiny')
# Swin: patch 4, widths 32-256, depths 1-1-2-1, head dim 16, window 4 (maps 32x40 .. 4x5 at 128x160).
model = dict(
    backbone=dict(
        _delete_=True, type='PESwinTransformer', pos_embed=dict(type='rpb'), pretrain_img_size=224,
        embed_dims=32, patch_size=4, window_size=4, mlp_ratio=2, depths=[1, 1, 2, 1], num_heads=[2, 4, 8, 16],
        strides=(4, 2, 2, 2), out_indices=(0, 1, 2, 3), qkv_bias=True, patch_norm=True, drop_path_rate=0.0,
        init_cfg=None),
    neck=None,
    decode_head=dict(in_channels=[32, 64, 128, 256]))
