# Multi-scale fine-tuning length probe (issue 32; docs/results.md "Swin off its size"): the multi-scale Swin
# UperNet fine-tuning with 3x the iterations (1200 instead of 400), same warm-up share and poly decay, to test
# whether multi-scale training's lower 1x accuracy is its smaller share of iterations at the test size.
_base_ = ['../transfer-ms_upernet_swin-tiny_layout144.py']

max_iters = 1200
study = dict(backbone='Swin-tiny (48 -> 144 px, multi-scale, 1200 its)')
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=max_iters // 10),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=max_iters // 10, end=max_iters, by_epoch=False)]
default_hooks = dict(checkpoint=dict(interval=max_iters // 2))
