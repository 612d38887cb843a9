"""PEDINO (mmpe.models.dino): mmdet's DINO with the deformable-attention operator and the levels' sizes
as Python ints. DINO's initialisation, state dict and outputs; no graph break in backbone, neck,
encoder and decoder (Swin RoPE-Mixed, ViT RoPE-Mixed with SimpleFPN); compiled training steps equal to
eager ones."""
import copy

import pytest
import torch
from mmengine.config import Config

from mmpe.analysis.compilation import DETECTOR_PARTS, explain_parts
from mmpe.testing import build_model, det_batch

CONFIGS = {'swin': 'configs/dino/dino-4scale_swin-t-rope-mixed_8xb2-12e_coco.py',
           'vit': 'configs/dino/dino-4scale_vit-b16-rope-mixed_simplefpn_8xb2-12e_coco.py'}
SMALL_BACKBONES = {  # the configs' architectures, narrow and shallow, without ImageNet weights
    'swin': dict(backbone=dict(embed_dims=32, depths=[1, 1, 1, 1], num_heads=[2, 4, 8, 8], drop_path_rate=0.0,
                               init_cfg=None),
                 neck=dict(in_channels=[64, 128, 256])),
    'vit': dict(backbone=dict(embed_dims=64, depth=2, num_heads=4, window_size=3, global_attn_indices=(1,),
                              out_indices=(1,), drop_path_rate=0.0, init_cfg=None),
                neck=dict(in_channels=64)),
}
# two images of different sizes: padding masks, valid ratios below 1
IMAGES = [(3, 96, 128), (3, 80, 112)]


def small_dino_cfg(arch: str, detector: str = 'PEDINO'):
    """The DINO config of ``arch`` with a small backbone, one encoder and one decoder layer, 30 queries."""
    cfg = Config.fromfile(CONFIGS[arch])
    cfg.merge_from_dict(dict(model=dict(
        type=detector, num_queries=30, bbox_head=dict(num_classes=4), test_cfg=dict(max_per_img=30),
        encoder=dict(num_layers=1), decoder=dict(num_layers=1), dn_cfg=dict(group_cfg=dict(num_dn_queries=20)),
        **SMALL_BACKBONES[arch])))
    return cfg.model


def loss_forward(model, data, seed=0):
    torch.manual_seed(seed)  # DINO's denoising queries draw noise
    return model.parse_losses(model(**data, mode='loss'))


@pytest.mark.slow  # builds two detectors
def test_pedino_is_dino():
    """Built with the same seed, PEDINO has DINO's parameters (the module swap draws nothing), the
    same state-dict keys, losses and predictions."""
    models = []
    for detector in ('DINO', 'PEDINO'):
        torch.manual_seed(0)
        models.append(build_model(small_dino_cfg('swin', detector), 'mmdet'))
    dino, pedino = models
    assert type(pedino.encoder.layers[0].self_attn).__name__ == 'PEMultiScaleDeformableAttention'
    assert type(pedino.decoder.layers[0].cross_attn).__name__ == 'PEMultiScaleDeformableAttention'
    assert list(pedino.state_dict()) == list(dino.state_dict())
    for key, value in dino.state_dict().items():
        assert torch.equal(pedino.state_dict()[key], value), key
    batch = det_batch(IMAGES, num_classes=4)
    data = dino.data_preprocessor(batch, training=True)
    (total, losses), (pe_total, pe_losses) = (loss_forward(m.train(), data) for m in models)
    assert losses.keys() == pe_losses.keys()
    torch.testing.assert_close(pe_total, total, rtol=1e-5, atol=1e-5)
    data = dino.data_preprocessor(batch, training=False)
    with torch.no_grad():
        predictions = [m.eval()(**copy.deepcopy(data), mode='predict') for m in models]
    for ours, theirs in zip(*predictions):
        torch.testing.assert_close(ours.pred_instances.bboxes, theirs.pred_instances.bboxes, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(ours.pred_instances.scores, theirs.pred_instances.scores, rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # torch.compile
@pytest.mark.parametrize('arch', ['swin', 'vit'])
def test_no_graph_break_in_backbone_neck_encoder_decoder(arch):
    """torch._dynamo.explain of each part on the inputs it gets in a training loss forward: one graph,
    no break (mmdet's DINO: a break in every encoder and decoder layer and in pre_transformer)."""
    torch.manual_seed(0)
    model = build_model(small_dino_cfg(arch), 'mmdet').train()
    data = model.data_preprocessor(det_batch(IMAGES, num_classes=4), training=True)
    rows = explain_parts(model, lambda: model(**data, mode='loss'), DETECTOR_PARTS)
    assert [(row['part'], row['graphs'], row['graph_breaks']) for row in rows] == [
        (part, 1, 0) for part in DETECTOR_PARTS], rows


@pytest.mark.slow  # torch.compile
@pytest.mark.parametrize('arch', ['swin', 'vit'])
def test_compiled_training_step_matches_eager(arch, device):
    """One AdamW step each, eager and through dynamo + AOT autograd (the operator's fake and backward
    traced; on CUDA mmcv's kernels): equal losses before and after the step (1e-4)."""
    torch.manual_seed(0)
    eager = build_model(small_dino_cfg(arch), 'mmdet').to(device).train()
    model = copy.deepcopy(eager)
    compiled = torch.compile(model, backend='aot_eager')
    data = eager.data_preprocessor(det_batch(IMAGES, num_classes=4), training=True)
    torch._dynamo.reset()
    totals = {}
    for name, module, run in (('eager', eager, eager), ('compiled', model, compiled)):
        optimizer = torch.optim.AdamW(module.parameters(), lr=1e-4)
        first, _ = loss_forward(run, data)
        first.backward()
        optimizer.step()
        totals[name] = first.detach(), loss_forward(run, data)[0].detach()
    for got, want in zip(totals['compiled'], totals['eager']):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert not torch.equal(totals['eager'][0], totals['eager'][1])  # the step changed the model
