# UperNet, Swin-T with its relative position bias (RPB), ADE20k 512x512, 160k iterations.
# The baseline of the Swin encoding comparison; the other Swin-T UperNet configs inherit from it.
# ImageNet weights: Microsoft's Swin-T release (Microsoft layout, detected and converted on load),
# downloaded into torch.hub's cache on first use (offline clusters: tools/misc/fetch_weights.py).
_base_ = 'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py'
custom_imports = dict(imports=['mmpe'], allow_failed_imports=False)

pretrained = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth'
model = dict(
    backbone=dict(
        _delete_=True,
        type='PESwinTransformer',
        pos_embed=dict(type='rpb'),
        pretrain_img_size=224,
        embed_dims=96,
        patch_size=4,
        window_size=7,
        mlp_ratio=4,
        depths=[2, 2, 6, 2],
        num_heads=[3, 6, 12, 24],
        strides=(4, 2, 2, 2),
        out_indices=(0, 1, 2, 3),
        qkv_bias=True,
        qk_scale=None,
        patch_norm=True,
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))

# No weight decay for positional encodings (every mmpe encoding parameter lives under a module
# named 'pos_embed') and norms.
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'pos_embed': dict(decay_mult=0.0)}))
