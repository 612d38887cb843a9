"""Statistics of the encoding study (mmpe.analysis.stats) and their tables (mmpe.analysis.results) through
tools/analysis_tools/collect_results.py: mean, sample std and Student-t 95% intervals over seeds,
paired differences against the reference encoding, checked against scipy.stats and numpy on run
directories written here with known metrics."""
import csv
import json
import math
import os
import os.path as osp
import runpy
import sys

import matplotlib.pyplot as plt
import numpy as np
import pytest
from scipy import stats as scipy_stats

from mmpe.analysis.report import write_table
from mmpe.analysis.results import panels
from mmpe.analysis.stats import Interval, paired_difference, summarize, t_quantile

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
COLLECT = osp.join(ROOT, 'tools', 'analysis_tools', 'collect_results.py')
SCALES = (0.5, 1.0, 2.0)

# the smallest backbones of each type; the tool reads the backbone type and counts its FLOPs
VIT = "default_scope = 'mmseg'\nmodel = dict(backbone=dict(type='PEVisionTransformer', img_size=32, patch_size=16, " \
      "embed_dims=32, depth=1, num_heads=2, pos_embed=dict(type='ape')))\n"
SWIN = "default_scope = 'mmseg'\nmodel = dict(backbone=dict(type='PESwinTransformer', embed_dims=16, " \
       "depths=(1, 1), num_heads=(1, 2), strides=(4, 2), out_indices=(1,), window_size=4))\n"


@pytest.mark.parametrize('dof', [*range(1, 41), 60, 120, 1000])
def test_t_quantile_matches_scipy(dof):
    for confidence in (0.5, 0.9, 0.95, 0.99, 0.999):
        assert t_quantile(confidence, dof) == pytest.approx(scipy_stats.t.ppf((1 + confidence) / 2, dof), rel=1e-10)


@pytest.mark.parametrize('confidence, dof, match', [
    (1.0, 3, r'confidence must be in \(0, 1\), got 1.0'), (0.0, 3, 'confidence must be in'),
    (0.95, 0, 'dof must be a whole number >= 1, got 0'), (0.95, 2.5, 'dof must be a whole number >= 1, got 2.5')])
def test_t_quantile_rejects_bad_input(confidence, dof, match):
    with pytest.raises(ValueError, match=match):
        t_quantile(confidence, dof)


def scipy_summary(values, confidence=0.95):
    """n, mean, sample std and t interval of the finite values, by numpy and scipy."""
    values = np.asarray([v for v in values if not math.isnan(v)])
    mean = values.mean()
    return len(values), mean, values.std(ddof=1), scipy_stats.t.interval(
        confidence, len(values) - 1, loc=mean, scale=scipy_stats.sem(values))


def test_summarize_is_the_t_interval_of_the_finite_values():
    values = [41.2, 39.8, 44.0, math.nan, 40.5, 42.25]
    for confidence in (0.95, 0.8):
        summary = summarize(values, confidence)
        n, mean, std, (low, high) = scipy_summary(values, confidence)
        assert summary.n == n == 5
        assert summary.mean == pytest.approx(mean) and summary.std == pytest.approx(std)
        assert summary.ci == pytest.approx((low, high))
    one = summarize([3.0, math.nan])
    assert (one.n, one.mean) == (1, 3.0) and math.isnan(one.std) and all(map(math.isnan, one.ci))
    assert summarize([]).n == 0 and math.isnan(summarize([]).mean)


def test_paired_difference_is_scipys_paired_t_interval_and_names_unpaired_seeds():
    values = {0: 45.0, 1: 47.5, 2: 44.0, 3: 46.0, 7: 50.0}
    reference = {0: 40.0, 1: 42.0, 2: 40.5, 3: 40.0, 4: 41.0}
    paired = paired_difference(values, reference)
    x, y = np.array([45.0, 47.5, 44.0, 46.0]), np.array([40.0, 42.0, 40.5, 40.0])
    interval = scipy_stats.ttest_rel(x, y).confidence_interval(0.95)
    assert paired.difference.n == 4
    assert paired.difference.mean == pytest.approx((x - y).mean())
    assert paired.difference.std == pytest.approx((x - y).std(ddof=1))
    assert paired.difference.ci == pytest.approx((interval.low, interval.high))
    assert (paired.unpaired, paired.unpaired_reference) == ([7], [4])


def test_interval_sign_is_called_only_when_zero_is_outside():
    assert [Interval(0.1, 2.0).sign(), Interval(-3.0, -0.5).sign(), Interval(-0.1, 2.0).sign(),
            Interval(math.nan, math.nan).sign()] == ['+', '-', '', '']


