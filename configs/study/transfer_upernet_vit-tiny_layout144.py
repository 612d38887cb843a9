# Transfer study, fine-tuning (segmentation): upernet_vit-tiny_layout.py at 144x144 (18x18 tokens, 3x the
# 6x6 grid of pretrain_vit-tiny_layout48.py per side), the backbone initialised from that pretraining the
# way ImageNet weights are: compare_encodings.py sets model.backbone.init_cfg=dict(type='Pretrained',
# checkpoint=...). img_size stays the pretraining size, as in the ImageNet configs (img_size=224 there):
# it is the reference grid of a learned APE table (resized bicubically to each input grid) and of RoPE's
# coords='interpolate'. One recipe for every encoding: AdamW lr 2e-3, weight decay 0.05 (none on
# encodings), 10% linear warm-up then linear decay, batch 4, no flips.
_base_ = './upernet_vit-tiny_layout.py'

data_root = '{{$MMPE_TRANSFER_SEG:data/transfer/finetune144/seg/}}'  # environment variable overrides
image_size = (144, 144)
pretrain_size = (48, 48)
max_iters = 400
study = dict(backbone='ViT-tiny (48 -> 144 px)')

model = dict(data_preprocessor=dict(size=image_size), backbone=dict(img_size=pretrain_size))
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=max_iters // 10),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=max_iters // 10, end=max_iters, by_epoch=False)]
default_hooks = dict(checkpoint=dict(interval=max_iters // 2))
