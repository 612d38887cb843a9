# DINO 4-scale, Swin-T with LOOPE (Gilbert patch order + learned per-image context offsets,
# added after the patch embedding; no RPB).
# ImageNet weights: no LOOPE weights are published, so it starts from Microsoft's Swin-T release as
# the RPB baseline (inherited): the RPB tables are reported as unused keys, LOOPE's context net
# starts from scratch.
_base_ = './dino-4scale_swin-t-rpb_8xb2-12e_coco.py'

model = dict(backbone=dict(pos_embed=dict(type='loope', context='conv')))
