# mmdet's own SwinTransformer with the study's Swin-tiny shape (pretrain_swin-tiny_layout48.py), the one home of
# that backbone for the mmdet-swin pretraining and fine-tuning configs (issue 32).
mmdet_swin_tiny = dict(_delete_=True, type='mmdet.SwinTransformer', pretrain_img_size=48, embed_dims=32, patch_size=4,
                       window_size=4, mlp_ratio=2, depths=[1, 1, 2, 1], num_heads=[2, 4, 8, 16], strides=(4, 2, 2, 2),
                       out_indices=(0, 1, 2, 3), qkv_bias=True, patch_norm=True, drop_path_rate=0.0, init_cfg=None)
