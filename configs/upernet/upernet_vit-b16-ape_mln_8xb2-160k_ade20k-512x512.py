# UperNet, ViT-B/16 with a learned absolute position embedding (APE, resized from 14x14 to each
# input grid) + mmseg's MultiLevelNeck, ADE20k 512x512, 160k iterations.
# The baseline of the ViT encoding comparison; the other ViT-B UperNet configs inherit from it.
# ImageNet weights: the RoPE-ViT authors' deit_base_patch16_LS (DeiT-III with APE, the recipe of
# their RoPE models) from the Hugging Face hub, converted on load (offline clusters:
# tools/misc/fetch_weights.py).
_base_ = 'mmseg::vit/vit_vit-b16_mln_upernet_8xb2-160k_ade20k-512x512.py'
custom_imports = dict(imports=['mmpe'], allow_failed_imports=False)

pretrained = 'hf://naver-ai/deit_base_patch16_LS'
model = dict(
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='PEVisionTransformer',
        pos_embed=dict(type='ape'),
        img_size=224,
        patch_size=16,
        embed_dims=768,
        depth=12,
        num_heads=12,
        mlp_ratio=4,
        qkv_bias=True,
        layer_scale_init_value=1e-5,
        drop_path_rate=0.1,
        with_cls_token=True,
        out_indices=(2, 5, 8, 11),
        final_norm=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
# The inherited optimizer already exempts 'pos_embed' (every mmpe encoding parameter lives under
# a module of that name), 'cls_token' and 'norm' from weight decay.
