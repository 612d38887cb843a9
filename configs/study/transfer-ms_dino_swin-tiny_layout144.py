# Transfer study, multi-scale fine-tuning (issue 32): transfer_dino_swin-tiny_layout144.py trained with
# mmdet's DINO augmentation family scaled to 144 px (random-choice resize to 86-144 px, or resize + crop +
# resize; _base_/transfer-ms_pipelines.py). Same pretraining, recipe and test pipeline as the single-size
# config.
_base_ = ['./transfer_dino_swin-tiny_layout144.py', './_base_/transfer-ms_pipelines.py']

custom_imports = dict(imports=['mmpe', 'mmpe.datasets.transforms'], allow_failed_imports=False)
study = dict(backbone='Swin-tiny (DINO, 48 -> 144 px, multi-scale)')
train_dataloader = dict(dataset=dict(pipeline={{_base_.ms_det_train_pipeline}}))
