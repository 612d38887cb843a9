# UperNet, ViT-B/16 with LOOPE (Gilbert patch order + learned per-image context offsets,
# context='conv' for any grid) + mmseg's MultiLevelNeck, ADE20k 512x512, 160k iterations.
# ImageNet weights: no LOOPE weights are published, so it starts from the APE baseline's
# (inherited: the RoPE-ViT authors' deit_base_patch16_LS): its APE table is reported as an
# unexpected key, LOOPE's context net starts from scratch.
_base_ = './upernet_vit-b16-ape_mln_8xb2-160k_ade20k-512x512.py'

model = dict(backbone=dict(pos_embed=dict(type='loope', context='conv')))
