# Multi-scale fine-tuning pipelines of the transfer study (issue 32), each the augmentation family of the
# real configs scaled to the study's 144x144 images (flips left out everywhere: they change the layout
# labels). Both end with LayoutLabelsInCrop (mmpe/datasets/transforms.py): the layout task's labels derived
# again for the image as cropped (a square by the half of the crop it lies in, a disk whose partner is cropped
# out ignored), so a crop of an upscaled scene does not train on the labels of the whole scene. The configs
# import it (custom_imports). Inherited as variables by the transfer-ms_*_layout144.py configs.
#
# Segmentation, as mmseg's ADE20k pipeline (configs/_base_/datasets/ade20k.py: RandomResize of the
# 2048x512 scale by 0.5-2.0, RandomCrop 512x512, padded by SegDataPreProcessor to the crop size with
# seg_pad_val 255): RandomResize of 144x144 by 0.5-2.0, RandomCrop 144x144, padded to 144x144 by the
# data preprocessor (images smaller than the crop are padded right/bottom, their label with 255). mmseg's
# cat_max_ratio=0.75 is left at RandomCrop's default 1.0: 85% of the layout set's pixels are background,
# so nearly every crop would fail the check and be redrawn. Photometric distortion is left out (it does
# not move anything).
ms_seg_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(144, 144), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=(144, 144)),
    dict(type='LayoutLabelsInCrop'),
    dict(type='PackSegInputs'),
]

# Detection, as mmdet's DINO COCO pipeline (configs/dino/dino-4scale_r50_8xb2-12e_coco.py, test scale
# (800, 1333)) with every size times 144 / 800: either a random-choice resize to 480-800 (here 86-144 px,
# steps of 32 / 800), or a resize to 400-600 (72-108 px), an absolute-range crop of 384-600 (69-108 px),
# and the first resize again. So DINO trains at 0.5-1x of its test size, as users' DINO does.
_dino_scales = [(round(s * 144 / 800), ) * 2 for s in range(480, 801, 32)]
ms_det_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomChoice', transforms=[
        [dict(type='RandomChoiceResize', scales=_dino_scales, keep_ratio=True)],
        [dict(type='RandomChoiceResize', scales=[(72, 72), (90, 90), (108, 108)], keep_ratio=True),
         dict(type='RandomCrop', crop_type='absolute_range', crop_size=(69, 108), allow_negative_crop=True),
         dict(type='RandomChoiceResize', scales=_dino_scales, keep_ratio=True)],
    ]),
    dict(type='LayoutLabelsInCrop'),
    dict(type='PackDetInputs'),
]
