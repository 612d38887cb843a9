# Mask2Former, Swin-T with LOOPE (Gilbert patch order + learned per-image context offsets, added after the patch
# embedding; no RPB), ADE20k 512x512, 160k iterations.
# ImageNet weights: no LOOPE weights are published, so it starts from Microsoft's Swin-T release as the RPB
# baseline (inherited): the RPB tables are reported as unused keys, LOOPE's context net starts from scratch.
_base_ = './mask2former_swin-t-rpb_8xb2-160k_ade20k-512x512.py'

model = dict(backbone=dict(pos_embed=dict(type='loope', context='conv')))
