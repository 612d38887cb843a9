# DINO 4-scale, Swin-T with LOOPE (Gilbert patch order + learned per-image context offsets,
# added after the patch embedding; no RPB).
# ImageNet weights: Microsoft swin_tiny_patch4_window7_224.pth (no LOOPE Swin checkpoint exists:
# the RPB tables are reported as unexpected keys and LOOPE's context net starts from scratch).
_base_ = './dino-4scale_swin-t-rpb_8xb2-12e_coco.py'

model = dict(backbone=dict(pos_embed=dict(type='loope', context='conv')))
