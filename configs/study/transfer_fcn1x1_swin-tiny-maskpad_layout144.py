# Transfer study (issue 32): transfer_fcn1x1_swin-tiny_layout144.py with PESwinTransformer(mask_padding=True):
# the positions that pad each stage map to whole windows get no attention weight. Same pretraining (weights do
# not depend on it), fine-tuning and evaluation; tabulated as its own backbone cell to compare with the default
# (padding attended).
_base_ = './transfer_fcn1x1_swin-tiny_layout144.py'

study = dict(backbone='Swin-tiny + 1x1 head (48 -> 144 px, padding masked)')
model = dict(backbone=dict(mask_padding=True))
