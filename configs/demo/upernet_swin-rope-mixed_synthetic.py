# CPU demo: a small UperNet + Swin + RoPE-Mixed trained from scratch on the synthetic ADE20k-layout
# set (tools/misc/make_synthetic_data.py), evaluated with the real IoUMetric.
_base_ = '../upernet/upernet_swin-t-rope-mixed_8xb2-160k_ade20k-512x512.py'

data_root = '{{$MMPE_SYNTHETIC_SEG:data/synthetic/seg/}}'  # environment variable overrides
metainfo = dict(classes=('background', 'square-top', 'square-bottom', 'disk-top', 'disk-bottom'),
                palette=[[0, 0, 0], [220, 20, 60], [0, 0, 142], [119, 11, 32], [0, 60, 100]])
num_classes = 5
image_size = (256, 320)
max_iters = 400
norm_cfg = dict(type='BN', requires_grad=True)  # single process on CPU

model = dict(
    data_preprocessor=dict(size=image_size),
    backbone=dict(embed_dims=32, depths=[1, 1, 2, 1], num_heads=[2, 4, 8, 16], drop_path_rate=0.1,
                  init_cfg=None),
    decode_head=dict(in_channels=[32, 64, 128, 256], channels=64, num_classes=num_classes, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=128, channels=32, num_classes=num_classes, norm_cfg=norm_cfg))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomFlip', prob=0.5),  # horizontal: labels depend on the vertical half only
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
# ADE20k file layout and label convention (0 = ignore, 1..5 -> 0..4), with our own classes.
dataset = dict(type='BaseSegDataset', data_root=data_root, metainfo=metainfo, img_suffix='.jpg',
               seg_map_suffix='.png', reduce_zero_label=True)
train_dataloader = dict(
    batch_size=2, num_workers=1,
    dataset=dict(**dataset, data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=1,
    dataset=dict(**dataset, data_prefix=dict(img_path='images/validation',
                                             seg_map_path='annotations/validation'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=1e-3))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
param_scheduler = [dict(type='PolyLR', eta_min=0.0, power=1.0, begin=0, end=max_iters, by_epoch=False)]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters // 2, max_keep_ckpts=2))
randomness = dict(seed=0)  # a fixed seed also fixes the sampler order, so --resume repeats a straight run
custom_hooks = [dict(type='RandomStateHook')]  # exact resume (mmpe.engine.hooks)
