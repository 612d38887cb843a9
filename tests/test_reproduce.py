"""The RoPE-ViT paper's settings: test-time augmentation as mmseg's / mmdet's tools/test.py do it,
``tools/test.py --tta`` and ``eval_multires.py --tta`` on the synthetic ADE20k set, and
``collect_results.py --reproduce`` filling docs/reproduce.md from run directories."""
import ast
import copy
import glob
import json
import os
import os.path as osp
import re
import runpy
import statistics
import subprocess
import sys
import warnings

import pytest
import torch
from mmengine.config import Config, ConfigDict

from mmpe.analysis.report import write_table
from mmpe.analysis.reproduce import REPRODUCE_TABLE
from mmpe.analysis.study import TTA, read_csv
from mmpe.engine.launch import tta_config

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
COLLECT = osp.join(ROOT, 'tools', 'analysis_tools', 'collect_results.py')
VIT_B_UPERNET = sorted(glob.glob(osp.join(ROOT, 'configs', 'upernet', '*vit-b16*.py')))
DINO = 'configs/dino/dino-4scale_vit-b16-ape_simplefpn_8xb2-12e_coco.py'
DEMO_SEG = 'configs/demo/upernet_swin-rope-mixed_synthetic.py'
RATIOS = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]


def upstream_tta(package: str, cfg: Config) -> Config:
    """``cfg`` after the ``if args.tta:`` block of ``package``'s own tools/test.py (read from the
    installed package and run as it is)."""
    tool = osp.join(osp.dirname(__import__(package).__file__), '.mim', 'tools', 'test.py')
    with open(tool) as f:
        tree = ast.parse(f.read())
    [block] = [node for node in ast.walk(tree) if isinstance(node, ast.If) and ast.unparse(node.test) == 'args.tta']
    namespace = dict(cfg=copy.deepcopy(cfg), warnings=warnings, ConfigDict=ConfigDict, deepcopy=copy.deepcopy)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        exec(compile(ast.Module(body=block.body, type_ignores=[]), tool, 'exec'), namespace)
    return namespace['cfg']


@pytest.mark.parametrize('path', [osp.relpath(p, ROOT) for p in VIT_B_UPERNET])
def test_tta_config_is_mmsegs_multi_scale_flip_test(path):
    cfg = Config.fromfile(osp.join(ROOT, path))
    ours, reference = tta_config(cfg, path), upstream_tta('mmseg', cfg)
    assert ours.model.to_dict() == reference.model.to_dict()
    assert ours.test_dataloader.to_dict() == reference.test_dataloader.to_dict()
    assert ours.model.type == 'SegTTAModel' and ours.model.module == cfg.model
    [augment] = [t for t in ours.test_dataloader.dataset.pipeline if t.type == 'TestTimeAug']
    resizes, flips = augment.transforms[:2]
    assert [t.scale_factor for t in resizes] == RATIOS and all(t.keep_ratio for t in resizes)
    assert [(t.type, t.prob, t.direction) for t in flips] == [('RandomFlip', 0.0, 'horizontal'),
                                                             ('RandomFlip', 1.0, 'horizontal')]
    assert cfg.model.type == 'EncoderDecoder'  # the config itself is unchanged


def test_tta_config_is_mmdets_for_a_detector_with_tta_settings():
    cfg = Config.fromfile(osp.join(ROOT, DINO))
    reference = upstream_tta('mmdet', cfg)  # mmdet fills in its default tta_model and flip tta_pipeline
    cfg.tta_model, cfg.tta_pipeline = reference.tta_model, reference.tta_pipeline
    cfg.tta_model.pop('module', None)
    ours = tta_config(cfg, DINO)
    assert ours.model.to_dict() == reference.model.to_dict()
    assert ours.test_dataloader.to_dict() == reference.test_dataloader.to_dict()


def test_tta_config_without_tta_settings_fails_naming_the_config():
    cfg = Config.fromfile(osp.join(ROOT, DINO))
    with pytest.raises(ValueError, match=re.escape(f'--tta: config {DINO} has no tta_model and no tta_pipeline')):
        tta_config(cfg, DINO)
    cfg.tta_model = dict(type='DetTTAModel')
    with pytest.raises(ValueError, match=r'has no tta_pipeline; define'):
        tta_config(cfg, DINO)


# ----------------------------------------------------------------------------- --tta end to end


def run(args, env):
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f'{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
    return proc.stdout + proc.stderr


