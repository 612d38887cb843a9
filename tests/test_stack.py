"""The OpenMMLab stack works on this torch: real upstream models train and predict on CPU,
and an mmengine Runner resumes exactly."""

import torch
from mmengine.hub import get_config
from torch import nn

import mmpe  # noqa: F401  (applies the compatibility fixes)
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