def test_write_table_writes_an_interval_as_low_and_high(tmp_path):
    markdown = write_table([dict(name='a', ci=Interval(1.5, 2.25)), dict(name='b', ci=Interval(math.nan, math.nan))],
                           str(tmp_path / 't'))
    assert '| a | [1.5, 2.25] |' in markdown and '| b | n/a |' in markdown
    assert read(tmp_path / 't.csv') == [dict(name='a', **{'ci low': '1.5', 'ci high': '2.25'}),
                                        dict(name='b', **{'ci low': '', 'ci high': ''})]


# ----------------------------------------------------------------------------- collect_results.py


def fake_run(root, backbone: str, task, encoding: str, seed: int, metrics: dict, config: str) -> None:
    """A run directory as eval_multires.py writes it: ``metrics`` {name: value at scale 1}, value x scale
    at the other scales (mIoU), the same at every scale (others)."""
    run_dir = osp.join(root, backbone, task or 'none', encoding, f'seed{seed}', 'multires')
    os.makedirs(run_dir)
    rows = [dict(scale=s, **{m: v * s if m == 'mIoU' else v for m, v in metrics.items()}) for s in SCALES]
    write_table(rows, osp.join(run_dir, 'multires'))
    info = dict(backbone=backbone, encoding=encoding, seed=seed, config='/x/config.py', checkpoint='/x/iter_1.pth')
    with open(osp.join(run_dir, 'run.json'), 'w') as f:
        json.dump(dict(info, **({'task': task} if task else {})), f)
    with open(osp.join(run_dir, 'config.py'), 'w') as f:
        f.write(config)


