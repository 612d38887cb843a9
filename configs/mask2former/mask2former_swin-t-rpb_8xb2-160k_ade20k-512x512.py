# Mask2Former, Swin-T with its relative position bias (RPB), ADE20k 512x512, 160k iterations: mmseg's own
# Mask2Former Swin-T config with mmpe's Swin (the same layout and options as mmseg's SwinTransformer, plus the
# encoding key). The baseline of the Swin encoding comparison with Mask2Former; the other Swin-T Mask2Former
# configs inherit from it.
# ImageNet weights: Microsoft's Swin-T release (Microsoft layout, detected and converted on load), as the
# UperNet Swin-T configs; downloaded into torch.hub's cache on first use (offline clusters:
# tools/misc/fetch_weights.py).
_base_ = 'mmseg::mask2former/mask2former_swin-t_8xb2-160k_ade20k-512x512.py'
# mmseg's Mask2Former head is built from mmdet's layers (the base imports mmdet.models).
custom_imports = dict(imports=['mmpe', 'mmdet.models'], allow_failed_imports=False)

pretrained = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth'
model = dict(
    backbone=dict(
        type='PESwinTransformer',
        pos_embed=dict(type='rpb'),
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))

# The base gives the backbone lr_mult 0.1 and no weight decay to its norms and RPB tables; the same for every
# mmpe encoding parameter (all live under a module named 'pos_embed').
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'pos_embed': dict(lr_mult=0.1, decay_mult=0.0)}))
