# DINO 4-scale, ViT-B/16 DINOv3 (RoPE with centred [-1, 1] coordinates, 4 register tokens, LayerScale) + simple
# feature pyramid (ViTDet: 14x14 windows, global attention in blocks 2, 5, 8, 11), COCO, 12 epochs, with layer-wise
# learning-rate decay. The ViT-L config inherits from it.
# Weights: Meta's DINOv3 ViT-B/16 (LVD-1689M) as timm publishes it, vit_base_patch16_dinov3.lvd1689m (timm's Eva
# layout, converted on load; offline clusters: tools/misc/fetch_weights.py). DINOv3 licence:
# https://ai.meta.com/resources/models-and-libraries/dinov3-license/
# Fine-tuning as ViTDet (Li et al., ECCV 2022; detectron2 projects/ViTDet/configs/COCO/mask_rcnn_vitdet_{b,l}_100ep.py:
# AdamW, weight decay 0.1, layer-wise lr decay 0.7 for ViT-B / 0.8 for ViT-L, drop path 0.1 / 0.4, no weight decay
# for norms and position embeddings; here, as BEiT / MAE fine-tune, none for biases, LayerScale and the tokens
# either), with DINO's lr 1e-4, batch 16 and gradient clipping; layer decay replaces DINO's 0.1 backbone lr.
_base_ = './dino-4scale_vit-b16-ape_simplefpn_8xb2-12e_coco.py'

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
    optimizer=dict(lr=1e-4, weight_decay=0.1),
    paramwise_cfg=dict(
        _delete_=True,
        layer_decay_rate=0.7,
        flat_decay_mult=0.0,  # biases, norms, LayerScale
        custom_keys={key: dict(decay_mult=0.0) for key in ('pos_embed', 'cls_token', 'reg_token')}))
