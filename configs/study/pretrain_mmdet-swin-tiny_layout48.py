# Transfer study, pretraining with mmdet's own SwinTransformer (issue 32): pretrain_swin-tiny_layout48.py with
# the same Swin-tiny as mmdet.models.backbones.SwinTransformer (relative position bias, mmdet's padding), to
# tell Swin's behaviour under this protocol from a defect of PESwinTransformer.
_base_ = ['./pretrain_swin-tiny_layout48.py', './_base_/mmdet-swin-tiny_backbone.py']
custom_imports = dict(imports=['mmpe', 'mmpe.evaluation', 'mmdet.models'], allow_failed_imports=False)

study = dict(backbone='Swin-tiny (pretraining, 48 px)', encoding='rpb (mmdet SwinTransformer)')
model = dict(backbone={{_base_.mmdet_swin_tiny}})
