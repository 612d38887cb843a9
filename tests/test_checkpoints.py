"""Checkpoints that survive a kill (mmpe.engine.checkpoints): atomic writes, AtomicCheckpointHook's
order of writes and removals, and the clear refusal of ``--resume`` to resume from a truncated or
corrupt checkpoint or an empty or dangling ``last_checkpoint``.

A kill is stood in for here by an exception at the same point of the write (the files on disk are
then what a kill leaves); tests/test_faults.py kills real trainings with SIGKILL."""
import os
import os.path as osp

import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch import nn

from mmpe.engine import checkpoints, preflight
from mmpe.engine.checkpoints import (
    AtomicCheckpointHook,
    ResumeError,
    checkpoint_problem,
    partial_path,
    resume_checkpoint,
    write_atomic,
)
from mmpe.engine.launch import use_atomic_checkpoints


class Interrupted(Exception):
    """Stands in for a kill at a point of a write."""


def save(path, value=0.0) -> str:
    torch.save({'meta': dict(iter=1), 'state_dict': {'w': torch.full((256,), value)}}, str(path))
    return str(path)


def test_write_atomic_replaces_the_file_and_leaves_no_partial(tmp_path):
    path = str(tmp_path / 'sub' / 'file')
    write_atomic(path, b'old')
    write_atomic(path, b'new contents')
    with open(path, 'rb') as f:
        assert f.read() == b'new contents'
    assert os.listdir(tmp_path / 'sub') == ['file']


@pytest.mark.parametrize('step', ['fsync', 'replace'])
def test_write_atomic_interrupted_keeps_the_old_file(tmp_path, monkeypatch, step):
    path = str(tmp_path / 'file')
    write_atomic(path, b'old')

    def interrupted(*args):
        raise Interrupted
    monkeypatch.setattr(checkpoints.os, step, interrupted)
    with pytest.raises(Interrupted):
        write_atomic(path, b'new')
    with open(path, 'rb') as f:
        assert f.read() == b'old'
    with open(partial_path(path), 'rb') as f:
        assert f.read() == b'new'  # the whole data reached the partial file before the interruption
    assert partial_path(path) == str(tmp_path / '.file.partial')


