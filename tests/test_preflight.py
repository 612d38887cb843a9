"""Pre-flight checks before the Runner: missing datasets, annotation files and checkpoints
(files, and named ones offline) are reported in one message with exit code 2; the options, config
and Runner that tools/train.py and tools/test.py share (mmpe.engine.launch)."""
import argparse
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from mmpe.engine import preflight
from mmpe.engine.launch import add_common_args, build_runner, load_config

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / 'configs/demo/dino_swin-rope-mixed_synthetic.py'
FLAGSHIP = ROOT / 'configs/dino_swin_rope.py'
REVISION = 'b' * 40


def _cache(hub: Path, repo: str, filename: str) -> Path:
    """Put an (empty) checkpoint ``filename`` of ``repo`` into the hub cache; its path."""
    folder = hub / ('models--' + repo.replace('/', '--'))
    (folder / 'snapshots' / REVISION).mkdir(parents=True)
    torch.save({}, folder / 'snapshots' / REVISION / filename)
    (folder / 'refs').mkdir()
    (folder / 'refs' / 'main').write_text(REVISION)
    return folder / 'snapshots' / REVISION / filename


def _demo_config(root: Path) -> Config:
    """The demo detection config on a COCO-layout folder ``root`` with every file it reads."""
    for split in ('train', 'val'):
        (root / split).mkdir(parents=True, exist_ok=True)
        (root / 'annotations').mkdir(exist_ok=True)
        (root / 'annotations' / f'instances_{split}.json').write_text(json.dumps({}))
    os.environ['MMPE_SYNTHETIC_DET'] = f'{root}/'
    try:
        return Config.fromfile(str(DEMO))
    finally:
        del os.environ['MMPE_SYNTHETIC_DET']


def test_complete_inputs_pass_and_each_missing_one_is_reported(tmp_path, offline_hub):
    root = tmp_path / 'det'
    cfg = _demo_config(root)
    assert preflight.check(cfg, str(DEMO), 'train') == []
    assert preflight.check(cfg, str(DEMO), 'test') == []

    (root / 'annotations' / 'instances_val.json').unlink()
    missing = preflight.check(cfg, str(DEMO), 'train')
    # read by the val dataset and by CocoMetric
    assert [m.what for m in missing] == ['CocoDataset annotation file of val_dataloader (ann_file)',
                                         'annotation file of val_evaluator (CocoMetric ann_file)']
    assert all(m.where == f'{root}/annotations/instances_val.json: No such file or directory' for m in missing)
    assert 'cocodataset.org' in missing[0].how and '--cfg-options val_dataloader.dataset.data_root=DIR/' in \
        missing[0].how

    cfg.train_dataloader.dataset.data_root = str(tmp_path / 'nowhere')
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=str(tmp_path / 'absent.pth'))
    cfg.load_from = 'hf://someone/detector/iter_100.pth'
    missing = {m.what: m for m in preflight.check(cfg, str(DEMO), 'train')}
    assert missing['CocoDataset root of train_dataloader (data_root)'].where == \
        f'{tmp_path}/nowhere: No such file or directory'
    assert missing[f'pretrained checkpoint {tmp_path}/absent.pth'].where == \
        f'{tmp_path}/absent.pth: No such file or directory'
    offline = missing['checkpoint to load (load_from) hf://someone/detector/iter_100.pth, not in the local cache '
                      'and HF_HUB_OFFLINE=1']
    assert offline.where == str(offline_hub / 'models--someone--detector')
    assert offline.how.endswith('python tools/misc/fetch_weights.py hf://someone/detector/iter_100.pth')


def test_named_checkpoints_in_the_cache_pass(tmp_path, offline_hub):
    cfg = _demo_config(tmp_path / 'det')
    name = 'hf://naver-ai/swin_rope_mixed_tiny_patch4_window7_224'
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=name)
    [missing] = preflight.check(cfg, str(DEMO), 'train')
    assert missing.how.endswith(f'python tools/misc/fetch_weights.py {DEMO}')
    _cache(offline_hub, 'naver-ai/swin_rope_mixed_tiny_patch4_window7_224', 'pytorch_model.bin')
    assert preflight.check(cfg, str(DEMO), 'train') == []
    cfg.model.backbone.init_cfg.checkpoint = 'timm://no_such_model'
    [missing] = preflight.check(cfg, str(DEMO), 'train')
    assert "timm has no pretrained weights named 'no_such_model'" in missing.how


