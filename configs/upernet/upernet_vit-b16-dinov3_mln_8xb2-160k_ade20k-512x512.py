# UperNet, ViT-B/16 DINOv3 (RoPE with centred [-1, 1] coordinates, 4 register tokens, LayerScale) + mmseg's
# MultiLevelNeck, ADE20k 512x512, 160k iterations, with layer-wise learning-rate decay. The ViT-L config inherits
# from it.
# Weights: Meta's DINOv3 ViT-B/16 (LVD-1689M) as timm publishes it, vit_base_patch16_dinov3.lvd1689m (timm's Eva
# layout, converted on load; offline clusters: tools/misc/fetch_weights.py). DINOv3 licence:
# https://ai.meta.com/resources/models-and-libraries/dinov3-license/
# Fine-tuning as mmseg's MAE ViT-B UperNet (configs/mae/mae-base_upernet_8xb2-amp-160k_ade20k-512x512.py, the MAE
# paper's recipe): AdamW lr 1e-4, weight decay 0.05, layer-wise lr decay 0.65, drop path 0.1; no weight decay for
# 1-D parameters (biases, norms, LayerScale), tokens and position embeddings.
_base_ = './upernet_vit-b16-ape_mln_8xb2-160k_ade20k-512x512.py'

# DINOv3's RoPE is mmpe's 'rope_dinov3' encoding preset. A config is Python: an import after _base_ keeps it an
# old-style mmengine config, and modules do not become config values (a dumped config holds the plain dict).
import mmpe.pos_embed  # noqa: E402

pretrained = 'timm://vit_base_patch16_dinov3.lvd1689m'
model = dict(
    backbone=dict(
        pos_embed=dict(mmpe.pos_embed.ENCODING_PRESETS['rope_dinov3'], _delete_=True),
        num_reg_tokens=4,
        qkv_bias=False,
        norm_eps=1e-5,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))

optim_wrapper = dict(
    constructor='PELayerDecayOptimizerConstructor',
    optimizer=dict(lr=1e-4, weight_decay=0.05),
    paramwise_cfg=dict(
        _delete_=True,
        layer_decay_rate=0.65,
        flat_decay_mult=0.0,
        custom_keys={key: dict(decay_mult=0.0) for key in ('pos_embed', 'cls_token', 'reg_token')}))
