# UperNet, ViT-B/16 with RoPE-Mixed + mmseg's MultiLevelNeck, ADE20k 512x512, 160k iterations.
# ImageNet weights: timm vit_base_patch16_rope_mixed_224.naver_in1k, converted with
#   python tools/convert_timm_vit.py vit_base_patch16_rope_mixed_224.naver_in1k.safetensors checkpoints/vit-b16-rope-mixed_mmpe.pth
# Set `pretrained` to the converted file; nothing is downloaded.
_base_ = './upernet_vit-b16-ape_mln_8xb2-160k_ade20k-512x512.py'

pretrained = 'checkpoints/vit-b16-rope-mixed_mmpe.pth'
model = dict(backbone=dict(pos_embed=dict(type='rope_mixed'), init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