def test_run_prints_one_message_and_exits_2(tmp_path, offline_hub, capsys):
    """In process (what tools/train.py runs before building the Runner): nothing printed when every
    input is there; otherwise one message on stderr, each missing input as what: where, then how."""
    root = tmp_path / 'det'
    cfg = _demo_config(root)
    preflight.run(cfg, str(DEMO), 'train')
    assert capsys.readouterr() == ('', '')
    (root / 'annotations' / 'instances_val.json').unlink()
    with pytest.raises(SystemExit) as exit_info:
        preflight.run(cfg, str(DEMO), 'train')
    assert exit_info.value.code == 2
    out, err = capsys.readouterr()
    where = f'{root}/annotations/instances_val.json: No such file or directory'
    assert out == '' and err.splitlines() == [
        f'{DEMO}: cannot start, 2 input(s) missing (nothing was run):',
        f'  - CocoDataset annotation file of val_dataloader (ann_file): {where}',
        f'    get {preflight.DATA_SOURCES["CocoDataset"]}, or point the config at your copy: '
        '--cfg-options val_dataloader.dataset.data_root=DIR/',
        f'  - annotation file of val_evaluator (CocoMetric ann_file): {where}',
        '    set val_evaluator.ann_file to the annotation file of the evaluated split']


def test_test_phase_reads_only_the_checkpoint_it_tests(tmp_path, offline_hub):
    """Runner.test() never initialises weights from init_cfg: an offline node without the ImageNet
    weights can test; a missing load_from is still reported."""
    cfg = _demo_config(tmp_path / 'det')
    name = 'hf://naver-ai/swin_rope_mixed_tiny_patch4_window7_224'
    cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=name)
    assert [m.what for m in preflight.check(cfg, str(DEMO), 'train')] == \
        [f'pretrained checkpoint {name}, not in the local cache and HF_HUB_OFFLINE=1']
    assert preflight.check(cfg, str(DEMO), 'test') == []
    cfg.load_from = str(tmp_path / 'iter_100.pth')
    assert [m.what for m in preflight.check(cfg, str(DEMO), 'test')] == \
        [f'checkpoint to load (load_from) {tmp_path}/iter_100.pth']


def test_config_checkpoints_finds_init_cfg_and_pretrained():
    model = dict(pretrained='a.pth', backbone=dict(init_cfg=dict(type='Pretrained', checkpoint='hf://o/r')),
                 neck=[dict(init_cfg=dict(type='Pretrained', checkpoint='a.pth'))], head=dict(init_cfg=None))
    assert preflight.config_checkpoints(model) == ['a.pth', 'hf://o/r']
    with pytest.raises(ValueError, match="phase='val': expected one of 'train', 'test'"):
        preflight.check(Config(dict(model=model)), 'x.py', 'val')


def test_fetch_weights_reports_each_checkpoint(offline_hub, monkeypatch, capsys):
    """tools/misc/fetch_weights.py takes configs and names; offline, a cached file is reported where it
    is, a missing one fails with the not-cached error (exit code 1)."""
    path = _cache(offline_hub, 'naver-ai/swin_rope_mixed_tiny_patch4_window7_224', 'pytorch_model.bin')
    monkeypatch.setattr(sys, 'argv', ['fetch_weights.py', str(FLAGSHIP), 'hf://nobody/missing'])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / 'tools/misc/fetch_weights.py'), run_name='__main__')
    assert exit_info.value.code == 1
    out, err = capsys.readouterr()
    assert out == f'hf://naver-ai/swin_rope_mixed_tiny_patch4_window7_224 -> {path}\n'
    assert err.startswith('hf://nobody/missing: FAILED: checkpoint hf://nobody/missing (repo nobody/missing, '
                          'HF_HUB_OFFLINE=1) is not in the local cache')


