# Transfer study, pretraining with mmdet's own SwinTransformer (issue 32): pretrain_swin-tiny_layout48.py with
# the same Swin-tiny as mmdet.models.backbones.SwinTransformer (relative position bias, mmdet's padding), to
# tell Swin's behaviour under this protocol from a defect of PESwinTransformer.
_base_ = './pretrain_swin-tiny_layout48.py'
custom_imports = dict(imports=['mmpe', 'mmpe.evaluation', 'mmdet.models'], allow_failed_imports=False)

study = dict(backbone='Swin-tiny (pretraining, 48 px)', encoding='rpb (mmdet SwinTransformer)')
model = dict(backbone=dict(_delete_=True, type='mmdet.SwinTransformer', pretrain_img_size={{_base_.image_size}},
                           embed_dims=32, patch_size=4, window_size=4, mlp_ratio=2, depths=[1, 1, 2, 1],
                           num_heads=[2, 4, 8, 16], strides=(4, 2, 2, 2), out_indices=(0, 1, 2, 3), qkv_bias=True,
                           patch_norm=True, drop_path_rate=0.0, init_cfg=None))
