"""Issue 32's study (``--preset transfer-ms``): multi-scale fine-tuning, DINOv3's RoPE, the test-time
resolution options as evaluation variants, and the Swin investigation (padding masked, mmdet's Swin).

Fast: the preset's dry run lists its runs (a pretraining shared by several groups once) and the variant
evaluations with their --cfg-options. End to end (minute-scale): pretraining -> fine-tuning with the random
resize and crop (label maps padded with 255, the class-weighted loss of mmpe.engine.compat) -> evaluation at
2 scales plus a YaRN variant at 2x -> one table with both rows.
"""
import csv
import math
import re

import pytest
from mmengine.config import Config
from test_transfer_study import ROOT, STUDY, dry_run  # noqa: F401 (ROOT: the dry run's working directory)

from mmpe.analysis.launchers import Launcher
from mmpe.analysis.study_runner import run_study, study_settings
from mmpe.analysis.transfer import MS_VARIANTS, TRANSFER_MS, EvalVariant, StudyGroup
from mmpe.datasets import generate_segmentation_set


def test_dry_run_of_the_transfer_ms_preset(tmp_path, monkeypatch, capsys):
    out = dry_run(monkeypatch, capsys, tmp_path, '--preset', 'transfer-ms')
    states = re.findall(r'^# (\d+)\. (\S+) / (.+) / seed (\d) -- (\S+): (.*)$', out, re.M)
    pretrain_dirs = [s[4] for s in states if s[1].startswith('pretrain_')]
    assert len(pretrain_dirs) == len(set(pretrain_dirs)) == 9 * 5  # 5 ViT, 3 Swin, 1 mmdet Swin per seed
    assert len(states) - len(pretrain_dirs) == 30 * 5
    commands = out.replace(' \\\n    ', ' ').splitlines()
    variants = [c for c in commands if re.search(r'/config_(linear|ntk|yarn)\.py ', c)]
    # rope_axial: linear, ntk, yarn; rope_mixed: linear, yarn; for the UperNet and the 1x1 head, every seed
    assert len(variants) == (3 + 2) * 2 * 5
    for command in variants:
        encoding, kind = re.search(r'/(rope_axial|rope_mixed)/seed\d/config_(\w+)\.py ', command).groups()
        assert kind in ('linear', 'yarn') or encoding == 'rope_axial'
        run_dir = command.split(' tools/analysis_tools/eval_multires.py ')[1].split('/config_')[0]
        assert command.endswith(f'--scales 1.5 2 --out {run_dir}/multires_{kind}')
    assert sum('finetune144-det-val100' in c and '--num-val 100' in c for c in commands) == 1
    assert {v.name for v in MS_VARIANTS} == {'linear', 'ntk', 'yarn'} and len(TRANSFER_MS.seeds) == 5


def read(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_multi_scale_pipeline_with_a_variant(tmp_path, monkeypatch):
    """pretrain -> multi-scale fine-tuning -> evaluation at 1x, 2x and a YaRN variant at 2x -> table."""
    generate_segmentation_set(str(tmp_path / 'pre'), num_train=4, num_val=2, height=48, width=48, seed=0, task='layout')
    generate_segmentation_set(str(tmp_path / 'fine'), num_train=4, num_val=2, height=144, width=144, seed=1,
                              task='layout')
    monkeypatch.setenv('MMPE_TRANSFER_PRETRAIN', f'{tmp_path}/pre/')
    monkeypatch.setenv('MMPE_TRANSFER_SEG', f'{tmp_path}/fine/')
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    monkeypatch.chdir(ROOT)
    yarn = EvalVariant('yarn', ('rope_axial', ), dict(model=dict(backbone=dict(pos_embed=dict(
        scaling=dict(type='yarn', train_grid=(18, 18)))))), (2.0, ))
    work, out = tmp_path / 'work', tmp_path / 'out'
    settings = study_settings(work_dir=str(work), out=str(out),
                              configs=[f'{STUDY}/transfer-ms_fcn1x1_vit-tiny_layout144.py'],
                              pretrain=f'{STUDY}/pretrain_vit-tiny_layout48.py', encodings=['rope_axial'], seeds=[0],
                              scales=[1.0, 2.0], flops_size=[48, 48], quick=True, metrics=['mIoU'])
    settings.groups = [StudyGroup(settings.groups[0].pretrain, settings.groups[0].configs, ['rope_axial'], (yarn, ))]
    assert run_study(settings, Launcher('none')) == []
    run = work / 'transfer-ms_fcn1x1_vit-tiny_layout144' / 'rope_axial' / 'seed0'
    pipeline = [t['type'] for t in Config.fromfile(str(run / 'config.py')).train_dataloader.dataset.pipeline]
    assert pipeline[2:5] == ['RandomResize', 'RandomCrop', 'LayoutLabelsInCrop']
    assert [float(r['scale']) for r in read(run / 'multires' / 'multires.csv')] == [1.0, 2.0]
    assert [float(r['scale']) for r in read(run / 'multires_yarn' / 'multires.csv')] == [2.0]
    scaled = Config.fromfile(str(run / 'multires_yarn' / 'config.py')).model.backbone.pos_embed
    assert scaled.type == 'rope_axial' and scaled.scaling == dict(type='yarn', train_grid=(18, 18))
    rows = {(r['encoding'], float(r['scale'])): r for r in read(out / 'results_by_scale.csv')}
    assert set(rows) == {('rope_axial', 1.0), ('rope_axial', 2.0), ('rope_axial +yarn', 2.0)}
    assert all(math.isfinite(float(r['mIoU'])) for r in rows.values())
