# Encoding study, detection: the small DINO + Swin of the CPU demo on the synthetic 'layout' task
# (tools/misc/make_synthetic_data.py --task layout; see upernet_vit-tiny_layout.py), 128x160 images,
# no flips (they would change the labels). 50 queries: DINO picks its queries among the encoder
# tokens, and a 0.5x test image (64x80) has 108 of them. compare_encodings.py swaps `pos_embed`.
_base_ = '../demo/dino_swin-rope-mixed_synthetic.py'

data_root = '{{$MMPE_LAYOUT_DET:data/layout/det/}}'  # environment variable overrides
metainfo = dict(classes=('square-left', 'square-right', 'disk-left', 'disk-right'))
num_classes = 4
study = dict(backbone='Swin-tiny (DINO)')

model = dict(num_queries=50, bbox_head=dict(num_classes=num_classes), test_cfg=dict(max_per_img=50))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(160, 128), keep_ratio=True),  # eval_multires.py scales this
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator
