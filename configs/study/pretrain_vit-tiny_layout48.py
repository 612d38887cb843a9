# Transfer study, pretraining (ViT): the ViT-tiny of upernet_vit-tiny_layout.py trained from scratch on
# the 'layout' task rendered at 48x48 (6x6 tokens of patch 8), the analogue of ImageNet's 224 px,
# with the position-blind 1x1 head of fcn1x1_vit-tiny_layout.py: the task's absolute (image half) and
# relative (left/right disk) labels must come from the backbone's encoding, so pretraining trains it.
# Square images, so a learned APE table resizes like a 224 px ImageNet one. The fine-tuning configs
# (transfer_*_vit-tiny_layout144.py) start from its checkpoint; compare_encodings.py --preset transfer
# (mmpe/analysis/transfer.py) runs both stages per encoding and seed.
_base_ = './fcn1x1_vit-tiny_layout.py'

data_root = '{{$MMPE_TRANSFER_PRETRAIN:data/transfer/pretrain48/seg/}}'  # environment variable overrides
image_size = (48, 48)
max_iters = 1000
study = dict(backbone='ViT-tiny (pretraining, 48 px)')

model = dict(data_preprocessor=dict(size=image_size), backbone=dict(img_size=image_size))
train_dataloader = dict(batch_size=8, dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=max_iters // 10),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=max_iters // 10, end=max_iters, by_epoch=False)]
default_hooks = dict(checkpoint=dict(interval=max_iters // 2))
