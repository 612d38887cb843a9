# Transfer study, fine-tuning, control: transfer_upernet_vit-tiny_layout144.py with the position-blind
# 1x1 head of fcn1x1_vit-tiny_layout.py (the last block's map, 1x1 convolutions only): every bit of
# position the prediction uses comes from the (pretrained, then fine-tuned) encoding.
_base_ = './transfer_upernet_vit-tiny_layout144.py'

study = dict(backbone='ViT-tiny + 1x1 head (48 -> 144 px)')
model = dict(
    backbone=dict(out_indices=(3, )),
    neck=None,
    decode_head=dict(
        _delete_=True, type='FCNHead', in_channels=64, in_index=0, channels=64, num_convs=2, kernel_size=1,
        concat_input=False, dropout_ratio=0.1, num_classes=5, norm_cfg=dict(type='BN', requires_grad=True),
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
                         class_weight=[0.25, 1.0, 1.0, 1.0, 1.0])))
