# DINO 4-scale, ViT-B/16 with RoPE-Mixed + simple feature pyramid (ViTDet windows), COCO, 12 epochs.
# ImageNet weights: timm vit_base_patch16_rope_mixed_224.naver_in1k, converted with
#   python tools/convert_timm_vit.py vit_base_patch16_rope_mixed_224.naver_in1k.safetensors checkpoints/vit-b16-rope-mixed_mmpe.pth
# Set `pretrained` to the converted file; nothing is downloaded.
_base_ = './dino-4scale_vit-b16-ape_simplefpn_8xb2-12e_coco.py'

pretrained = 'checkpoints/vit-b16-rope-mixed_mmpe.pth'
model = dict(backbone=dict(pos_embed=dict(type='rope_mixed'), init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
