"""The OpenMMLab stack works on this torch: real upstream models train and predict on CPU,
and an mmengine Runner resumes exactly; with mmpe's RandomStateHook its random draws too."""
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.evaluator import BaseMetric
from mmengine.hooks import CheckpointHook
from mmengine.hub import get_config
from torch import nn

import mmpe  # noqa: F401  (applies the compatibility fixes)
from mmpe.engine.hooks import RandomStateHook, get_rng_state, saves_after_train_iter, set_rng_state
from mmpe.testing import build_model, det_batch, finite_losses, predict, seg_batch, train_step


def test_imports():
    import mmdet
    import mmseg
    from mmcv.ops import MultiScaleDeformableAttention
    assert mmdet.__version__ == '3.3.0' and mmseg.__version__ == '1.2.2'
    assert MultiScaleDeformableAttention is not None


def test_dino_r50_trains_and_predicts():
    cfg = get_config('mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py')
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(0)
    model = build_model(cfg.model, 'mmdet')
    batch = det_batch([(3, 256, 320)])
    losses = train_step(model, batch)
    assert 'loss_cls' in losses and 'd0.loss_bbox' in losses
    assert finite_losses(losses)
    grads = [p.grad for p in model.backbone.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)
    (pred,) = predict(model, batch)
    assert pred.pred_instances.bboxes.shape[1] == 4
    assert len(pred.pred_instances.scores) > 0


def test_upernet_swin_trains_and_predicts():
    cfg = get_config('mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py')
    cfg.model.pretrained = None
    cfg.model.backbone.init_cfg = None
    cfg.model.data_preprocessor.size = (128, 160)
    torch.manual_seed(0)
    model = build_model(cfg.model, 'mmseg')
    batch = seg_batch([(3, 128, 160)] * 2)
    losses = train_step(model, batch)
    assert {'decode.loss_ce', 'aux.loss_ce'} <= set(losses)
    assert finite_losses(losses)
    assert model.backbone.patch_embed.projection.weight.grad.abs().sum() > 0
    preds = predict(model, seg_batch([(3, 128, 160)]))
    assert preds[0].pred_sem_seg.data.shape == (1, 128, 160)


class _TinyModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, x, y, mode='loss'):
        out = self.linear(x)
        return dict(loss=((out - y) ** 2).mean()) if mode == 'loss' else out


def _runner(work_dir, max_iters, load_from=None):
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Model(BaseModel):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = _TinyModel()

        def forward(self, x, y, mode='loss'):
            return self.net(x, y, mode)

    gen = torch.Generator().manual_seed(1)
    data = [dict(x=torch.randn(4, generator=gen), y=torch.randn(1, generator=gen)) for _ in range(32)]
    return Runner(
        model=Model(), work_dir=str(work_dir), load_from=load_from, resume=load_from is not None,
        randomness=dict(seed=0),
        train_dataloader=dict(dataset=data, batch_size=4, sampler=dict(type='DefaultSampler', shuffle=True),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        param_scheduler=dict(type='MultiStepLR', milestones=[3], by_epoch=False),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=3, by_epoch=False)))


