# DINO fine-tuning length probe (issue 32, item 4; docs/results.md "DINO: fine-tuning length and seed spread"):
# the multi-scale ViT DINO fine-tuning with 200 iterations, the step down of the learning rate at 80%.
_base_ = ['../transfer-ms_dino_vit-tiny_layout144.py']

max_iters = 200
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
                        milestones=[int(max_iters * 0.8)], gamma=0.1)]
default_hooks = dict(checkpoint=dict(interval=max_iters // 2))
