"""The transfer study (issue 22): pretrain at 48 px, fine-tune at 144 px, evaluate at several scales.

Fast: a fine-tuned backbone starts equal to the pretrained one (APE: the table is the pretrained one and
what an 18x18 grid gets is its bicubic resize, computed here with torch directly); a fine-tuning run's
config names its pretraining checkpoint; ``--dry-run --preset transfer`` lists the issue's runs
(13 encodings x 5 seeds: 1 pretraining + 3 fine-tunings each, seed outermost) and their commands.
End to end (minute-scale, CPU): compare_encodings.py --pretrain ... --quick for ape and rope_mixed x
2 seeds with the 1x1 control head: pretraining -> fine-tuning from its checkpoint -> eval_multires ->
collect_results; a dry run of the same command then skips every run.
"""
import csv
import math
import os
import os.path as osp
import re
import runpy
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import DefaultScope

from mmpe.analysis.study import parse_encoding
from mmpe.analysis.study_runner import run_config
from mmpe.analysis.transfer import SWIN_STUDY_ENCODINGS, TRANSFER, VIT_STUDY_ENCODINGS
from mmpe.datasets import generate_segmentation_set
from mmpe.pos_embed import LearnedPosEmbed
from mmpe.testing import build_model

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = 'tools/analysis_tools/compare_encodings.py'
STUDY = osp.join(ROOT, 'configs', 'study')
PRETRAIN_VIT = osp.join(STUDY, 'pretrain_vit-tiny_layout48.py')
PRETRAIN_SWIN = osp.join(STUDY, 'pretrain_swin-tiny_layout48.py')


def model_of(config, encoding, pretrained=None, tmp_path=None):
    """(model, cfg) of the run config compare_encodings.py writes for ``config`` and ``encoding``."""
    name, pos_embed = parse_encoding(encoding)
    path = tmp_path / f'{osp.basename(config)}-{name}.py'
    path.write_text(run_config(config, pos_embed=pos_embed, name=name, seed=0, quick=False, pretrained=pretrained))
    cfg = Config.fromfile(str(path))
    torch.manual_seed(1)  # not the seed of the pretrained model: loading must do all the work
    model = build_model(cfg.model, cfg.default_scope)
    DefaultScope._instance_dict.clear()
    return model, cfg


# ----------------------------------------------------------------------------- pretrained backbone

@pytest.mark.parametrize('pretrain, finetune, encoding', [
    (PRETRAIN_VIT, 'transfer_upernet_vit-tiny_layout144.py', 'ape'),
    (PRETRAIN_VIT, 'transfer_dino_vit-tiny_layout144.py', 'rope_mixed+ape'),
    (PRETRAIN_SWIN, 'transfer_fcn1x1_swin-tiny_layout144.py', 'rope_mixed'),
    (PRETRAIN_SWIN, 'transfer_dino_swin-tiny_layout144.py', 'rpb')])
def test_fine_tuned_backbone_starts_as_the_pretrained_one(tmp_path, pretrain, finetune, encoding):
    torch.manual_seed(0)
    pretrained, _ = model_of(pretrain, encoding, tmp_path=tmp_path)
    checkpoint = tmp_path / 'iter_2.pth'
    torch.save(dict(meta=dict(), state_dict=pretrained.state_dict()), checkpoint)  # as mmengine saves it
    model, cfg = model_of(osp.join(STUDY, finetune), encoding, str(checkpoint), tmp_path)
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained', checkpoint=str(checkpoint))
    source, loaded = pretrained.backbone.state_dict(), model.backbone.state_dict()
    # DINO's Swin has no output norm of stage 0 (out_indices 1-3): the only keys it does not take
    assert sorted(source.keys() - loaded.keys()) == (['norm0.bias', 'norm0.weight'] if 'dino_swin' in finetune else [])
    assert loaded.keys() <= source.keys()
    for key in loaded:
        assert torch.equal(loaded[key], source[key]), key
    apes = [m for m in model.backbone.modules() if isinstance(m, LearnedPosEmbed)]
    if 'ape' in encoding:  # 6x6 table (img_size 48: the pretraining grid), 18x18 grid at 144 px
        ape, = apes
        table = source['pos_embed.pos_embed']
        assert ape.grid_size == (6, 6) and table.shape == (1, 36, 64)
        tokens = torch.zeros(1, 1 + 18 * 18, 64)  # CLS + 18x18 patches
        expected = F.interpolate(table.reshape(1, 6, 6, 64).permute(0, 3, 1, 2), size=(18, 18), mode='bicubic',
                                 align_corners=False).flatten(2).transpose(1, 2)
        torch.testing.assert_close(ape(tokens, (18, 18))[:, 1:], expected)
    else:
        assert not apes


