# Transfer study, multi-scale fine-tuning (issue 32): transfer_fcn1x1_vit-tiny_layout144.py trained with
# mmseg's augmentation family (random resize 0.5-2x of 144 px, random crop 144, padding; _base_/transfer-
# ms_pipelines.py). Same pretraining, schedule, recipe and test pipeline as the single-size config.
_base_ = ['./transfer_fcn1x1_vit-tiny_layout144.py', './_base_/transfer-ms_pipelines.py']

custom_imports = dict(imports=['mmpe', 'mmpe.evaluation', 'mmpe.datasets.transforms'], allow_failed_imports=False)
study = dict(backbone='ViT-tiny + 1x1 head (48 -> 144 px, multi-scale)')
train_dataloader = dict(dataset=dict(pipeline={{_base_.ms_seg_train_pipeline}}))
