# Transfer study, fine-tuning (detection, ViT): transfer_dino_swin-tiny_layout144.py with the ViT-tiny of
# pretrain_vit-tiny_layout48.py (global attention, stride 8, img_size = the pretraining size) and a simple
# feature pyramid as in configs/dino/*vit-b16*simplefpn*: the stride-8 map as is and max-pooled to 16,
# then sub-sampled to 32 and 64 (DINO's 4 levels). No final norm: the pretrained backbone has none.
_base_ = './transfer_dino_swin-tiny_layout144.py'

study = dict(backbone='ViT-tiny (DINO, 48 -> 144 px)')
model = dict(
    backbone=dict(
        _delete_=True, type='PEVisionTransformer', pos_embed=dict(type='ape'), img_size={{_base_.pretrain_size}},
        patch_size=8, embed_dims=64, depth=4, num_heads=4, mlp_ratio=2, qkv_bias=True,
        layer_scale_init_value=None, drop_path_rate=0.0, with_cls_token=True, out_indices=(3, ),
        final_norm=False, init_cfg=None),
    neck=dict(
        _delete_=True, type='PESimpleFPN', in_channels=64, out_channels=256, scale_factors=(1.0, 0.5),
        num_outs=4, norm_cfg=dict(type='GN', num_groups=32)))
# no weight decay on the CLS token either (encodings and norms: as the Swin config)
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'cls_token': dict(decay_mult=0.0)}))