def test_run_config_names_the_pretraining_checkpoint(tmp_path):
    name, pos_embed = parse_encoding("rope_mixed interpolate={'type': 'rope_mixed', 'coords': 'interpolate'}")
    path = tmp_path / 'config.py'
    path.write_text(run_config(osp.join(STUDY, 'transfer_fcn1x1_vit-tiny_layout144.py'), pos_embed=pos_embed,
                               name=name, seed=3, quick=True, pretrained='work/pretrain/x/seed3/iter_2.pth'))
    cfg = Config.fromfile(str(path))
    backbone = cfg.model.backbone
    assert backbone.init_cfg == dict(type='Pretrained', checkpoint=osp.abspath('work/pretrain/x/seed3/iter_2.pth'))
    assert backbone.pos_embed == dict(type='rope_mixed', coords='interpolate')
    assert backbone.img_size == (48, 48) and backbone.type == 'PEVisionTransformer'  # the rest inherited
    assert (cfg.study.encoding, cfg.study.seed, cfg.randomness.seed) == (name, 3, 3)
    assert cfg.train_cfg.max_iters == 2 and cfg.val_dataloader is None


# ----------------------------------------------------------------------------- the preset, dry run

def dry_run(monkeypatch, capsys, tmp_path, *args):
    monkeypatch.chdir(ROOT)
    for data in TRANSFER.data:  # the preset sets these for its runs: keep them out of the other tests
        monkeypatch.delenv(data.env, raising=False)
    for key in TRANSFER.env:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(sys, 'argv', [TOOL, *args, '--work-dir', str(tmp_path / 'work'), '--out',
                                      str(tmp_path / 'out'), '--data-root', str(tmp_path / 'data'), '--dry-run'])
    runpy.run_path(TOOL, run_name='__main__')
    return capsys.readouterr().out


def test_dry_run_of_the_transfer_preset(tmp_path, monkeypatch, capsys):
    out = dry_run(monkeypatch, capsys, tmp_path, '--preset', 'transfer')
    assert not (tmp_path / 'work').exists() and not (tmp_path / 'data').exists()
    tasks, seeds = 3, 5  # the issue: UperNet, 1x1 control, DINO; at least 5 seeds
    assert len(VIT_STUDY_ENCODINGS) == 8 and len(SWIN_STUDY_ENCODINGS) == 5 and len(TRANSFER.seeds) == seeds
    chains = (len(VIT_STUDY_ENCODINGS) + len(SWIN_STUDY_ENCODINGS)) * seeds
    assert out.startswith(f'# {chains * (1 + tasks)} runs ({chains} pretrainings, {chains * tasks} fine-tunings)')
    assert 'up to 2 at once' in out.splitlines()[0] and 'OMP_NUM_THREADS=1' in out.splitlines()[0]
    commands = out.replace(' \\\n    ', ' ').splitlines()
    # the 48 px pretraining set, the 144 px segmentation and detection sets
    assert sum('tools/misc/make_synthetic_data.py' in c for c in commands) == 3
    train = [c for c in commands if ' tools/train.py ' in c]
    evaluate = [c for c in commands if ' tools/analysis_tools/eval_multires.py ' in c]
    assert len(train) == chains * (1 + tasks) and len(evaluate) == chains * tasks
    assert all(c.endswith('--scales 0.5 0.75 1 1.5 2') for c in evaluate)
    states = re.findall(r'^# (\d+)\. (\S+) / (.+) / seed (\d) -- (\S+): (.*)$', out, re.M)
    assert len(states) == len(train)
    by_index = {int(s[0]): s for s in states}
    assert [int(s[3]) for s in states] == sorted(int(s[3]) for s in states)  # seed outermost
    for index, config, encoding, seed, run_dir, state in states:
        if config.startswith('pretrain_'):
            assert state == 'new run' and f'/pretrain/{config[:-3]}/' in run_dir
            continue
        pretraining = int(re.fullmatch(r'new run, from the checkpoint of pretraining run (\d+)', state)[1])
        _, pre_config, pre_encoding, pre_seed, _, _ = by_index[pretraining]
        assert pretraining < int(index) and (pre_encoding, pre_seed) == (encoding, seed)
        assert pre_config.split('_')[1] == config.split('_')[2]  # vit-tiny / swin-tiny
    assert commands[-1].endswith(f'collect_results.py {tmp_path}/work --out {tmp_path}/out --flops-size 144 144')


