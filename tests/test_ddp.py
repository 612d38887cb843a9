"""Data-parallel training is equivalent to one process: DistributedDataParallel over 2 CPU
processes (gloo on 127.0.0.1), batch 1 each, gives the weights of one process with batch 2
after the same SGD steps, for ViT and Swin with RoPE-Mixed and LOOPE.

DDP averages the processes' gradients, so with a loss that is a mean over the batch the
update equals the batch-2 update; float32 sums in a different order, hence the tolerance.

BatchNorm (LOOPE's context network normalises its single channel): DDP without SyncBN
normalises with each process's own batch statistics (per-GPU BN), so DDP with batch 1 per
process equals one process that runs each image as its own batch, not one batch of 2. SyncBN
(``norm_cfg=dict(type='SyncBN')`` in mmdet/mmseg, ``nn.SyncBatchNorm.convert_sync_batchnorm``)
would restore batch-2 statistics, but needs CUDA; BN in eval mode (running statistics) makes
the runs identical. The tests check both: eval-mode BN against batch 2, train-mode BN against
per-image batches.
"""
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mmpe.models import PESwinTransformer, PEVisionTransformer

STEPS = 3
# float32, weights of order 1 that move by 1e-4 to 1e-2 in these steps. Measured max abs difference
# DDP vs one process: <= 4e-7, Swin LOOPE 1.5e-6 (LOOPE takes sin/cos of patch orders up to N = 384,
# which turns rounding in the offsets into larger absolute errors).
TOLERANCE = dict(rtol=1e-5, atol=1e-5)
CASES = ['vit-rope_mixed', 'vit-loope', 'swin-rope_mixed', 'swin-loope', 'vit-loope-per_gpu_bn']


def build(case: str) -> nn.Module:
    """Small model of ``case`` ('<backbone>-<encoding>[-per_gpu_bn]'), same weights in every process.
    BatchNorm in eval mode unless the case is '...-per_gpu_bn'."""
    backbone, encoding, *per_gpu_bn = case.split('-')
    torch.manual_seed(0)
    if backbone == 'vit':
        model = PEVisionTransformer(img_size=64, patch_size=16, embed_dims=32, depth=2, num_heads=2,
                                    layer_scale_init_value=0.1, pos_embed=dict(type=encoding), out_indices=(0, 1))
    else:
        model = PESwinTransformer(embed_dims=32, depths=(2, 2), num_heads=(2, 4), strides=(4, 2), window_size=4,
                                  drop_path_rate=0.0, out_indices=(0, 1), pos_embed=dict(type=encoding))
    for name, m in model.named_modules():
        if name.endswith('qkv'):
            nn.init.normal_(m.weight, std=0.2)  # peaked attention: RoPE frequencies get sizeable gradients
        if name.endswith('context.head'):
            nn.init.normal_(m.weight)  # LOOPE's zero-initialised head would block the context net's gradients
    model.train()
    if not per_gpu_bn:
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
    return model


def images(step: int) -> torch.Tensor:
    """The global batch of ``step``: (2, 3, 64, 96)."""
    return torch.randn(2, 3, 64, 96, generator=torch.Generator().manual_seed(step))


def train(model: nn.Module, forward) -> None:
    """STEPS of SGD on the loss ``forward(step)`` (a mean over the images)."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.002, momentum=0.9)
    for step in range(STEPS):
        optimizer.zero_grad()
        forward(step).backward()
        optimizer.step()


def loss(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Mean over images and positions of a fixed projection of each output map, squared (the
    output LayerNorms make a plain mean square nearly constant)."""
    total = 0
    for out in model(x):
        weight = torch.randn(out.shape[1], generator=torch.Generator().manual_seed(out.shape[1]))
        total = total + torch.einsum('bchw,c->bhw', out, weight).square().mean()
    return total


def _worker(rank: int, port: int, path: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank, world_size=2)
    weights = {}
    for case in CASES:
        model = build(case)
        ddp = DistributedDataParallel(model)
        train(model, lambda step: loss(ddp, images(step)[rank:rank + 1]))
        weights[case] = {n: p.detach() for n, p in model.named_parameters()}
    if rank == 0:
        torch.save(weights, path)
    dist.destroy_process_group()


@pytest.fixture(scope='module')
def ddp_weights(tmp_path_factory):
    path = str(tmp_path_factory.mktemp('ddp') / 'weights.pth')
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    mp.spawn(_worker, args=(port, path), nprocs=2)
    return torch.load(path)


@pytest.mark.parametrize('case', CASES)
def test_ddp_equals_one_process(ddp_weights, case):
    model = build(case)
    initial = {n: p.detach().clone() for n, p in model.named_parameters()}
    if case.endswith('per_gpu_bn'):  # each process normalises its own image
        train(model, lambda step: sum(loss(model, x[None]) for x in images(step)) / 2)
    else:
        train(model, lambda step: loss(model, images(step)))
    assert ddp_weights[case].keys() == initial.keys()
    for name, p in model.named_parameters():
        torch.testing.assert_close(ddp_weights[case][name], p.detach(), **TOLERANCE, msg=name)
    encoding = [n for n in initial if 'pos_embed' in n]
    assert encoding and all(not torch.equal(model.get_parameter(n), initial[n]) for n in encoding), \
        'the encoding parameters did not train: the comparison would not see them'


def test_per_gpu_bn_differs_from_batch_statistics(ddp_weights):
    """Per-GPU BN is not batch-2 BN: the per-image reference above is needed (SyncBN is not)."""
    model = build('vit-loope-per_gpu_bn')
    train(model, lambda step: loss(model, images(step)))
    ddp = ddp_weights['vit-loope-per_gpu_bn']
    context = [n for n, _ in model.named_parameters() if '.context.' in n]
    assert any(not torch.allclose(ddp[n], p.detach(), **TOLERANCE) for n, p in model.named_parameters()
               if n in context)