@pytest.mark.slow
def test_test_tool_and_eval_multires_run_tta_on_the_synthetic_ade_set(tmp_path):
    from mmpe.datasets import generate_segmentation_set
    from mmpe.testing import build_model
    generate_segmentation_set(str(tmp_path / 'seg'), num_train=1, num_val=2, seed=1)
    cfg = Config.fromfile(osp.join(ROOT, DEMO_SEG))
    torch.manual_seed(0)
    checkpoint = tmp_path / 'random.pth'
    torch.save({'state_dict': build_model(cfg.model, 'mmseg').state_dict(), 'meta': {}}, checkpoint)
    env = dict(os.environ, MMPE_SYNTHETIC_SEG=f'{tmp_path}/seg/', PYTHONPATH=ROOT, OMP_NUM_THREADS='2')

    log = run(['tools/test.py', DEMO_SEG, str(checkpoint), '--tta', '--work-dir', str(tmp_path / 'test')], env)
    assert "type='SegTTAModel'" in log and "type='TestTimeAug'" in log  # mmengine logs the config it ran
    tta_miou = float(re.findall(r'mIoU: ([0-9.]+)', log)[-1])
    assert 0 <= tta_miou <= 100

    out = tmp_path / 'multires'
    log = run(['tools/analysis_tools/eval_multires.py', DEMO_SEG, str(checkpoint), '--scales', '1', '--tta',
               '--out', str(out), '--work-dir', str(tmp_path / 'eval')], env)
    assert '] eval_multires: 2/2 evaluations done, elapsed ' in log  # progress off a terminal: plain lines
    rows = read_csv(str(out / 'multires.csv'))
    assert [row['scale'] for row in rows] == [1.0, TTA]
    assert rows[1]['mIoU'] == pytest.approx(tta_miou, abs=0.01)  # tools/test.py logs 2 decimals
    assert (out / 'multires.png').exists()


# ----------------------------------------------------------------------------- --reproduce


def fake_run(run_dir, config: str, metrics_by_scale: dict) -> None:
    """A run directory as eval_multires.py writes it, with the given metrics per scale."""
    os.makedirs(osp.join(run_dir, 'multires'))
    write_table([dict(scale=scale, **metrics) for scale, metrics in metrics_by_scale.items()],
                osp.join(run_dir, 'multires', 'multires'))
    with open(osp.join(run_dir, 'multires', 'run.json'), 'w') as f:
        json.dump(dict(backbone='PEVisionTransformer', encoding='rope_mixed', seed=0, config=config,
                       checkpoint='/ckpt.pth'), f)


def cell(values) -> str:
    if len(values) == 1:
        return f'{values[0]:.2f} (n=1)'
    return f'{statistics.fmean(values):.2f} ± {statistics.stdev(values):.2f} (n={len(values)})'


def collect(monkeypatch, *args):
    monkeypatch.setattr(sys, 'argv', ['collect_results.py', *map(str, args)])
    runpy.run_path(COLLECT, run_name='__main__')


PAGE = """# Title

Prose with a | pipe and `configs/x.py`, untouched.

<!-- mmpe:reproduce metric=coco/bbox_mAP factor=100 -->
| setting | paper AP | config | command | mmpe |
|---|---|---|---|---|
| B | 50.1 | `configs/dino/det_b.py` | `run a \\| b` | old |
| L |  | `configs/dino/det_l.py` | `run` | — |
<!-- mmpe:end -->

More prose.

<!-- mmpe:reproduce metric=mIoU -->
| setting | config | mmpe | mmpe (tta) |
|---|---|---|---|
| seg | `configs/upernet/seg.py` | — | — |
| seg, no tta run | `configs/upernet/seg_single.py` | — | — |
<!-- mmpe:end -->
"""


def test_reproduce_fills_mmpe_cells_from_runs_and_is_idempotent(tmp_path, monkeypatch):
    det_ap = [0.501, 0.512, 0.497]
    for seed, ap in enumerate(det_ap):
        fake_run(tmp_path / f'work/det_b/seed{seed}', '/cluster/configs/dino/det_b.py',
                 {0.5: {'coco/bbox_mAP': ap - 0.1}, 1.0: {'coco/bbox_mAP': ap}})
    seg_ss, seg_ms = [47.25, 48.5], [48.75, 49.0]
    for seed, (ss, ms) in enumerate(zip(seg_ss, seg_ms)):
        # a compare_encodings.py run of the config as it is: WORK_DIR/<config name>/config/seed<k>/config.py
        run_dir = tmp_path / f'work/seg/config/seed{seed}'
        fake_run(run_dir, str(run_dir / 'config.py'),
                 {1.0: {'mIoU': ss, 'aAcc': 80.0}, TTA: {'mIoU': ms, 'aAcc': 81.0}})
    fake_run(tmp_path / 'work/single', '/x/seg_single.py', {1.0: {'mIoU': 40.0, 'aAcc': 70.0}})
    page = tmp_path / 'reproduce.md'
    page.write_text(PAGE)

    collect(monkeypatch, tmp_path / 'work', '--reproduce', page)
    seg, single = '`configs/upernet/seg.py` |', '`configs/upernet/seg_single.py` |'
    expected = (PAGE
                .replace('`run a \\| b` | old |', f'`run a \\| b` | {cell([ap * 100 for ap in det_ap])} |')
                .replace(f'{seg} — | — |', f'{seg} {cell(seg_ss)} | {cell(seg_ms)} |')
                .replace(f'{single} — | — |', f'{single} 40.00 (n=1) | — |'))
    assert page.read_text() == expected
    collect(monkeypatch, tmp_path / 'work', '--reproduce', page)
    assert page.read_text() == expected


