# DINO 4-scale, ViT-B/16 with LOOPE (Gilbert patch order + learned per-image context offsets,
# context='conv' for any grid) + simple feature pyramid (ViTDet windows), COCO, 12 epochs.
# ImageNet weights: no LOOPE weights are published, so it starts from the APE baseline's
# (inherited: the RoPE-ViT authors' deit_base_patch16_LS): its APE table is reported as an
# unexpected key, LOOPE's context net starts from scratch.
_base_ = './dino-4scale_vit-b16-ape_simplefpn_8xb2-12e_coco.py'

model = dict(backbone=dict(pos_embed=dict(type='loope', context='conv')))