@pytest.mark.slow
def test_train_tool_without_coco_and_weights_exits_2_with_one_message(tmp_path):
    """The flagship on a machine without COCO and with an empty, offline weight cache."""
    env = dict(os.environ, HF_HOME=str(tmp_path / 'hf'), HF_HUB_OFFLINE='1', PYTHONPATH=str(ROOT),
               OMP_NUM_THREADS='1')
    env.pop('HF_HUB_CACHE', None)
    proc = subprocess.run([sys.executable, str(ROOT / 'tools/train.py'), str(FLAGSHIP), '--work-dir',
                           str(tmp_path / 'work')], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    err = proc.stderr
    assert f'{FLAGSHIP}: cannot start, 4 input(s) missing (nothing was run):' in err, err
    assert f'CocoDataset root of train_dataloader (data_root): {tmp_path}/data/coco: No such file or directory' in err
    assert 'CocoDataset root of val_dataloader' in err and 'cocodataset.org' in err
    assert f'annotation file of val_evaluator (CocoMetric ann_file): {tmp_path}/data/coco/annotations/' in err
    assert ('pretrained checkpoint hf://naver-ai/swin_rope_mixed_tiny_patch4_window7_224, not in the local cache and '
            f'HF_HUB_OFFLINE=1: {tmp_path}/hf/hub/models--naver-ai--swin_rope_mixed_tiny_patch4_window7_224') in err
    assert f'python tools/misc/fetch_weights.py {FLAGSHIP}' in err
    assert 'Traceback' not in err and not (tmp_path / 'work').exists()


# ----------------------------------------------------------------------------- launch

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    parser.add_argument('config')
    add_common_args(parser)
    return parser


def test_common_options_apply_to_the_config(tmp_path, monkeypatch, capsys):
    config = tmp_path / 'tiny_run.py'
    config.write_text("model = dict(type='PEVisionTransformer', depth=2)\ntrain_cfg = dict(max_iters=10)\n")
    monkeypatch.setenv('LOCAL_RANK', '')
    monkeypatch.delenv('LOCAL_RANK')  # unset here; monkeypatch restores it after the test
    args = _parser().parse_args([str(config), '--cfg-options', 'train_cfg.max_iters=3', 'model.depth=1',
                                 '--launcher', 'pytorch', '--local-rank', '1'])
    cfg = load_config(args)
    assert cfg.model == dict(type='PEVisionTransformer', depth=1) and cfg.train_cfg.max_iters == 3
    assert cfg.launcher == 'pytorch' and os.environ['LOCAL_RANK'] == '1'
    assert cfg.work_dir == './work_dirs/tiny_run'  # no --work-dir, none in the config
    args = _parser().parse_args([str(config), '--local_rank', '0', '--work-dir', str(tmp_path / 'work')])
    cfg = load_config(args)
    assert cfg.work_dir == str(tmp_path / 'work') and cfg.launcher == 'none' and cfg.train_cfg.max_iters == 10
    assert os.environ['LOCAL_RANK'] == '1'  # torchrun's value is kept
    config.write_text("model = dict(type='PEVisionTransformer')\nwork_dir = 'runs/mine'\n")
    assert load_config(_parser().parse_args([str(config)])).work_dir == 'runs/mine'
    with pytest.raises(SystemExit):
        _parser().parse_args([str(config), '--launcher', 'ssh'])
    assert "argument --launcher: invalid choice: 'ssh'" in capsys.readouterr().err


def test_build_runner_builds_mmengines_runner_or_the_configs_own(tmp_path):
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from mmpe.models import PEVisionTransformer

    class CustomRunner(Runner):
        pass
    RUNNERS.register_module(name='PreflightTestRunner', module=CustomRunner, force=True)
    config = tmp_path / 'vit.py'
    config.write_text("default_scope = 'mmseg'\n"
                      "model = dict(type='PEVisionTransformer', img_size=32, patch_size=8, embed_dims=16, depth=2, "
                      "num_heads=2)\n")
    cfg = load_config(_parser().parse_args([str(config), '--work-dir', str(tmp_path / 'work'),
                                            '--cfg-options', 'model.depth=1']))
    runner = build_runner(cfg)
    assert type(runner) is Runner and runner.work_dir == str(tmp_path / 'work')
    assert type(runner.model) is PEVisionTransformer and len(runner.model.blocks) == 1  # the config's scope
    cfg.runner_type = 'PreflightTestRunner'
    assert type(build_runner(cfg)) is CustomRunner
