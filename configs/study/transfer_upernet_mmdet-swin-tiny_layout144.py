# Transfer study, fine-tuning with mmdet's own SwinTransformer (issue 32): transfer_upernet_swin-
# tiny_layout144.py with the backbone of pretrain_mmdet-swin-tiny_layout48.py, initialised from that pretraining
# (compare_encodings.py sets init_cfg). Tabulated in the cell of mmpe's Swin-tiny as the encoding 'rpb (mmdet
# SwinTransformer)', paired by seed with mmpe's 'rpb'.
_base_ = ['./transfer_upernet_swin-tiny_layout144.py', './_base_/mmdet-swin-tiny_backbone.py']
custom_imports = dict(imports=['mmpe', 'mmpe.evaluation', 'mmdet.models'], allow_failed_imports=False)

study = dict(backbone='Swin-tiny (48 -> 144 px)', encoding='rpb (mmdet SwinTransformer)')
model = dict(backbone={{_base_.mmdet_swin_tiny}})
