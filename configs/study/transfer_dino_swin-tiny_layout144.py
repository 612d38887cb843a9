# Transfer study, fine-tuning (detection): dino_swin-tiny_layout.py at 144x144 on the synthetic COCO
# layout set, the Swin-tiny initialised from pretrain_swin-tiny_layout48.py (compare_encodings.py sets
# model.backbone.init_cfg). Same schedule shape as the DINO demo (step decay at 80%).
_base_ = './dino_swin-tiny_layout.py'

data_root = '{{$MMPE_TRANSFER_DET:data/transfer/finetune144-det/det/}}'  # environment variable overrides
image_size = (144, 144)
pretrain_size = (48, 48)
max_iters = 200
study = dict(backbone='Swin-tiny (DINO, 48 -> 144 px)')

# the Swin-tiny of pretrain_swin-tiny_layout48.py (the demo's DINO Swin has window 7, MLP ratio 4)
model = dict(backbone=dict(pretrain_img_size=pretrain_size, window_size=4, mlp_ratio=2, drop_path_rate=0.0))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),  # eval_multires.py scales this
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
param_scheduler = [dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
                        milestones=[int(max_iters * 0.8)], gamma=0.1)]
default_hooks = dict(checkpoint=dict(interval=max_iters // 2))
