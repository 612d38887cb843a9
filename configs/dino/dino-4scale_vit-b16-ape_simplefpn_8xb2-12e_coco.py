# DINO 4-scale, ViT-B/16 with a learned absolute position embedding (APE) + simple feature
# pyramid (ViTDet: 14x14 windows, global attention in blocks 2, 5, 8, 11), COCO, 12 epochs.
# The baseline of the ViT encoding comparison; the other ViT-B configs inherit from it.
# ImageNet weights: the RoPE-ViT authors' deit_base_patch16_LS (DeiT-III with APE, the recipe of
# their RoPE models) from the Hugging Face hub, converted on load (offline clusters:
# tools/misc/fetch_weights.py).
_base_ = 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'
custom_imports = dict(imports=['mmpe'], allow_failed_imports=False)

pretrained = 'hf://naver-ai/deit_base_patch16_LS'
depth = 12
model = dict(
    type='PEDINO',  # mmdet's DINO that compiles whole (mmpe.models.dino)
    backbone=dict(
        _delete_=True,
        type='PEVisionTransformer',
        pos_embed=dict(type='ape'),
        img_size=224,
        patch_size=16,
        embed_dims=768,
        depth=depth,
        num_heads=12,
        mlp_ratio=4,
        qkv_bias=True,
        layer_scale_init_value=1e-5,
        drop_path_rate=0.1,
        with_cls_token=True,
        window_size=14,
        global_attn_indices=(2, 5, 8, 11),
        out_indices=(11, ),
        final_norm=True,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(
        _delete_=True,
        type='PESimpleFPN',
        in_channels=768,
        out_channels=256,
        scale_factors=(2.0, 1.0, 0.5),
        num_outs=4,
        norm_cfg=dict(type='GN', num_groups=32)))

# No weight decay for positional encodings (every mmpe encoding parameter lives under a
# module named 'pos_embed'), the CLS token and the backbone's norms; the backbone keeps DINO's
# 0.1 learning-rate multiplier. mmengine applies the longest matching key, so the norms are
# listed per block.
backbone_no_decay = dict(lr_mult=0.1, decay_mult=0.0)
custom_keys = {
    'backbone': dict(lr_mult=0.1),
    'pos_embed': backbone_no_decay,
    'cls_token': backbone_no_decay,
    'backbone.norm': backbone_no_decay,
}
custom_keys.update({f'backbone.blocks.{block}.norm': backbone_no_decay for block in range(depth)})
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=custom_keys))
