"""PEDINO (mmpe.models.dino): mmdet's DINO with the deformable-attention operator and the levels' sizes
as Python ints. DINO's initialisation, state dict and outputs; its reference points and proposals
equal to mmdet's; no graph break in backbone, neck, encoder and decoder (Swin RoPE-Mixed, ViT RoPE-Mixed
with SimpleFPN); compiled training steps equal to eager ones; no new graphs for new image sizes once
the padding cases were seen."""
import copy

import pytest
import torch
from mmdet.models.detectors import DeformableDETR
from mmdet.models.layers import DeformableDetrTransformerEncoder
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from mmpe.analysis.compilation import DETECTOR_PARTS, count_graphs, explain_parts
from mmpe.models.dino import PEDeformableDetrTransformerEncoder
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


def test_reference_points_and_proposals_equal_mmdet():
    """The encoder's reference points and the proposals, computed with ``arange`` (dynamic under
    torch.compile), equal mmdet's ``linspace`` code bit for bit: levels of odd and even sizes and of
    size 1, with padding masks and without."""
    torch.manual_seed(0)
    model = build_model(small_dino_cfg('swin'), 'mmdet')
    assert type(model.encoder) is PEDeformableDetrTransformerEncoder
    shapes = ((13, 20), (7, 10), (4, 5), (1, 3))
    num_value = sum(h * w for h, w in shapes)
    memory = torch.randn(2, num_value, model.embed_dims)
    mask = torch.cat([torch.stack([(torch.arange(h)[:, None] >= h - pad) | (torch.arange(w) >= w - pad)
                                   for pad in (0, 1)]).flatten(1) for h, w in shapes], 1)  # image 1 padded
    valid_ratios = torch.rand(2, len(shapes), 2) * 0.5 + 0.5
    ours = PEDeformableDetrTransformerEncoder.get_encoder_reference_points(shapes, valid_ratios, 'cpu')
    theirs = DeformableDetrTransformerEncoder.get_encoder_reference_points(torch.tensor(shapes), valid_ratios, 'cpu')
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    for memory_mask in (None, mask):
        with torch.no_grad():
            ours = model.gen_encoder_output_proposals(memory, memory_mask, shapes)
            theirs = DeformableDETR.gen_encoder_output_proposals(model, memory, memory_mask, torch.tensor(shapes))
        for got, want in zip(ours, theirs):
            torch.testing.assert_close(got, want, rtol=0, atol=0)


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


# Batches of two images (H, W): image 0 unpadded, padded in both sides, in width only, in height only,
# then new sizes with the same four padding cases. Every level's size changes from the first batch to
# the second.
SIZES = [((256, 320), (240, 288)), ((288, 272), (304, 352)), ((320, 256), (272, 304)), ((240, 336), (272, 304)),
         ((336, 368), (320, 352)), ((256, 240), (288, 304)), ((304, 256), (272, 320)), ((272, 384), (304, 352))]


@pytest.mark.slow  # torch.compile of eight training steps (dynamo only)
def test_compiled_training_step_bounded_over_sizes():
    """``torch.compile(model.train_step)`` (what the Runner's ``compile=True`` does; dynamo's graphs
    without code generation) over batches of new sizes and box counts: graphs are compiled while sizes
    become dynamic (the first batch's graphs are static) and each padding case is met once with dynamic
    sizes, none for the last three batches (mmdet's DINO code compiled new graphs for every batch:
    linspace on the sizes, numpy padding, metainfo copies, the logged gradient norm)."""
    torch.manual_seed(0)
    cfg = Config.fromfile(CONFIGS['swin'])
    model = build_model(small_dino_cfg('swin'), 'mmdet')
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper.to_dict())  # clips gradients, logs their norm
    step = torch.compile(model.train_step, backend='eager')
    batches = [det_batch([(3, *a), (3, *b)], num_classes=4, num_items=[1 + i % 4, 9 - i]) for i, (a, b) in
               enumerate(SIZES)]
    counts = count_graphs(lambda batch: step(batch, optim_wrapper), batches)
    assert counts['new_graphs'][5:] == [0, 0, 0], counts
    assert counts['graph_breaks'] > 0  # the eager parts (loss, denoising queries) were met: the count is real
