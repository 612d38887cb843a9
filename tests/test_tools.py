"""End to end through tools/: synthetic data, training, checkpoints, evaluation with the real
metrics, two-process CPU training (torchrun, gloo), exact resume, clear failures."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest
import torch

from mmpe.datasets import generate_detection_set, generate_segmentation_set

pytestmark = pytest.mark.slow  # compilation / subprocess tools / multi-process runs

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DET = 'configs/demo/dino_swin-rope-mixed_synthetic.py'
SEG = 'configs/demo/upernet_swin-rope-mixed_synthetic.py'


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('synthetic')
    generate_detection_set(str(root / 'det'), num_train=8, num_val=4, seed=1)
    generate_segmentation_set(str(root / 'seg'), num_train=8, num_val=4, seed=1)
    return root


def run(args, data, check=True, **env_vars):
    env = dict(os.environ, MMPE_SYNTHETIC_DET=f'{data}/det/', MMPE_SYNTHETIC_SEG=f'{data}/seg/',
               PYTHONPATH=ROOT, PYTHON=sys.executable, OMP_NUM_THREADS='1', **env_vars)
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f'{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
    return proc


def short_run(iters: int, interval: int):
    return ['--cfg-options', f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
            f'default_hooks.checkpoint.interval={interval}', 'default_hooks.logger.interval=1',
            'param_scheduler=[]']


def test_synthetic_data_is_deterministic(tmp_path, data):
    generate_detection_set(str(tmp_path / 'det'), num_train=8, num_val=4, seed=1)
    for name in ('annotations/instances_train.json', 'train/000003.png'):
        with open(tmp_path / 'det' / name, 'rb') as a, open(data / 'det' / name, 'rb') as b:
            assert a.read() == b.read()


@pytest.mark.parametrize('config, metric', [(DET, 'coco/bbox_mAP'), (SEG, 'mIoU')])
def test_demo_trains_checkpoints_and_evaluates(tmp_path, data, config, metric):
    work = tmp_path / 'work'
    proc = run([sys.executable, 'tools/train.py', config, '--work-dir', str(work), *short_run(4, 4)], data)
    assert 'Iter(train) [4/4]' in proc.stdout + proc.stderr
    checkpoint = work / 'iter_4.pth'
    assert checkpoint.exists()
    # An offline node without the ImageNet weights the config names: testing never reads them.
    proc = run([sys.executable, 'tools/test.py', config, str(checkpoint), '--work-dir', str(work), '--cfg-options',
                'model.backbone.init_cfg._delete_=True', 'model.backbone.init_cfg.type=Pretrained',
                'model.backbone.init_cfg.checkpoint=hf://nobody/imagenet-weights'],
               data, HF_HOME=str(tmp_path / 'empty_hf'), HF_HUB_OFFLINE='1')
    assert metric in proc.stdout + proc.stderr


def test_two_process_cpu_training(tmp_path, data):
    work = tmp_path / 'dist'
    # mmseg's default SyncBN heads: the compatibility fix reverts them to BN on CPU
    syncbn = ['model.decode_head.norm_cfg.type=SyncBN', 'model.auxiliary_head.norm_cfg.type=SyncBN']
    proc = run(['bash', 'tools/dist_train.sh', SEG, '2', '--work-dir', str(work), *short_run(2, 2), *syncbn],
               data)
    log = proc.stdout + proc.stderr
    assert 'Distributed launcher: pytorch' in log and 'Distributed training: True' in log
    assert 'GPU number: 2' in log  # mmengine's name for the world size
    assert 'SyncBN needs CUDA: reverted to BatchNorm' in log
    assert log.count('Iter(train) [2/2]') == 1  # rank 0 logs; both ranks must finish for the checkpoint
    assert (work / 'iter_2.pth').exists()


def test_resume_is_exact(tmp_path, data):
    """Resumed with another seed, a run repeats the uninterrupted one exactly from the next
    iteration on (the checkpoint's seed and random states win, as mmengine intends)."""
    straight, resumed = tmp_path / 'straight', tmp_path / 'resumed'
    run([sys.executable, 'tools/train.py', DET, '--work-dir', str(straight), *short_run(4, 2)], data)
    proc = run([sys.executable, 'tools/train.py', DET, '--work-dir', str(resumed), '--resume',
                str(straight / 'iter_2.pth'), *short_run(4, 2), 'randomness.seed=1'], data)
    log = proc.stdout + proc.stderr
    assert 'resumed epoch: 0, iter: 2' in log
    assert re.findall(r'Iter\(train\) \[(\d+)/4\]', log) == ['3', '4']
    a = torch.load(straight / 'iter_4.pth')
    b = torch.load(resumed / 'iter_4.pth')
    assert b['meta']['iter'] == 4
    for key, value in a['state_dict'].items():
        torch.testing.assert_close(b['state_dict'][key], value, rtol=0, atol=0, msg=key)
    assert a['param_schedulers'] == b['param_schedulers']


def test_missing_dataset_fails_clearly(tmp_path, data):
    proc = run([sys.executable, 'tools/train.py', DET, '--work-dir', str(tmp_path), *short_run(2, 2)],
               tmp_path / 'nowhere', check=False)
    assert proc.returncode != 0
    assert 'No such file or directory' in proc.stderr and 'nowhere' in proc.stderr


@pytest.mark.parametrize('config', [DET, SEG])
def test_runner_compile_option_trains(tmp_path, data, config):
    """mmengine's ``compile`` option (docs/user_guides/compile.md) through tools/train.py: the Runner compiles
    ``train_step`` (preprocessing, loss forward, backward, optimizer step) and trains. One iteration, with
    dynamo and AOT autograd but without inductor's code generation (``compile=True`` is inductor), which
    takes minutes here."""
    proc = run([sys.executable, 'tools/train.py', config, '--work-dir', str(tmp_path), '--cfg-options',
                'compile.backend=aot_eager', 'train_cfg.max_iters=1', 'train_cfg.val_interval=2',
                'default_hooks.checkpoint.interval=2', 'default_hooks.logger.interval=1', 'param_scheduler=[]'], data)
    log = proc.stdout + proc.stderr
    assert 'Model has been "compiled"' in log and 'Iter(train) [1/1]' in log
