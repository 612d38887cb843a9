# Transfer study, fine-tuning, control (Swin): transfer_upernet_swin-tiny_layout144.py with the
# position-blind head of pretrain_swin-tiny_layout48.py (the four stage maps resized and concatenated,
# then 1x1 convolutions only).
_base_ = './transfer_upernet_swin-tiny_layout144.py'

study = dict(backbone='Swin-tiny + 1x1 head (48 -> 144 px)')
model = dict(
    decode_head=dict(
        _delete_=True, type='FCNHead', in_channels=[32, 64, 128, 256], in_index=[0, 1, 2, 3],
        input_transform='resize_concat', channels=64, num_convs=2, kernel_size=1, concat_input=False,
        dropout_ratio=0.1, num_classes=5, norm_cfg=dict(type='BN', requires_grad=True), align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
                         class_weight=[0.25, 1.0, 1.0, 1.0, 1.0])))
