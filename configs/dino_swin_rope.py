# The flagship: DINO 4-scale + Swin-T + RoPE-Mixed on COCO, 12 epochs, from the RoPE-ViT authors'
# ImageNet weights (hf://naver-ai/swin_rope_mixed_tiny_patch4_window7_224, fetched on first use).
# It is configs/dino/dino-4scale_swin-t-rope-mixed_8xb2-12e_coco.py under the short name the README gives users
# to run, which is why it alone sits at the top of configs/ (the folders hold the configs by method).
# Put COCO in data/coco, then
#   python tools/train.py configs/dino_swin_rope.py
#   bash tools/dist_train.sh configs/dino_swin_rope.py 8
# Compute nodes without internet: python tools/misc/fetch_weights.py configs/dino_swin_rope.py on a
# login node first (same HF_HOME), then train with HF_HUB_OFFLINE=1.
_base_ = './dino/dino-4scale_swin-t-rope-mixed_8xb2-12e_coco.py'