def test_checkpoint_problem(tmp_path):
    good = save(tmp_path / 'good.pth')
    assert checkpoint_problem(good) is None
    data = open(good, 'rb').read()
    assert checkpoint_problem(str(tmp_path / 'missing.pth')) == 'does not exist'
    for size in (0, 100, len(data) // 2, len(data) - 1):
        with open(tmp_path / 'cut.pth', 'wb') as f:
            f.write(data[:size])
        problem = checkpoint_problem(str(tmp_path / 'cut.pth'))
        if size == 0:
            assert problem == 'is empty'
        else:  # no zip central directory left: read as a legacy torch file, which fails too
            assert problem.startswith('is truncated or corrupt: not a complete zip archive, and torch.load fails ('), \
                (size, problem)
    flipped = bytearray(data)
    offset = data.index(torch.full((256,), 0.0).numpy().tobytes())  # the tensor's bytes, stored uncompressed
    flipped[offset + 5] ^= 0xFF
    with open(tmp_path / 'flipped.pth', 'wb') as f:
        f.write(flipped)
    assert checkpoint_problem(str(tmp_path / 'flipped.pth')) == 'is corrupt (member good/data/0 fails its CRC check)'


@pytest.fixture
def work_dir(tmp_path):
    """A work dir with complete iter_2.pth and iter_4.pth, iter_4 the newer."""
    save(tmp_path / 'iter_2.pth')
    save(tmp_path / 'iter_4.pth', 1.0)
    os.utime(tmp_path / 'iter_2.pth', (1e9, 1e9))
    return tmp_path


def pointer(work_dir, text: str) -> None:
    with open(work_dir / 'last_checkpoint', 'w') as f:
        f.write(text)


def test_resume_checkpoint_follows_last_checkpoint(work_dir, tmp_path_factory):
    assert resume_checkpoint(str(tmp_path_factory.mktemp('empty'))) is None  # a first start
    pointer(work_dir, f'{work_dir}/iter_2.pth')
    assert resume_checkpoint(str(work_dir)) == f'{work_dir}/iter_2.pth'
    pointer(work_dir, '/elsewhere/work/iter_4.pth')  # the work dir was moved: the file of that name here
    assert resume_checkpoint(str(work_dir)) == f'{work_dir}/iter_4.pth'
    assert resume_checkpoint(str(work_dir), f'{work_dir}/iter_2.pth') == f'{work_dir}/iter_2.pth'


def test_resume_refuses_an_empty_or_dangling_last_checkpoint(work_dir):
    pointer(work_dir, '')
    with pytest.raises(ResumeError) as err:
        resume_checkpoint(str(work_dir))
    assert str(err.value) == (
        f'cannot resume: {work_dir}/last_checkpoint is empty (its write was interrupted); the newest complete '
        f'checkpoint next to it is {work_dir}/iter_4.pth: resume from it with --resume {work_dir}/iter_4.pth')
    pointer(work_dir, '/elsewhere/iter_6.pth')
    with pytest.raises(ResumeError) as err:
        resume_checkpoint(str(work_dir))
    assert str(err.value) == (
        f'cannot resume: {work_dir}/last_checkpoint names checkpoint /elsewhere/iter_6.pth, which exists neither '
        f'there nor as {work_dir}/iter_6.pth (restore it, or resume from another); the newest complete checkpoint '
        f'next to it is {work_dir}/iter_4.pth: resume from it with --resume {work_dir}/iter_4.pth')


def test_resume_refuses_a_truncated_checkpoint(work_dir):
    with open(work_dir / 'iter_6.pth', 'wb') as f:
        f.write(open(work_dir / 'iter_4.pth', 'rb').read()[:1000])
    pointer(work_dir, f'{work_dir}/iter_6.pth')
    with pytest.raises(ResumeError) as err:
        resume_checkpoint(str(work_dir))
    message = str(err.value)
    assert message.startswith(f'cannot resume: checkpoint {work_dir}/iter_6.pth (named by {work_dir}/last_checkpoint) '
                              f'is truncated or corrupt: not a complete zip archive, and torch.load fails (')
    assert message.endswith(f'); the newest complete checkpoint next to it is {work_dir}/iter_4.pth: resume from it '
                            f'with --resume {work_dir}/iter_4.pth')
    with pytest.raises(ResumeError, match=f'^cannot resume: checkpoint {work_dir}/iter_6.pth is truncated'):
        resume_checkpoint(str(work_dir), f'{work_dir}/iter_6.pth')  # --resume PATH
    for name in ('iter_2.pth', 'iter_4.pth'):
        os.remove(work_dir / name)
    with pytest.raises(ResumeError, match=f'; there is no complete checkpoint in {work_dir}: delete '
                                          f'{work_dir}/last_checkpoint to train the run from the start$'):
        resume_checkpoint(str(work_dir))
    os.remove(work_dir / 'last_checkpoint')
    assert resume_checkpoint(str(work_dir)) is None  # then a fresh start


def test_resume_without_last_checkpoint_takes_the_newest_complete_one(work_dir):
    """A kill between the first checkpoint and its last_checkpoint; mmengine would start from scratch."""
    with open(work_dir / 'iter_6.pth', 'wb') as f:
        f.write(b'truncated')
    assert resume_checkpoint(str(work_dir)) == f'{work_dir}/iter_4.pth'


def test_preflight_resume_exits_with_the_message(work_dir, capsys):
    cfg = Config(dict(work_dir=str(work_dir), resume=True, load_from=None))
    pointer(work_dir, '')
    with pytest.raises(SystemExit) as exit_info:
        preflight.resume(cfg, 'config.py')
    assert exit_info.value.code == preflight.EXIT_CODE
    assert capsys.readouterr().err == f'config.py: cannot resume: {work_dir}/last_checkpoint is empty (its write ' \
        f'was interrupted); the newest complete checkpoint next to it is {work_dir}/iter_4.pth: resume from it ' \
        f'with --resume {work_dir}/iter_4.pth (nothing was run)\n'
    pointer(work_dir, f'{work_dir}/iter_2.pth')
    preflight.resume(cfg, 'config.py')
    assert cfg.load_from == f'{work_dir}/iter_2.pth'


def test_tools_use_the_atomic_hook():
    cfg = Config(dict(default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=5))))
    use_atomic_checkpoints(cfg)
    assert cfg.default_hooks.checkpoint == dict(type='AtomicCheckpointHook', interval=5)
    for hook in (dict(type='MyCheckpointHook'), None):  # a config's own class, or no checkpoints
        cfg = Config(dict(default_hooks=dict(checkpoint=hook)))
        use_atomic_checkpoints(cfg)
        assert cfg.default_hooks.checkpoint == hook
    cfg = Config(dict(default_hooks=dict(logger=dict(type='LoggerHook'))))
    use_atomic_checkpoints(cfg)  # mmengine's Runner would add CheckpointHook(interval=1)
    assert cfg.default_hooks.checkpoint == ConfigDict(type='AtomicCheckpointHook', interval=1)


def test_atomic_hook_backend():
    assert AtomicCheckpointHook(interval=1).backend_args == dict(backend='local_atomic')
    assert AtomicCheckpointHook(interval=1, out_dir='s3://bucket/run').backend_args is None
    assert AtomicCheckpointHook(interval=1, backend_args=dict(backend='petrel')).backend_args == dict(backend='petrel')


# ----------------------------------------------------------------------------- the hook in a Runner

class Regression(BaseModel):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(4, 1)

    def forward(self, x, y, mode='loss'):
        return dict(loss=((self.linear(x) - y) ** 2).mean())