def test_runner_resume_continues_from_checkpoint(tmp_path):
    """6 iterations straight == resume from the iteration-3 checkpoint of that run, then 3 more
    (a run stopped after its checkpoint and restarted)."""
    straight = _runner(tmp_path / 'straight', 6)
    straight.train()
    checkpoint = tmp_path / 'straight' / 'iter_3.pth'
    saved = torch.load(checkpoint)  # weights_only=True, torch's default
    assert saved['meta']['iter'] == 3

    resumed = _runner(tmp_path / 'resumed', 6, load_from=str(checkpoint))
    assert resumed.iter == 0
    resumed.train()
    assert resumed.iter == 6
    for p_straight, p_resumed in zip(straight.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(p_straight, p_resumed)
    s_state = straight.optim_wrapper.optimizer.state_dict()['state']
    r_state = resumed.optim_wrapper.optimizer.state_dict()['state']
    for key in s_state:
        torch.testing.assert_close(s_state[key]['exp_avg'], r_state[key]['exp_avg'])
        torch.testing.assert_close(s_state[key]['exp_avg_sq'], r_state[key]['exp_avg_sq'])
    assert straight.optim_wrapper.get_lr() == resumed.optim_wrapper.get_lr()
    assert straight.param_schedulers[0].last_step == resumed.param_schedulers[0].last_step


# ----------------------------------------------------------------------------- RandomStateHook

def _draws():
    """One draw from each generator RandomStateHook keeps: python, numpy, torch CPU (and CUDA)."""
    draws = (random.random(), float(np.random.random()), torch.rand(3))
    return draws + ((torch.rand(3, device='cuda').cpu(),) if torch.cuda.is_available() else ())


def _same(a, b) -> bool:
    return a[:2] == b[:2] and all(torch.equal(x, y) for x, y in zip(a[2:], b[2:]))


def test_rng_state_round_trip():
    state = get_rng_state()
    first = _draws()
    set_rng_state(state)
    assert _same(_draws(), first)
    assert (state['cuda'] is None) == (not torch.cuda.is_available())


@pytest.mark.parametrize('kwargs, saved', [
    (dict(interval=3), [3, 6, 7]),  # every 3 iterations and the last
    (dict(interval=3, save_last=False), [3, 6]),
    (dict(interval=3, save_begin=4), [4, 7]),
    (dict(interval=3, by_epoch=True), []),  # after epochs, not iterations
])
def test_saves_after_train_iter_is_checkpoint_hooks_condition(kwargs, saved):
    """The iterations (1-based) of a 7-iteration run after which CheckpointHook saves: by hand, and as
    mmengine's CheckpointHook.after_train_iter does."""
    hook = CheckpointHook(**{'by_epoch': False, **kwargs})
    calls = []
    hook._save_checkpoint = lambda runner: calls.append(runner.iter + 1)
    predicted = []
    for i in range(7):
        runner = SimpleNamespace(iter=i, max_iters=7, logger=SimpleNamespace(info=lambda message: None))
        if saves_after_train_iter(runner, hook):
            predicted.append(i + 1)
        hook.after_train_iter(runner, i)
    assert predicted == calls == saved


def _fake_runner(world_size=1, rank=0):
    messages = []
    logger = SimpleNamespace(warning=messages.append, info=messages.append)
    return SimpleNamespace(world_size=world_size, rank=rank, seed=5, logger=logger, hooks=[]), messages


def test_random_state_hook_saves_and_restores_generators():
    """Gathered after an epoch, saved in the checkpoint, restored by a new hook at before_train: the
    next draws are those that followed the gathering, whatever was drawn in between."""
    runner, messages = _fake_runner()
    hook = RandomStateHook()
    hook.before_run(runner)
    hook.after_train_epoch(runner)
    checkpoint = {}
    hook.before_save_checkpoint(runner, checkpoint)
    expected = _draws()
    assert len(checkpoint['rng_states']) == 1  # one process
    _draws()

    resumed = RandomStateHook()
    resumed.before_run(runner)
    resumed.after_load_checkpoint(runner, checkpoint)
    _draws()  # e.g. Runner.resume reseeding after the checkpoint hooks
    resumed.before_train(runner)
    assert _same(_draws(), expected) and messages == []


def test_random_state_hook_warns_where_it_cannot_restore():
    runner, messages = _fake_runner(world_size=2, rank=1)
    hook = RandomStateHook()
    hook.before_run(runner)
    checkpoint = {}
    hook.before_save_checkpoint(runner, checkpoint)  # nothing gathered
    assert 'rng_states' not in checkpoint
    assert messages.pop().startswith("RandomStateHook: this checkpoint is saved where the processes' random states "
                                     'were not gathered; it holds none')
    hook.after_load_checkpoint(runner, {})
    assert messages.pop().startswith('RandomStateHook: the checkpoint has no random state; resuming with fresh '
                                     'generators')
    hook.after_load_checkpoint(runner, {'rng_states': [get_rng_state()]})  # 1 process's states in a 2-process run
    assert messages.pop().startswith('RandomStateHook: the checkpoint holds the random states of 1 processes and '
                                     'this run has 2: they are not restored')
    # the generators keep the stream mmengine seeded
    state = get_rng_state()
    expected = _draws()
    set_rng_state(state)
    hook.before_train(runner)
    assert _same(_draws(), expected) and messages == []


def _noisy_runner(work_dir, seed, resume_from=None):
    """6 iterations of _TinyModel on inputs scaled by a python draw, with numpy noise and dropout
    (torch's CPU generator), shuffled data; a checkpoint and a validation (its dataloader draws from
    torch's generator) every 3 iterations."""
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class Model(BaseModel):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = _TinyModel()
            self.seen = []

        def forward(self, x, y, index, mode='loss'):
            if mode != 'loss':
                return [dict(index=i) for i in index]
            self.seen += index.tolist()
            noise = torch.from_numpy(np.random.standard_normal(x.shape).astype(np.float32))
            return self.net(F.dropout(x * random.uniform(0.5, 1.5) + noise, 0.5), y)

    class SampleCount(BaseMetric):
        def process(self, data_batch, data_samples):
            self.results += data_samples

        def compute_metrics(self, results):
            return dict(samples=len(results))

    gen = torch.Generator().manual_seed(1)
    data = [dict(x=torch.randn(4, generator=gen), y=torch.randn(1, generator=gen), index=i) for i in range(32)]
    loader = dict(collate_fn=dict(type='default_collate'))
    return Runner(
        model=Model(), work_dir=str(work_dir), experiment_name=f'random_state_hook_{work_dir.name}',
        load_from=resume_from, resume=resume_from is not None, randomness=dict(seed=seed),
        train_dataloader=dict(loader, dataset=data, batch_size=4, sampler=dict(type='DefaultSampler', shuffle=True)),
        val_dataloader=dict(loader, dataset=data[:4], batch_size=2, sampler=dict(type='DefaultSampler', shuffle=False)),
        val_evaluator=dict(type=SampleCount), val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        train_cfg=dict(by_epoch=False, max_iters=6, val_interval=3),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=3, by_epoch=False)),
        custom_hooks=[dict(type='RandomStateHook')])


def test_random_state_hook_resumes_the_uninterrupted_run(tmp_path):
    """In one process (tests/test_ddp.py: two): stopped after its iteration-3 checkpoint and resumed with
    another seed, a run trains on the same samples with the same draws and ends with the same weights and
    generators as the uninterrupted run."""
    straight = _noisy_runner(tmp_path / 'straight', seed=0)
    straight.train()
    straight_next = _draws()
    checkpoint = tmp_path / 'straight' / 'iter_3.pth'
    assert len(torch.load(checkpoint, weights_only=False)['rng_states']) == 1
    resumed = _noisy_runner(tmp_path / 'resumed', seed=1, resume_from=str(checkpoint))
    resumed.train()
    assert _same(_draws(), straight_next)
    assert resumed.model.seen == straight.model.seen[12:]
    for name, weight in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], weight), name
