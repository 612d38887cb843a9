# DINO 4-scale, Swin-T with its relative position bias (RPB), COCO, 12 epochs.
# The baseline of the Swin encoding comparison; the other Swin-T configs inherit from it.
# ImageNet weights: Microsoft's Swin-T release (Microsoft layout, detected and converted on load),
# downloaded into torch.hub's cache on first use (offline clusters: tools/misc/fetch_weights.py).
_base_ = 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'
custom_imports = dict(imports=['mmpe'], allow_failed_imports=False)

pretrained = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_tiny_patch4_window7_224.pth'
depths = [2, 2, 6, 2]
model = dict(
    type='PEDINO',  # mmdet's DINO that compiles whole (mmpe.models.dino)
    backbone=dict(
        _delete_=True,
        type='PESwinTransformer',
        pos_embed=dict(type='rpb'),
        embed_dims=96,
        depths=depths,
        num_heads=[3, 6, 12, 24],
        window_size=7,
        mlp_ratio=4,
        qkv_bias=True,
        qk_scale=None,
        drop_rate=0.0,
        attn_drop_rate=0.0,
        drop_path_rate=0.2,
        patch_norm=True,
        out_indices=(1, 2, 3),
        with_cp=False,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[192, 384, 768]))

# No weight decay for positional encodings (every mmpe encoding parameter lives under a
# module named 'pos_embed': RoPE frequencies, APE/LOOPE tables, RPB tables) and the backbone's
# norms; the backbone keeps DINO's 0.1 learning-rate multiplier. mmengine applies the longest
# matching key, so the norms are listed per block (as mmdet's Mask2Former Swin configs do).
backbone_no_decay = dict(lr_mult=0.1, decay_mult=0.0)
custom_keys = {
    'backbone': dict(lr_mult=0.1),
    'pos_embed': backbone_no_decay,
    'backbone.patch_embed.norm': backbone_no_decay,
    'backbone.norm': backbone_no_decay,
}
custom_keys.update({f'backbone.stages.{stage}.blocks.{block}.norm': backbone_no_decay
                    for stage, depth in enumerate(depths) for block in range(depth)})
custom_keys.update({f'backbone.stages.{stage}.downsample.norm': backbone_no_decay
                    for stage in range(len(depths) - 1)})
optim_wrapper = dict(paramwise_cfg=dict(custom_keys=custom_keys))