def runner(work_dir, hook: str, resume: bool = False) -> Runner:
    """6 iterations of a linear regression, a checkpoint every 2 with ``max_keep_ckpts=1`` (as the
    study configs), resumed with ``resume`` as ``--resume`` does (``resume_checkpoint``)."""
    gen = torch.Generator().manual_seed(1)
    data = [dict(x=torch.randn(4, generator=gen), y=torch.randn(1, generator=gen)) for _ in range(24)]
    return Runner(
        model=Regression(), work_dir=str(work_dir), randomness=dict(seed=0),
        resume=resume, load_from=resume_checkpoint(str(work_dir)) if resume else None,
        train_dataloader=dict(dataset=data, batch_size=4, sampler=dict(type='DefaultSampler', shuffle=True),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=6),
        default_hooks=dict(checkpoint=dict(type=hook, interval=2, by_epoch=False, max_keep_ckpts=1)))


def interrupt_at(monkeypatch, name: str, when: str) -> None:
    """Raise ``Interrupted`` at the write of file ``name`` (a basename) for the iteration-4 checkpoint:
    'before' it starts, 'inside' it (its partial file written in full, not renamed) or 'after' it."""
    write = checkpoints.write_atomic

    def interrupted_write(path, data):
        target = osp.basename(path) == name and (name == 'iter_4.pth' or data.endswith(b'/iter_4.pth'))
        if target and when == 'before':
            raise Interrupted
        if target and when == 'inside':
            with open(partial_path(path), 'wb') as f:
                f.write(data)
            raise Interrupted
        write(path, data)
        if target and when == 'after':
            raise Interrupted
    monkeypatch.setattr(checkpoints, 'write_atomic', interrupted_write)


def files(work_dir) -> set:
    return {name for name in os.listdir(work_dir) if not osp.isdir(work_dir / name) and not name.endswith('.py')}


def last(work_dir) -> str:
    with open(work_dir / 'last_checkpoint') as f:
        return osp.basename(f.read())


@pytest.fixture(scope='module')
def straight(tmp_path_factory):
    work_dir = tmp_path_factory.mktemp('straight')
    run = runner(work_dir, 'AtomicCheckpointHook')
    run.train()
    assert files(work_dir) == {'iter_6.pth', 'last_checkpoint'} and last(work_dir) == 'iter_6.pth'
    return run.model.state_dict()


def resume_equals(work_dir, straight) -> None:
    """Resumed from what the interruption left, the run ends with the uninterrupted run's weights,
    and only its last checkpoint is left."""
    run = runner(work_dir, 'AtomicCheckpointHook', resume=True)
    run.train()
    for name, value in straight.items():
        assert torch.equal(run.model.state_dict()[name], value), name
    assert files(work_dir) == {'iter_6.pth', 'last_checkpoint'} and last(work_dir) == 'iter_6.pth'


def test_upstream_hook_loses_every_checkpoint(tmp_path, monkeypatch):
    """mmengine 0.10.7's CheckpointHook with max_keep_ckpts=1 removes iter_2 before saving iter_4: a
    kill inside that save leaves no complete checkpoint and last_checkpoint names the removed one."""
    import mmengine.runner.runner as runner_module
    save_checkpoint = runner_module.save_checkpoint

    def interrupted_save(checkpoint, filename, **kwargs):
        if osp.basename(filename) == 'iter_4.pth':
            with open(filename, 'wb') as f:
                f.write(b'PK\x03\x04 half a checkpoint')
            raise Interrupted
        save_checkpoint(checkpoint, filename, **kwargs)
    monkeypatch.setattr(runner_module, 'save_checkpoint', interrupted_save)
    with pytest.raises(Interrupted):
        runner(tmp_path, 'CheckpointHook').train()
    assert files(tmp_path) == {'iter_4.pth', 'last_checkpoint'} and last(tmp_path) == 'iter_2.pth'
    with pytest.raises(ResumeError, match='names checkpoint .*/iter_2.pth, which exists neither there nor as .*; '
                                          'there is no complete checkpoint in'):
        resume_checkpoint(str(tmp_path))


@pytest.mark.parametrize('name, when, left', [
    ('iter_4.pth', 'inside', {'iter_2.pth', '.iter_4.pth.partial'}),  # the old checkpoint is kept
    ('last_checkpoint', 'before', {'iter_2.pth', 'iter_4.pth'}),  # last_checkpoint still names iter_2
    ('last_checkpoint', 'inside', {'iter_2.pth', 'iter_4.pth', '.last_checkpoint.partial'}),
    ('last_checkpoint', 'after', {'iter_2.pth', 'iter_4.pth'}),  # iter_2 is removed when resuming from iter_4
])
def test_atomic_hook_interrupted_resumes_exactly(tmp_path, monkeypatch, straight, name, when, left):
    with monkeypatch.context() as patch:
        interrupt_at(patch, name, when)
        with pytest.raises(Interrupted):
            runner(tmp_path, 'AtomicCheckpointHook').train()
    assert files(tmp_path) == left | {'last_checkpoint'}
    assert last(tmp_path) == ('iter_4.pth' if when == 'after' else 'iter_2.pth')
    resume_equals(tmp_path, straight)
