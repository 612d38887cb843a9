# Encoding study, control: the ViT of upernet_vit-tiny_layout.py with a position-blind head. UperNet's
# zero-padded 3x3 convolutions (PPM, FPN) on the coarse maps (4x5 at stride 32) recover absolute
# position from the image border by themselves, so there 'none' can do as well as any encoding. Here
# the last block's stride-8 map goes through 1x1 convolutions only (no padding, no spatial mixing):
# every bit of position the prediction uses must come from the backbone's encoding.
_base_ = './upernet_vit-tiny_layout.py'

study = dict(backbone='ViT-tiny + 1x1 head')
model = dict(
    backbone=dict(out_indices=(3, )),
    neck=None,
    decode_head=dict(
        _delete_=True, type='FCNHead', in_channels=64, in_index=0, channels=64, num_convs=2, kernel_size=1,
        concat_input=False, dropout_ratio=0.1, num_classes=5, norm_cfg=dict(type='BN', requires_grad=True),
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
                         class_weight=[0.25, 1.0, 1.0, 1.0, 1.0])))
