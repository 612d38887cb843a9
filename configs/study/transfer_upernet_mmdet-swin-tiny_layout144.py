# Transfer study, fine-tuning with mmdet's own SwinTransformer (issue 32): transfer_upernet_swin-
# tiny_layout144.py with the backbone of pretrain_mmdet-swin-tiny_layout48.py, initialised from that pretraining
# (compare_encodings.py sets init_cfg). Tabulated in the cell of mmpe's Swin-tiny as the encoding 'rpb (mmdet
# SwinTransformer)', paired by seed with mmpe's 'rpb'.
_base_ = './transfer_upernet_swin-tiny_layout144.py'
custom_imports = dict(imports=['mmpe', 'mmpe.evaluation', 'mmdet.models'], allow_failed_imports=False)

study = dict(backbone='Swin-tiny (48 -> 144 px)', encoding='rpb (mmdet SwinTransformer)')
model = dict(backbone=dict(_delete_=True, type='mmdet.SwinTransformer', pretrain_img_size={{_base_.pretrain_size}},
                           embed_dims=32, patch_size=4, window_size=4, mlp_ratio=2, depths=[1, 1, 2, 1],
                           num_heads=[2, 4, 8, 16], strides=(4, 2, 2, 2), out_indices=(0, 1, 2, 3), qkv_bias=True,
                           patch_norm=True, drop_path_rate=0.0, init_cfg=None))