def test_preset_rejects_configs_of_its_own(tmp_path, monkeypatch, capsys):
    with pytest.raises(ValueError, match='--preset transfer defines the configs, encodings and pretraining; '
                                         'do not give CONFIG, --pretrain'):
        dry_run(monkeypatch, capsys, tmp_path, 'configs/study/transfer_fcn1x1_vit-tiny_layout144.py', '--preset',
                'transfer', '--pretrain', 'configs/study/pretrain_vit-tiny_layout48.py')
    with pytest.raises(ValueError,
                       match=r'give CONFIG \[CONFIG ...\] or --preset \(one of: transfer, transfer-ms\)'):
        dry_run(monkeypatch, capsys, tmp_path)


# ----------------------------------------------------------------------------- end to end

def read(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope='module')
def transfer_data(tmp_path_factory):
    root = tmp_path_factory.mktemp('transfer')
    generate_segmentation_set(str(root / 'pre'), num_train=4, num_val=2, height=48, width=48, seed=0, task='layout')
    generate_segmentation_set(str(root / 'fine'), num_train=4, num_val=2, height=144, width=144, seed=1,
                              task='layout')
    return dict(MMPE_TRANSFER_PRETRAIN=f'{root}/pre/', MMPE_TRANSFER_SEG=f'{root}/fine/')


@pytest.mark.slow
def test_transfer_pipeline_quick(tmp_path, transfer_data, monkeypatch, capsys):
    """pretrain -> fine-tune from that checkpoint -> multi-scale eval -> table, 2 encodings, 1 seed (the order
    of seeds and runs: the dry runs above)."""
    work, out = tmp_path / 'work', tmp_path / 'out'
    command = [sys.executable, TOOL, 'configs/study/transfer_fcn1x1_vit-tiny_layout144.py', '--pretrain',
               'configs/study/pretrain_vit-tiny_layout48.py', '--encodings', 'ape', 'rope_mixed', '--seeds', '0',
               '--work-dir', str(work), '--out', str(out), '--flops-size', '48', '48', '--metrics', 'mIoU', '--quick',
               '--scales', '0.5', '2', '--max-jobs', '2']
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1', **transfer_data)
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f'{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}'

    for encoding in ('ape', 'rope_mixed'):
        pretraining = work / 'pretrain' / 'pretrain_vit-tiny_layout48' / encoding / 'seed0'
        checkpoint = pretraining / 'iter_2.pth'
        assert (pretraining / 'train_done').is_file() and checkpoint.is_file()
        assert not (pretraining / 'multires').exists()  # pretraining runs are not evaluated
        run = work / 'transfer_fcn1x1_vit-tiny_layout144' / encoding / 'seed0'
        cfg = Config.fromfile(str(run / 'config.py'))
        assert cfg.model.backbone.init_cfg == dict(type='Pretrained', checkpoint=str(checkpoint))
        assert cfg.randomness.seed == 0
        # mmpe's loader logged that it read the pretraining checkpoint
        assert f'checkpoint {checkpoint}: detected layout' in (run / 'steps.log').read_text()
        rows = read(run / 'multires' / 'multires.csv')
        assert [float(r['scale']) for r in rows] == [0.5, 2.0]
        assert all(math.isfinite(float(r['mIoU'])) for r in rows)
    rows = read(out / 'results_by_scale.csv')  # collect_results.py
    assert {r['encoding'] for r in rows} == {'ape', 'rope_mixed'}

    # an interrupted study resumes: a dry run of the same command skips every run
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, 'argv', [TOOL, *command[2:], '--dry-run'])
    runpy.run_path(TOOL, run_name='__main__')
    states = [line.split(': ', 1)[1] for line in capsys.readouterr().out.splitlines() if ' -- ' in line]
    assert states == ['skip, pretrained already'] * 2 + ['skip, evaluated already'] * 2
