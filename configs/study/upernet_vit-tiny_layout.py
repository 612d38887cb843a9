# Encoding study, segmentation: a small UperNet + ViT trained from scratch on the synthetic
# 'layout' task (tools/misc/make_synthetic_data.py --task layout; mmpe/datasets/synthetic.py): squares
# labelled by the image half they lie in (absolute position), two disks labelled left/right of
# each other (relative layout), every size relative to the image. Trained at 128x160, no flips
# (they would change the labels). tools/analysis_tools/compare_encodings.py swaps `pos_embed` and the seed.
# ClassIoUMetric adds per-class IoU and the group means IoU.absolute (squares) and IoU.relative (disks).
_base_ = '../upernet/upernet_vit-b16-ape_mln_8xb2-160k_ade20k-512x512.py'
custom_imports = dict(imports=['mmpe', 'mmpe.evaluation'], allow_failed_imports=False)

data_root = '{{$MMPE_LAYOUT_SEG:data/layout/seg/}}'  # environment variable overrides
classes = ('background', 'square-left', 'square-right', 'disk-left', 'disk-right')
metainfo = dict(classes=classes, palette=[[0, 0, 0], [220, 20, 60], [0, 0, 142], [250, 170, 30], [106, 0, 228]])
num_classes = len(classes)
image_size = (128, 160)
max_iters = 250
norm_cfg = dict(type='BN', requires_grad=True)  # single process on CPU
study = dict(backbone='ViT-tiny')

# ViT: patch 8 (16x20 tokens at 128x160), width 64, 4 blocks of 4 heads (head dim 16), CLS token,
# no LayerScale (from scratch). The neck turns the stride-8 maps into strides 4, 8, 16, 32.
# Background (85% of the pixels) has a quarter of the loss weight, so a short schedule gets past
# 'everything is background'.
model = dict(
    data_preprocessor=dict(size=image_size),
    backbone=dict(img_size=image_size, patch_size=8, embed_dims=64, depth=4, num_heads=4, mlp_ratio=2,
                  layer_scale_init_value=None, drop_path_rate=0.0, out_indices=(0, 1, 2, 3), init_cfg=None),
    neck=dict(in_channels=[64] * 4, out_channels=64, scales=[2, 1, 0.5, 0.25]),
    decode_head=dict(in_channels=[64] * 4, channels=32, num_classes=num_classes, norm_cfg=norm_cfg,
                     loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
                                      class_weight=[0.25, 1.0, 1.0, 1.0, 1.0])),
    auxiliary_head=None)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
test_pipeline = [  # eval_multires.py inserts a Resize after loading for scales other than 1
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
# ADE20k file layout and label convention (0 = ignore, 1..5 -> 0..4), with our own classes.
dataset = dict(type='BaseSegDataset', data_root=data_root, metainfo=metainfo, img_suffix='.jpg',
               seg_map_suffix='.png', reduce_zero_label=True)
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(**dataset, data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(**dataset, data_prefix=dict(img_path='images/validation',
                                             seg_map_path='annotations/validation'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='ClassIoUMetric', iou_metrics=['mIoU'],
    class_groups=dict(absolute=classes[1:3], relative=classes[3:5]))
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=2e-3, weight_decay=0.05))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=max_iters // 10),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=max_iters // 10, end=max_iters, by_epoch=False)]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20, log_metric_by_epoch=False),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=max_iters // 2, max_keep_ckpts=1))
randomness = dict(seed=0)
custom_hooks = [dict(type='RandomStateHook')]  # exact resume (mmpe.engine.hooks)