def read(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


def collect(monkeypatch, *args):
    monkeypatch.setattr(sys, 'argv', ['collect_results.py', *map(str, (*args, '--flops-size', 32, 32))])
    runpy.run_path(COLLECT, run_name='__main__')


APE = [40.0, 42.5, 39.0, 41.0, 43.0]  # ViT-tiny / upernet reference, seeds 0-4
STUDY = {  # (backbone, task, encoding): {seed: mIoU at scale 1}
    ('ViT-tiny', 'upernet', 'ape'): dict(enumerate(APE)),
    # clearly better: called '+'
    ('ViT-tiny', 'upernet', 'rope_mixed'): {s: a + 5 + d for s, (a, d) in enumerate(zip(APE, [.1, -.2, .3, 0, -.1]))},
    # no difference: not called; seed 5 has no ape run (dropped)
    ('ViT-tiny', 'upernet', 'loope'): {**{s: a + d for s, (a, d) in enumerate(zip(APE, [1, -1, .5, -.5, .2]))},
                                       5: 60.0},
    # clearly worse: called '-'; ape's seed 4 has no partner (dropped)
    ('ViT-tiny', 'upernet', 'none'): {s: a - 3 + d for s, (a, d) in enumerate(zip(APE, [.2, -.1, .1, 0]))},
    ('ViT-tiny', 'fcn1x1', 'ape'): {0: 30.0, 1: 31.0},
    ('ViT-tiny', 'fcn1x1', 'rope_mixed'): {0: 30.5, 1: 33.0},
    ('Swin-tiny', 'upernet', 'rpb'): {0: 50.0, 1: 52.0, 2: 51.0},
    ('Swin-tiny', 'upernet', 'rope_axial'): {0: 51.0, 1: 52.5, 2: 52.5},
}


def aacc(key, seed) -> float:
    """A second metric, NaN in one run: left out of that encoding's n and of its pairs."""
    if key[2] == 'rope_mixed' and seed == 2:
        return math.nan
    return 80.0 + seed * len(key[2]) / 4 + (seed % 2) * len(key[0])


@pytest.fixture
def study(tmp_path):
    for key, values in STUDY.items():
        for seed, miou in values.items():
            fake_run(tmp_path / 'work', *key, seed, dict(mIoU=miou, aAcc=aacc(key, seed)),
                     SWIN if key[0] == 'Swin-tiny' else VIT)
    return tmp_path


def values_of(key, metric, scale=1.0):
    return {s: v * scale if metric == 'mIoU' else aacc(key, s) for s, v in STUDY[key].items()}


def expected_difference(key, reference, metric, scale=1.0):
    """(pairs, mean, std, (low, high)) of key - reference over their common seeds with finite values."""
    values, ref = values_of(key, metric, scale), values_of(reference, metric, scale)
    pairs = [(values[s], ref[s]) for s in values if s in ref and not math.isnan(values[s] - ref[s])]
    x, y = np.array(pairs).T
    interval = scipy_stats.ttest_rel(x, y).confidence_interval(0.95)
    return len(pairs), (x - y).mean(), (x - y).std(ddof=1), (interval.low, interval.high)


def test_collect_reports_intervals_and_paired_differences(study, monkeypatch, capsys):
    out = study / 'out'
    collect(monkeypatch, study / 'work', '--out', out)

    summary = read(out / 'results.csv')
    assert [(r['backbone'], r['task'], r['encoding']) for r in summary] == [
        ('Swin-tiny', 'upernet', 'rope_axial'), ('Swin-tiny', 'upernet', 'rpb'),  # encodings in preset order
        ('ViT-tiny', 'fcn1x1', 'ape'), ('ViT-tiny', 'fcn1x1', 'rope_mixed'),
        ('ViT-tiny', 'upernet', 'ape'), ('ViT-tiny', 'upernet', 'rope_mixed'), ('ViT-tiny', 'upernet', 'loope'),
        ('ViT-tiny', 'upernet', 'none')]
    for row in summary:
        key = (row['backbone'], row['task'], row['encoding'])
        assert int(row['seeds']) == len(STUDY[key])
        for metric in ('mIoU', 'aAcc'):
            n, mean, std, (low, high) = scipy_summary(values_of(key, metric).values())
            assert float(row[metric]) == pytest.approx(mean) and float(row[f'{metric} std']) == pytest.approx(std)
            assert (float(row[f'{metric} 95% CI low']), float(row[f'{metric} 95% CI high'])) == \
                pytest.approx((low, high))
    by_scale = read(out / 'results_by_scale.csv')
    assert len(by_scale) == len(STUDY) * len(SCALES)
    for row in by_scale:
        key, scale = (row['backbone'], row['task'], row['encoding']), float(row['scale'])
        _, mean, _, interval = scipy_summary(values_of(key, 'mIoU', scale).values())
        assert float(row['mIoU']) == pytest.approx(mean)
        assert (float(row['mIoU 95% CI low']), float(row['mIoU 95% CI high'])) == pytest.approx(interval)
    _, _, _, (low, high) = scipy_summary(APE)
    assert f'[{low:.4g}, {high:.4g}]' in (out / 'results.md').read_text()

    paired = read(out / 'paired_differences.csv')
    ape, rpb = ('ViT-tiny', 'upernet', 'ape'), ('Swin-tiny', 'upernet', 'rpb')
    assert [(r['backbone'], r['task'], r['metric'], r['encoding'], r['reference']) for r in paired] == [
        ('Swin-tiny', 'upernet', m, 'rope_axial', 'rpb') for m in ('mIoU', 'aAcc')] + [
        ('ViT-tiny', 'fcn1x1', m, 'rope_mixed', 'ape') for m in ('mIoU', 'aAcc')] + [
        ('ViT-tiny', 'upernet', m, e, 'ape') for m in ('mIoU', 'aAcc') for e in ('rope_mixed', 'loope', 'none')]
    for row in paired:
        key = (row['backbone'], row['task'], row['encoding'])
        n, mean, std, (low, high) = expected_difference(key, rpb if key[0] == 'Swin-tiny' else (*key[:2], 'ape'),
                                                        row['metric'])
        assert int(row['pairs']) == n
        assert float(row['difference']) == pytest.approx(mean)
        assert float(row['difference std']) == pytest.approx(std)
        assert (float(row['difference 95% CI low']), float(row['difference 95% CI high'])) == \
            pytest.approx((low, high))
        assert row['called'] == ('+' if low > 0 else '-' if high < 0 else '')
    miou = {r['encoding']: r for r in paired if (r['backbone'], r['task'], r['metric']) == (*ape[:2], 'mIoU')}
    assert {e: r['called'] for e, r in miou.items()} == {'rope_mixed': '+', 'loope': '', 'none': '-'}
    assert {e: r['note'] for e, r in miou.items()} == {'rope_mixed': '', 'loope': 'unpaired seeds dropped: loope 5',
                                                       'none': 'unpaired seeds dropped: ape 4'}
    assert [int(r['pairs']) for r in paired if r['encoding'] == 'rope_mixed' and r['task'] == 'upernet'] == [5, 4]

    paired_by_scale = read(out / 'paired_differences_by_scale.csv')
    assert len(paired_by_scale) == len(paired) * len(SCALES)
    for row in paired_by_scale:
        key = (row['backbone'], row['task'], row['encoding'])
        _, mean, _, interval = expected_difference(key, rpb if key[0] == 'Swin-tiny' else (*key[:2], 'ape'),
                                                   row['metric'], float(row['scale']))
        assert float(row['difference']) == pytest.approx(mean)
        assert (float(row['difference 95% CI low']), float(row['difference 95% CI high'])) == \
            pytest.approx(interval)
    headline = read(out / 'headline.csv')  # mIoU (the first default headline metric) for every cell
    assert [(r['backbone'], r['task'], r['encoding'], r['metric']) for r in headline] == \
        [(r['backbone'], r['task'], r['encoding'], 'mIoU') for r in summary]
    for row in headline:
        key = (row['backbone'], row['task'], row['encoding'])
        for scale in SCALES:
            n, mean, std, _ = scipy_summary(values_of(key, 'mIoU', scale).values())
            assert float(row[f'{scale:g}x']) == pytest.approx(mean) and int(row['seeds']) == n
            assert (float(row[f'{scale:g}x std']) == pytest.approx(std)) if n > 1 else row[f'{scale:g}x std'] == ''
    headline_paired = read(out / 'headline_paired.csv')
    assert [(r['backbone'], r['task'], r['encoding']) for r in headline_paired] == \
        [(r['backbone'], r['task'], r['encoding']) for r in paired if r['metric'] == 'mIoU']
    for row in headline_paired:
        key = (row['backbone'], row['task'], row['encoding'])
        for scale in SCALES:
            n, mean, _, (low, high) = expected_difference(key, rpb if key[0] == 'Swin-tiny' else (*key[:2], 'ape'),
                                                          'mIoU', scale)
            called = ' +' if low > 0 else ' -' if high < 0 else ''
            assert row[f'{scale:g}x'] == f'{mean:.4g} [{low:.4g}, {high:.4g}]{called}' and int(row['pairs']) == n
    assert '| ViT-tiny | upernet | rope_mixed | ape | mIoU | 5 |' in (out / 'headline_paired.md').read_text()
    for name in ('mIoU_vs_scale', 'mIoU_vs_encoding', 'paired_mIoU', 'paired_aAcc'):
        assert (out / f'{name}.png').stat().st_size > 0
    # 3 (backbone, task) cells: panels of 5.5 x 4 inches at 100 dpi, three to a row
    assert plt.imread(out / 'mIoU_vs_scale.png').shape[:2] == (400, 3 * 550)
    fig, axes = panels(plt, 4, 2.0, 1.5)  # a fourth cell starts a second row
    assert len(axes) == 4 and tuple(fig.get_size_inches()) == (6.0, 3.0)
    assert [ax.get_visible() for ax in fig.axes] == [True] * 4 + [False] * 2
    plt.close(fig)
    assert 'Paired differences to the reference at test scale 1' in capsys.readouterr().out


def test_reference_option_per_backbone_and_for_all(study, monkeypatch):
    out = study / 'out'
    collect(monkeypatch, study / 'work', '--out', out, '--reference', 'ViT-tiny=rope_mixed', '--metrics', 'mIoU')
    paired = read(out / 'paired_differences.csv')
    assert {(r['backbone'], r['reference']) for r in paired} == {('ViT-tiny', 'rope_mixed'), ('Swin-tiny', 'rpb')}
    [row] = [r for r in paired if (r['task'], r['encoding']) == ('upernet', 'ape')]
    n, mean, _, _ = expected_difference(('ViT-tiny', 'upernet', 'ape'), ('ViT-tiny', 'upernet', 'rope_mixed'), 'mIoU')
    assert (int(row['pairs']), float(row['difference']), row['called']) == (n, pytest.approx(mean), '-')

    with pytest.raises(ValueError, match=r"--reference 'none': backbone 'Swin-tiny' has no runs of encoding 'none' "
                                         r"\(it has: \['rope_axial', 'rpb'\]\)"):
        collect(monkeypatch, study / 'work', '--out', out, '--reference', 'none')
    with pytest.raises(ValueError, match=r"--reference 'ViT=ape': no runs of backbone 'ViT' \(backbones: "
                                         r"\['Swin-tiny', 'ViT-tiny'\]\)"):
        collect(monkeypatch, study / 'work', '--out', out, '--reference', 'ViT=ape')


def test_without_a_reference_run_there_are_no_paired_tables(tmp_path, monkeypatch, capsys):
    for seed in (0, 1):  # no task label, no ape run
        fake_run(tmp_path / 'work', 'ViT-tiny', None, 'rope_mixed', seed, dict(mIoU=40.0 + seed), VIT)
        fake_run(tmp_path / 'work', 'ViT-tiny', None, 'none', seed, dict(mIoU=38.0 - seed), VIT)
    collect(monkeypatch, tmp_path / 'work', '--out', tmp_path / 'out')
    assert "no paired differences for ViT-tiny: its reference encoding 'ape' was not run (give --reference " \
           "ViT-tiny=ENCODING)" in capsys.readouterr().out
    assert not (tmp_path / 'out' / 'paired_differences.csv').exists()
    summary = read(tmp_path / 'out' / 'results.csv')
    assert 'task' not in summary[0] and [r['encoding'] for r in summary] == ['rope_mixed', 'none']

    collect(monkeypatch, tmp_path / 'work', '--out', tmp_path / 'out', '--reference', 'none')
    [row] = read(tmp_path / 'out' / 'paired_differences.csv')
    assert (row['encoding'], row['reference'], row['pairs']) == ('rope_mixed', 'none', '2')
    assert float(row['difference']) == pytest.approx(np.mean([40.0 - 38.0, 41.0 - 37.0]))


def test_two_runs_of_one_seed_cannot_be_paired(tmp_path, monkeypatch):
    fake_run(tmp_path / 'work' / 'a', 'ViT-tiny', 'upernet', 'ape', 0, dict(mIoU=40.0), VIT)
    fake_run(tmp_path / 'work' / 'b', 'ViT-tiny', 'upernet', 'ape', 0, dict(mIoU=41.0), VIT)
    fake_run(tmp_path / 'work' / 'a', 'ViT-tiny', 'upernet', 'none', 0, dict(mIoU=39.0), VIT)
    with pytest.raises(ValueError, match=r'/a/ViT-tiny/upernet/ape/seed0 and .*/b/ViT-tiny/upernet/ape/seed0 are both '
                                         r'seed 0 of ViT-tiny / ape: paired differences need one run per seed'):
        collect(monkeypatch, tmp_path / 'work', '--out', tmp_path / 'out')


def test_headline_takes_each_cells_first_metric_and_names_a_cell_without_one(tmp_path, monkeypatch, capsys):
    for seed, (box, miou) in enumerate([(0.50, 40.0), (0.55, 43.0), (0.61, 41.5)]):
        fake_run(tmp_path / 'work', 'ViT-tiny', 'dino', 'ape', seed, {'coco/bbox_mAP': box}, VIT)
        fake_run(tmp_path / 'work', 'ViT-tiny', 'dino', 'none', seed, {'coco/bbox_mAP': box - 0.1 * seed}, VIT)
        fake_run(tmp_path / 'work', 'ViT-tiny', 'upernet', 'ape', seed, dict(mIoU=miou), VIT)
    collect(monkeypatch, tmp_path / 'work', '--out', tmp_path / 'out')
    headline = read(tmp_path / 'out' / 'headline.csv')
    assert [(r['task'], r['encoding'], r['metric']) for r in headline] == [
        ('dino', 'ape', 'coco/bbox_mAP'), ('dino', 'none', 'coco/bbox_mAP'), ('upernet', 'ape', 'mIoU')]
    assert float(headline[0]['1x']) == pytest.approx(np.mean([0.50, 0.55, 0.61]))
    assert float(headline[2]['2x']) == pytest.approx(np.mean([80.0, 86.0, 83.0]))
    [paired] = read(tmp_path / 'out' / 'headline_paired.csv')
    low, high = scipy_stats.ttest_rel([0.5, 0.45, 0.41], [0.5, 0.55, 0.61]).confidence_interval(0.95)
    assert (paired['task'], paired['encoding'], paired['pairs']) == ('dino', 'none', '3')
    assert paired['1x'] == f'{-0.1:.4g} [{low:.4g}, {high:.4g}]'  # the interval holds 0: not called

    for metric in ('mIoU', 'coco_bbox_mAP'):  # one panel: the cell that has the metric
        assert plt.imread(tmp_path / 'out' / f'{metric}_vs_scale.png').shape[:2] == (400, 550)

    collect(monkeypatch, tmp_path / 'work', '--out', tmp_path / 'out2', '--headline', 'mIoU')
    assert 'no headline for ViT-tiny / dino: none of --headline [\'mIoU\'] was evaluated' in capsys.readouterr().out
    assert [r['task'] for r in read(tmp_path / 'out2' / 'headline.csv')] == ['upernet']
