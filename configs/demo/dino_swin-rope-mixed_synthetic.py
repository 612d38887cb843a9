# CPU demo: a small DINO + Swin + RoPE-Mixed trained from scratch on the synthetic COCO-format set
# (tools/misc/make_synthetic_data.py; classes depend on shape and on which half of the image an
# object is in). Evaluated with the real CocoMetric. Everything else inherits the flagship.
_base_ = '../dino/dino-4scale_swin-t-rope-mixed_8xb2-12e_coco.py'

data_root = '{{$MMPE_SYNTHETIC_DET:data/synthetic/det/}}'  # environment variable overrides
metainfo = dict(classes=('square-top', 'square-bottom', 'disk-top', 'disk-bottom'))
num_classes = 4
max_iters = 600

# DINO's decoder is tied to 256 channels (mmdet's coordinate_to_encoding default), so the demo
# shrinks depth and feed-forward width instead.
model = dict(
    num_queries=100,
    backbone=dict(embed_dims=32, depths=[1, 1, 2, 1], num_heads=[2, 4, 8, 16], drop_path_rate=0.1,
                  init_cfg=None),
    neck=dict(in_channels=[64, 128, 256]),
    encoder=dict(num_layers=2, layer_cfg=dict(ffn_cfg=dict(feedforward_channels=512))),
    decoder=dict(num_layers=2, layer_cfg=dict(ffn_cfg=dict(feedforward_channels=512))),
    bbox_head=dict(num_classes=num_classes),
    dn_cfg=dict(group_cfg=dict(num_dn_queries=20)),
    test_cfg=dict(max_per_img=100))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomFlip', prob=0.5),  # horizontal: labels depend on the vertical half only
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(320, 256), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=1,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=None,
    dataset=dict(data_root=data_root, metainfo=metainfo, ann_file='annotations/instances_train.json',
                 data_prefix=dict(img='train/'), filter_cfg=dict(filter_empty_gt=False), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=2,
    num_workers=1,
    dataset=dict(data_root=data_root, metainfo=metainfo, ann_file='annotations/instances_val.json',
                 data_prefix=dict(img='val/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

# From scratch: the backbone learns at the full rate; encodings and norms get no weight decay.
optim_wrapper = dict(
    optimizer=dict(lr=2e-4),
    paramwise_cfg=dict(_delete_=True, norm_decay_mult=0.0, custom_keys={'pos_embed': dict(decay_mult=0.0)}))
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
param_scheduler = [dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
                        milestones=[int(max_iters * 0.8)], gamma=0.1)]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters // 2, max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
auto_scale_lr = dict(enable=False)
randomness = dict(seed=0)  # a fixed seed also fixes the sampler order, so --resume repeats a straight run
custom_hooks = [dict(type='RandomStateHook')]  # exact resume (mmpe.engine.hooks)
