# Transfer study, fine-tuning (segmentation): transfer_upernet_vit-tiny_layout144.py with the Swin-tiny of
# upernet_swin-tiny_layout.py at 144x144 (patch grid 36x36, 3x the 12x12 of pretrain_swin-tiny_layout48.py
# per side), initialised from that pretraining.
_base_ = './transfer_upernet_vit-tiny_layout144.py'

study = dict(backbone='Swin-tiny (48 -> 144 px)')
model = dict(
    backbone=dict(
        _delete_=True, type='PESwinTransformer', pos_embed=dict(type='rpb'),
        pretrain_img_size={{_base_.pretrain_size}}, embed_dims=32, patch_size=4, window_size=4, mlp_ratio=2,
        depths=[1, 1, 2, 1], num_heads=[2, 4, 8, 16], strides=(4, 2, 2, 2), out_indices=(0, 1, 2, 3),
        qkv_bias=True, patch_norm=True, drop_path_rate=0.0, init_cfg=None),
    neck=None,
    decode_head=dict(in_channels=[32, 64, 128, 256]))
