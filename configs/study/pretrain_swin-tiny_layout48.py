# Transfer study, pretraining (Swin): the Swin-tiny of upernet_swin-tiny_layout.py (patch 4, window 4)
# trained from scratch on the 'layout' task at 48x48 (stage maps 12x12, 6x6, 3x3, 2x2), as
# pretrain_vit-tiny_layout48.py. The light, position-blind head: the four stage maps resized to the
# first one's size and concatenated (mmseg's resize_concat), then 1x1 convolutions only.
_base_ = './pretrain_vit-tiny_layout48.py'

study = dict(backbone='Swin-tiny (pretraining, 48 px)')
model = dict(
    backbone=dict(
        _delete_=True, type='PESwinTransformer', pos_embed=dict(type='rpb'), pretrain_img_size={{_base_.image_size}},
        embed_dims=32, patch_size=4, window_size=4, mlp_ratio=2, depths=[1, 1, 2, 1], num_heads=[2, 4, 8, 16],
        strides=(4, 2, 2, 2), out_indices=(0, 1, 2, 3), qkv_bias=True, patch_norm=True, drop_path_rate=0.0,
        init_cfg=None),
    decode_head=dict(in_channels=[32, 64, 128, 256], in_index=[0, 1, 2, 3], input_transform='resize_concat'))