def test_reproduce_rejects_bad_tables_unknown_metrics_and_files_without_tables(tmp_path, monkeypatch):
    fake_run(tmp_path / 'work/run', '/x/seg.py', {1.0: {'mIoU': 40.0}})
    page = tmp_path / 'page.md'
    page.write_text(PAGE.replace('metric=mIoU', 'metric=mIoU_typo'))
    with pytest.raises(ValueError, match=r"metric 'mIoU_typo' is not in .*multires.csv \(it has: mIoU\)"):
        collect(monkeypatch, tmp_path / 'work', '--reproduce', page)
    page.write_text(PAGE.replace('| seg | `configs', '| `configs'))
    row = re.escape("the row '| `configs/upernet/seg.py` | — | — |' has 3 cells, its header 4")
    with pytest.raises(ValueError, match=row):
        collect(monkeypatch, tmp_path / 'work', '--reproduce', page)
    page.write_text(PAGE.replace('metric=mIoU', 'mIoU'))
    with pytest.raises(ValueError, match=r'must be KEY=VALUE pairs'):
        collect(monkeypatch, tmp_path / 'work', '--reproduce', page)
    page.write_text('# no tables\n')
    with pytest.raises(ValueError, match='has no table between <!-- mmpe:reproduce metric=NAME -->'):
        collect(monkeypatch, tmp_path / 'work', '--reproduce', page)


def test_reproduce_page_names_existing_configs_and_fills(tmp_path, monkeypatch):
    text = open(osp.join(ROOT, 'docs', 'reproduce.md')).read()
    tables = REPRODUCE_TABLE.findall(text)
    assert len(tables) == 4
    rows = [line for _, table in tables for line in table.splitlines()[2:]]
    configs = [re.search(r'`(configs/[^`]+\.py)`', row)[1] for row in rows]
    assert len(configs) == 18 and all(osp.isfile(osp.join(ROOT, c)) for c in configs)
    assert all(row.count(c) == 2 for row, c in zip(rows, configs))  # the config column and its command
    assert sum('--tta' in row for row in rows) == 9  # every segmentation row, no detection row

    page = tmp_path / 'reproduce.md'
    page.write_text(text)
    name = 'upernet_vit-l16-rope-mixed_mln_8xb2-160k_ade20k-512x512'
    fake_run(tmp_path / 'work' / name / 'config' / 'seed0', str(tmp_path / 'config.py'),
             {1.0: {'mIoU': 50.0}, TTA: {'mIoU': 51.0}})
    collect(monkeypatch, tmp_path / 'work', '--reproduce', page)
    filled = page.read_text()
    [row] = [line for line in filled.splitlines() if f'configs/upernet/{name}.py`' in line]
    assert row.endswith('| 50.00 (n=1) | 51.00 (n=1) |')
    assert filled.replace(row, '') == text.replace(next(r for r in rows if name + '.py' in r), '')


def test_collect_reports_the_tta_row_beside_scale_one(tmp_path, monkeypatch):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'study', 'upernet_vit-tiny_layout.py'))
    single, augmented = [40.0, 41.5], [42.0, 44.0]
    for seed, (ss, ms) in enumerate(zip(single, augmented)):
        run_dir = tmp_path / f'work/seed{seed}'
        fake_run(run_dir, '/x/upernet_vit-tiny_layout.py', {TTA: {'mIoU': ms}, 0.5: {'mIoU': 30.0}, 1.0: {'mIoU': ss}})
        cfg.dump(str(run_dir / 'multires' / 'config.py'))
    collect(monkeypatch, tmp_path / 'work', '--out', tmp_path / 'out', '--flops-size', 32, 32)
    [summary] = read_csv(str(tmp_path / 'out' / 'results.csv'))
    assert summary['mIoU'] == pytest.approx(statistics.fmean(single))
    assert summary['mIoU (tta)'] == pytest.approx(statistics.fmean(augmented))
    assert summary['mIoU (tta) std'] == pytest.approx(statistics.stdev(augmented))
    by_scale = read_csv(str(tmp_path / 'out' / 'results_by_scale.csv'))
    assert [row['scale'] for row in by_scale] == [0.5, 1.0, TTA]
