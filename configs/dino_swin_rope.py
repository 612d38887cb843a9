# The flagship: DINO 4-scale + Swin-T + RoPE-Mixed on COCO, 12 epochs.
#   python tools/train.py configs/dino_swin_rope.py
#   bash tools/dist_train.sh configs/dino_swin_rope.py 8
# See the inherited file for the checkpoint it expects.
_base_ = './dino/dino-4scale_swin-t-rope-mixed_8xb2-12e_coco.py'
