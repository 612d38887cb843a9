"""The encoding study: the synthetic tasks, the FLOPs counter against a hand count, the study's
helpers (encodings by name, test-time rescaling, run outputs, tables, ClassIoUMetric) against hand
values, and compare_encodings.py --quick (training, eval_multires.py, collect_results.py) end to end
for an UperNet and a DINO config."""
import csv
import json
import math
import os
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

from mmpe.analysis.report import fmt, pyplot, slug, write_table
from mmpe.analysis.study import (
    clean_metrics,
    encoding_name,
    find_runs,
    parse_encoding,
    read_csv,
    run_info,
    scale_test_cfg,
    train_speed,
)
from mmpe.datasets import (
    LAYOUT_DET_CLASSES,
    generate_detection_set,
    generate_segmentation_set,
    render_layout_scene,
    render_scene,
)
from mmpe.pos_embed import ENCODING_PRESETS

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SEG = 'configs/study/upernet_vit-tiny_layout.py'
DET = 'configs/study/dino_swin-tiny_layout.py'


# ----------------------------------------------------------------------------- synthetic task

def test_layout_labels_follow_their_definition(tmp_path):
    """Recompute every label from the written annotations: a square's class is the image half of its
    box centre, of the two disks the one with the smaller centre x is 'disk-left'; the segmentation
    map (same seed: same scenes) fills a square's box and a disk's centre but not its corners."""
    height, width = 96, 120
    generate_detection_set(str(tmp_path / 'det'), num_train=12, num_val=2, height=height, width=width, task='layout')
    generate_segmentation_set(str(tmp_path / 'seg'), num_train=12, num_val=2, height=height, width=width,
                              task='layout')
    with open(tmp_path / 'det/annotations/instances_train.json') as f:
        coco = json.load(f)
    names = {c['id']: c['name'] for c in coco['categories']}
    assert tuple(names[i + 1] for i in range(len(names))) == LAYOUT_DET_CLASSES
    for image in coco['images']:
        anns = [a for a in coco['annotations'] if a['image_id'] == image['id']]
        disks = sorted((a for a in anns if names[a['category_id']].startswith('disk')),
                       key=lambda a: a['bbox'][0] + a['bbox'][2] / 2)
        squares = [a for a in anns if names[a['category_id']].startswith('square')]
        assert len(disks) == 2 and 1 <= len(squares) <= 2
        assert [names[a['category_id']] for a in disks] == ['disk-left', 'disk-right']
        label = np.array(Image.open(tmp_path / 'seg/annotations/training' / image['file_name']))
        for a in squares:
            x, y, w, h = a['bbox']
            assert names[a['category_id']] == ('square-right' if x + w / 2 >= width / 2 else 'square-left')
            assert (label[y:y + h, x:x + w] == a['category_id'] + 1).all()  # 1 = background, class k -> k + 2
        for a in disks:
            x, y, w, h = a['bbox']
            assert label[y + h // 2, x + w // 2] == a['category_id'] + 1
            assert label[y, x] == 1 and label[y + h - 1, x + w - 1] == 1


def test_layout_objects_scale_with_the_image():
    small = render_layout_scene(np.random.default_rng(7), 96, 120)
    large = render_layout_scene(np.random.default_rng(7), 192, 240)
    assert [c for c, _ in small[1]] == [c for c, _ in large[1]]
    for (_, a), (_, b) in zip(small[1], large[1]):
        assert all(abs(2 * u - v) <= 2 for u, v in zip(a, b)), (a, b)
        assert 0.2 * 96 - 1 <= a[2] <= 0.3 * 96 + 1
    # the class maps agree after downsampling the large one (up to the objects' borders)
    assert (large[2][::2, ::2] == small[2]).mean() > 0.97


def test_halves_labels_follow_their_definition():
    """render_scene ('halves', the CPU demos), recomputed from its objects: 1 to max_objects shapes of
    side max(8, min(H, W) // 10) = 9 to max(12, min(H, W) // 4) = 24 inside the image, at least 2
    pixels apart; class 2 * shape + (box centre in the bottom half); the class map (0 background,
    class k -> k + 1) fills a square's box and a disk's centre but not its corners, and nothing else."""
    height, width = 96, 120
    counts, classes = set(), set()
    for seed in range(20):
        image, objects, label = render_scene(np.random.default_rng(seed), height, width, max_objects=3)
        assert image.shape == (height, width, 3) and image.dtype == np.uint8 and label.shape == (height, width)
        assert 1 <= len(objects) <= 3
        counts.add(len(objects))
        boxes = np.zeros((height, width), bool)
        for i, (cls, (x, y, w, h)) in enumerate(objects):
            classes.add(cls)
            assert w == h and 9 <= w <= 24 and 0 <= x <= width - w and 0 <= y <= height - h
            shape, bottom = divmod(cls, 2)  # DET_CLASSES: square-top, square-bottom, disk-top, disk-bottom
            assert bottom == int(y + h / 2 >= height / 2)
            if shape == 0:
                assert (label[y:y + h, x:x + w] == cls + 1).all()
            else:
                assert label[y + h // 2, x + w // 2] == cls + 1
                assert label[y, x] == 0 and label[y + h - 1, x + w - 1] == 0
            assert image[y + h // 2, x + w // 2].min() >= 120  # bright on the dark noise
            for _, (x2, y2, w2, h2) in objects[:i]:
                assert x + w + 2 <= x2 or x2 + w2 + 2 <= x or y + h + 2 <= y2 or y2 + h2 + 2 <= y
            boxes[y:y + h, x:x + w] = True
        assert (label[~boxes] == 0).all()
        again = render_scene(np.random.default_rng(seed), height, width, max_objects=3)
        assert np.array_equal(again[0], image) and again[1] == objects
    assert counts == {1, 2, 3} and classes == {0, 1, 2, 3}


# ----------------------------------------------------------------------------- FLOPs

@pytest.mark.parametrize('encoding', [dict(type='ape'), dict(type='rope_axial'), dict(type='rope_mixed')])
def test_flops_match_hand_count_of_tiny_vit(encoding):
    from mmpe.analysis.complexity import ROPE_ANGLE_FLOPS, ROPE_FLOPS_PER_ELEMENT, model_complexity
    from mmpe.models import PEVisionTransformer
    h, w, p, c, heads, depth, hidden = 32, 48, 8, 32, 2, 2, 64
    model = PEVisionTransformer(img_size=(h, w), patch_size=p, embed_dims=c, depth=depth, num_heads=heads,
                                mlp_ratio=hidden / c, pos_embed=encoding, out_indices=(depth - 1,))
    n = (h // p) * (w // p)
    t = n + 1  # CLS token
    patch = n * c * 3 * p * p
    block = (t * c * 5  # norm1 (mmengine: 5 per element)
             + t * c * 3 * c  # qkv
             + heads * t * t * (c // heads) * 2  # q k^T and attention x v
             + t * c * c  # proj
             + t * c * 5  # norm2
             + 2 * t * c * hidden)  # MLP
    if encoding['type'].startswith('rope'):
        block += ROPE_FLOPS_PER_ELEMENT * 2 * t * c  # rotate q and k, all heads
    if encoding['type'] == 'rope_mixed':
        block += ROPE_ANGLE_FLOPS * heads * t * (c // heads // 2)  # angles fx x + fy y: per head, token, pair
    expected = patch + depth * block + t * c * 5  # final norm
    result = model_complexity(model, (h, w))
    assert result['flops'] == expected
    assert result['params'] == sum(p.numel() for p in model.parameters())


def test_build_backbone_of_a_config_skips_its_pretrained_weights():
    """The backbone of a full config, built through its default_scope's registry and initialised
    without reading the checkpoint its init_cfg names (an absent file here: reading it would fail);
    the config itself keeps its init_cfg. Another scope is an error naming default_scope."""
    from mmpe.analysis.complexity import build_backbone
    from mmpe.models import PEVisionTransformer
    from mmpe.pos_embed import RoPEMixed
    backbone = dict(type='PEVisionTransformer', img_size=32, patch_size=8, embed_dims=16, depth=3, num_heads=2,
                    pos_embed=dict(type='rope_mixed'),
                    init_cfg=dict(type='Pretrained', checkpoint='/nonexistent/vit.pth'))
    for scope in ('mmdet', 'mmseg'):
        cfg = Config(dict(default_scope=scope, model=dict(type='EncoderDecoder', backbone=backbone)))
        model = build_backbone(cfg)
        assert type(model) is PEVisionTransformer and model.is_init
        assert len(model.blocks) == 3 and isinstance(model.blocks[0].attn.pos_embed, RoPEMixed)
        assert cfg.model.backbone.init_cfg.checkpoint == '/nonexistent/vit.pth'
    cfg = Config(dict(default_scope='mmpretrain', model=dict(backbone=backbone)))
    with pytest.raises(ValueError, match="default_scope must be 'mmdet' or 'mmseg', got 'mmpretrain'"):
        build_backbone(cfg)


# ----------------------------------------------------------------------------- encodings and run configs

def test_parse_encoding_takes_presets_and_dict_literals():
    name, pos_embed = parse_encoding('rope_mixed+ape')
    assert (name, pos_embed) == ('rope_mixed+ape', dict(type='rope_mixed', with_ape=True))
    pos_embed['theta'] = 1.0  # a copy: the preset is unchanged
    assert ENCODING_PRESETS['rope_mixed+ape'] == dict(type='rope_mixed', with_ape=True)
    assert parse_encoding('interp = {"type": "rope_mixed", "coords": "interpolate"}') == \
        ('interp', dict(type='rope_mixed', coords='interpolate'))  # JSON
    assert parse_encoding("ax={'type': 'rope_axial', 'theta': 10.0}") == ('ax', dict(type='rope_axial', theta=10.0))
    with pytest.raises(ValueError, match=r"encoding 'rope' is not a preset \(accepted: ape, sincos, rope_axial, "
                                         r"rope_mixed, .*, none\); give NAME=DICT"):
        parse_encoding('rope')
    for bad in ("mine={'theta': 10.0}", 'mine=rope_mixed', "={'type': 'ape'}", 'mine=[1, 2]'):
        with pytest.raises(ValueError, match=re.escape(f"encoding {bad!r} must be a preset name or NAME=DICT with a "
                                                       "pos_embed dict that has a 'type' key")):
            parse_encoding(bad)


def test_encoding_name_is_the_preset_or_the_dict_written_out():
    assert encoding_name(dict(type='rope_axial', with_ape=True)) == 'rope_axial+ape'
    assert encoding_name(dict(type='rope_mixed', theta=100.0, coords='interpolate')) == \
        "rope_mixed(coords='interpolate', theta=100.0)"
    assert encoding_name(dict(type='rope_mixed', with_ape=False)) == 'rope_mixed(with_ape=False)'
    assert encoding_name(dict(type='mine')) == 'mine'
    assert all(encoding_name(parse_encoding(name)[1]) == name for name in ENCODING_PRESETS)


def test_run_info_reads_the_study_dict_else_the_model():
    model = dict(backbone=dict(type='PESwinTransformer', pos_embed=dict(type='rope_mixed', theta=100.0)))
    cfg = Config(dict(model=model, randomness=dict(seed=3)))
    assert run_info(cfg) == dict(backbone='PESwinTransformer', encoding='rope_mixed(theta=100.0)', seed=3)
    cfg.study = dict(backbone='Swin-tiny')  # as the configs/study/ files set it
    assert run_info(cfg) == dict(backbone='Swin-tiny', encoding='rope_mixed(theta=100.0)', seed=3)
    cfg.study = dict(backbone='Swin-tiny', encoding='mine', seed=7)  # as compare_encodings.py sets it
    assert run_info(cfg) == dict(backbone='Swin-tiny', encoding='mine', seed=7)
    # no pos_embed: the backbone's own default; no randomness: no seed
    assert run_info(Config(dict(model=dict(backbone=dict(type='SwinTransformer'))))) == \
        dict(backbone='SwinTransformer', encoding='default', seed=None)


LOAD, ANNOTATIONS, PACK = dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'), dict(type='PackSegInputs')


def _test_cfg(pipeline, test_cfg=None) -> Config:
    return Config(dict(model=dict(test_cfg=test_cfg or dict(mode='whole')),
                       test_dataloader=dict(dataset=dict(type='BaseSegDataset', pipeline=pipeline))))


def test_scale_test_cfg_rescales_the_test_resize_and_slide_window():
    cfg = _test_cfg([LOAD, dict(type='Resize', scale=(2048, 512), keep_ratio=True), ANNOTATIONS, PACK],
                    dict(mode='slide', crop_size=(512, 512), stride=(342, 340)))
    half = scale_test_cfg(cfg, 0.5)
    assert half.test_dataloader.dataset.pipeline == \
        [LOAD, dict(type='Resize', scale=(1024, 256), keep_ratio=True), ANNOTATIONS, PACK]
    assert half.model.test_cfg == dict(mode='slide', crop_size=(256, 256), stride=(171, 170))
    assert scale_test_cfg(cfg, 1.5).test_dataloader.dataset.pipeline[1].scale == (3072, 768)
    # the given config is unchanged; scale 1 is a copy of it
    assert cfg.test_dataloader.dataset.pipeline[1].scale == (2048, 512) and cfg.model.test_cfg.stride == (342, 340)
    same = scale_test_cfg(cfg, 1)
    assert same is not cfg and same.to_dict() == cfg.to_dict()
    # a scale_factor (scoped type name) is multiplied
    cfg = _test_cfg([LOAD, dict(type='mmdet.Resize', scale_factor=0.75, keep_ratio=True), PACK])
    assert scale_test_cfg(cfg, 2).test_dataloader.dataset.pipeline[1].scale_factor == 1.5
    # no resize: one after loading the image, before the annotations (metrics at the original size)
    assert scale_test_cfg(_test_cfg([LOAD, ANNOTATIONS, PACK]), 2).test_dataloader.dataset.pipeline == \
        [LOAD, dict(type='Resize', scale_factor=2, keep_ratio=True), ANNOTATIONS, PACK]


@pytest.mark.parametrize('pipeline, scale, match', [
    ([LOAD, PACK], 0, 'scale must be positive, got 0'),
    ([LOAD, dict(type='TestTimeAug', transforms=[]), PACK], 2, 'TestTimeAug are not supported'),
    ([LOAD, dict(type='Resize', scale=(64, 64)), dict(type='RandomResize', scale=(64, 64)), PACK], 2,
     re.escape("test pipeline has 2 resize transforms ['Resize', 'RandomResize']; expected at most one")),
    ([LOAD, dict(type='Resize', keep_ratio=True), PACK], 2, 'has neither scale nor scale_factor'),
    ([dict(type='LoadAnnotations'), PACK], 2, 'no resize and no LoadImage'),
    (None, 2, 'test_dataloader.dataset has no pipeline to rescale'),
])
def test_scale_test_cfg_rejects_what_it_cannot_rescale(pipeline, scale, match):
    cfg = _test_cfg(pipeline)
    if pipeline is None:
        cfg.test_dataloader.dataset = dict(type='RepeatDataset', dataset=dict(pipeline=[LOAD, PACK]))
    with pytest.raises(ValueError, match=match):
        scale_test_cfg(cfg, scale)


def test_clean_metrics_keeps_numbers_as_floats():
    metrics = {'coco/bbox_mAP': 0.412, 'coco/bbox_mAP_s': -1.0, 'coco/bbox_mAP_l': np.float64(-1),
               'mIoU': np.float32(61.5), 'aAcc': -1, 'IoU.disk-left': 12, 'coco/bbox_mAP_copypaste': '0.412 -1.000',
               'flag': True}
    out = clean_metrics(metrics)
    assert list(out) == ['coco/bbox_mAP', 'coco/bbox_mAP_s', 'coco/bbox_mAP_l', 'mIoU', 'aAcc', 'IoU.disk-left']
    assert all(type(v) is float for v in out.values())
    assert math.isnan(out['coco/bbox_mAP_s']) and math.isnan(out['coco/bbox_mAP_l'])  # CocoMetric's "no object"
    assert (out['coco/bbox_mAP'], out['mIoU'], out['aAcc'], out['IoU.disk-left']) == (0.412, 61.5, -1.0, 12.0)


# ----------------------------------------------------------------------------- run outputs and tables

def test_find_runs_finds_evaluated_run_directories(tmp_path):
    for csv_path in ('a/ape/seed0/multires/multires.csv', 'a/ape/seed1/multires/multires.csv',
                     'b/deep/er/run/multires/multires.csv',
                     'a/ape/seed0/multires/scale_2/multires/multires.csv'):  # inside a run's outputs: not a run
        (tmp_path / csv_path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / csv_path).write_text('scale\n1\n')
    (tmp_path / 'a/unevaluated/multires').mkdir(parents=True)  # no multires.csv
    runs = find_runs([str(tmp_path / 'a'), str(tmp_path / 'b'), str(tmp_path / 'a/ape')])
    assert runs == [str(tmp_path / r) for r in ('a/ape/seed0', 'a/ape/seed1', 'b/deep/er/run')]
    with pytest.raises(ValueError, match=f"work dir '{tmp_path}/nowhere' does not exist"):
        find_runs([str(tmp_path / 'a'), str(tmp_path / 'nowhere')])


def test_train_speed_is_the_median_logged_time_after_warm_up(tmp_path):
    def scalars(run, stamp, logs):
        folder = tmp_path / run / stamp / 'vis_data'
        folder.mkdir(parents=True)
        (folder / 'scalars.json').write_text(''.join(json.dumps(log) + '\n' for log in logs))

    # a training (its first window, 9 s, is warm-up; a validation line has no loss) and its resumption
    scalars('run', '20250101_000000', [dict(loss=1.0, time=9.0, iter=10, memory=100),
                                       dict(loss=0.9, time=0.5, iter=20, memory=300), dict(mIoU=12.0, step=20),
                                       dict(loss=0.8, time=0.7, iter=30, memory=200),
                                       dict(loss=0.7, time=0.4, iter=40, memory=250)])
    scalars('run', '20250102_000000', [dict(loss=0.6, time=5.0, iter=50), dict(loss=0.5, time=0.6, iter=60),
                                       dict(loss=0.4, time=0.45, iter=70)])
    (tmp_path / 'run' / 'multires').mkdir()
    # median of 0.5, 0.7, 0.4, 0.6, 0.45; the peak memory of every window
    assert train_speed(str(tmp_path / 'run')) == dict(s_per_iter=0.5, memory_mb=300)
    scalars('cpu', '20250101_000000', [dict(loss=1.0, time=2.0, iter=10)])  # one window: kept; no memory on CPU
    speed = train_speed(str(tmp_path / 'cpu'))
    assert speed['s_per_iter'] == 2.0 and math.isnan(speed['memory_mb'])
    (tmp_path / 'empty').mkdir()
    assert all(math.isnan(v) for v in train_speed(str(tmp_path / 'empty')).values())


def test_fmt_table_cells():
    assert (fmt(1234.5678), fmt(0.000123456), fmt(2.0), fmt(float('nan'))) == ('1235', '0.0001235', '2', 'n/a')
    assert (fmt(7), fmt('ape')) == ('7', 'ape')
    assert (fmt((61.234, 0.5)), fmt((61.234, float('nan')))) == ('61.23 ± 0.5', '61.23')  # (mean, std)


def test_write_table_writes_markdown_and_csv_that_read_csv_reads_back(tmp_path):
    nan = float('nan')
    rows = [dict(encoding='ape', mIoU=(61.234, 0.5), params=5), dict(encoding='none', mIoU=(40.0, nan), params=nan)]
    prefix = tmp_path / 'out' / 'results'
    markdown = write_table(rows, str(prefix), 'Results')
    assert markdown == ('### Results\n\n| encoding | mIoU | params |\n|---|---|---|\n| ape | 61.23 ± 0.5 | 5 |\n'
                        '| none | 40 | n/a |\n')
    assert (tmp_path / 'out' / 'results.md').read_text() == markdown
    with open(tmp_path / 'out' / 'results.csv', newline='') as f:
        assert list(csv.reader(f)) == [['encoding', 'mIoU', 'mIoU std', 'params'], ['ape', '61.234', '0.5', '5'],
                                       ['none', '40.0', '', '']]
    back = read_csv(str(tmp_path / 'out' / 'results.csv'))
    assert back[0] == {'encoding': 'ape', 'mIoU': 61.234, 'mIoU std': 0.5, 'params': 5.0}
    assert back[1]['encoding'] == 'none' and back[1]['mIoU'] == 40.0
    assert math.isnan(back[1]['mIoU std']) and math.isnan(back[1]['params'])
    # chosen columns in their order, absent cells empty
    assert write_table(rows, str(tmp_path / 'sub'), columns=['params', 'encoding', 'seed']) == \
        '| params | encoding | seed |\n|---|---|---|\n| 5 | ape |  |\n| n/a | none |  |\n'
    with pytest.raises(ValueError, match='write_table needs at least one row'):
        write_table([], str(tmp_path / 'empty'))


def test_pyplot_draws_to_files_and_slug_makes_file_names(tmp_path):
    plt = pyplot()
    assert plt.get_backend().lower() == 'agg'
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    fig.savefig(tmp_path / 'plot.png')
    plt.close(fig)
    assert (tmp_path / 'plot.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert slug('coco/bbox_mAP') == 'coco_bbox_mAP' and slug('IoU.disk-left') == 'IoU.disk-left'
    assert slug(' rope_mixed+ape (seed 0) ') == 'rope_mixed+ape_seed_0'


# ----------------------------------------------------------------------------- metric

def test_class_iou_metric_adds_class_and_group_iou():
    """IoU.<class> and IoU.<group> (the mean over the group's classes; a class in neither prediction nor
    ground truth is skipped) against a hand count over two images; ignored pixels (255) do not count.
    background: 3 / 4, a: 4 / 6, b: 5 / 6, c: 0 / 0; aAcc 12 / 14."""
    from mmengine.registry import DefaultScope
    from mmseg.registry import METRICS

    from mmpe.evaluation import ClassIoUMetric
    gt = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 2, 2], [2, 2, 255, 255]])
    pred = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1], [2, 2, 1, 2], [2, 2, 0, 3]])
    samples = [dict(pred_sem_seg=dict(data=pred[None, rows]), gt_sem_seg=dict(data=gt[None, rows]))
               for rows in (slice(0, 2), slice(2, 4))]

    def evaluate(class_groups):
        with DefaultScope.overwrite_default_scope('mmseg'):  # as in a config with default_scope='mmseg'
            metric = METRICS.build(dict(type='ClassIoUMetric', class_groups=class_groups))  # as configs/study/ name it
        assert type(metric) is ClassIoUMetric
        metric.dataset_meta = dict(classes=('background', 'a', 'b', 'c'))
        metric.process({}, samples)
        return metric.evaluate(len(samples))

    metrics = evaluate(dict(ab=('a', 'b'), bc=('b', 'c')))
    assert {k: v for k, v in metrics.items() if k != 'IoU.c'} == {
        'aAcc': 85.71, 'mIoU': 75.0, 'mAcc': pytest.approx((3 / 4 + 4 / 4 + 5 / 6) / 3 * 100, abs=0.005),
        'IoU.background': 75.0, 'IoU.a': 66.67, 'IoU.b': 83.33, 'IoU.ab': 75.0, 'IoU.bc': 83.33}
    assert math.isnan(metrics['IoU.c'])
    with pytest.raises(ValueError, match=re.escape("class_groups['odd'] names unknown classes ['d']; classes: "
                                                   "['background', 'a', 'b', 'c']")):
        evaluate(dict(odd=('a', 'd')))


# ----------------------------------------------------------------------------- end to end

def run(args, env):
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode:
        raise AssertionError(f'{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
    return proc.stdout + proc.stderr


def read(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
@pytest.mark.parametrize('config, metrics', [
    (SEG, ['mIoU', 'mAcc', 'aAcc', 'IoU.absolute', 'IoU.relative']),
    (DET, ['coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/bbox_mAP_75'])])
def test_compare_encodings_quick(tmp_path, config, metrics):
    data = tmp_path / 'data'
    generate_detection_set(str(data / 'det'), num_train=4, num_val=2, height=128, width=160, seed=1, task='layout')
    generate_segmentation_set(str(data / 'seg'), num_train=4, num_val=2, height=128, width=160, seed=1,
                              task='layout')
    env = dict(os.environ, MMPE_LAYOUT_DET=f'{data}/det/', MMPE_LAYOUT_SEG=f'{data}/seg/', PYTHONPATH=ROOT,
               OMP_NUM_THREADS='1')
    work, out = tmp_path / 'work', tmp_path / 'out'
    # a preset and (UperNet) any pos_embed dict under a name of its own
    encodings = ['none', "ax={'type': 'rope_axial', 'theta': 10.0}"] if config == SEG else ['rope_mixed']
    command = [sys.executable, 'tools/analysis_tools/compare_encodings.py', config, '--encodings', *encodings,
               '--seeds', '0', '--work-dir', str(work), '--out', str(out), '--flops-size', '64', '80', '--quick']
    log = run(command, env)
    names = [e.split('=')[0] for e in encodings]
    assert f'] study: {len(names)}/{len(names)} runs done, elapsed ' in log  # mmpe.analysis.progress, plain lines

    stem = osp.splitext(osp.basename(config))[0]
    for name in names:  # eval_multires.py: one row per scale
        rows = read(work / stem / name / 'seed0' / 'multires' / 'multires.csv')
        assert [float(r['scale']) for r in rows] == [0.5, 1.0, 2.0]
        assert all(math.isfinite(float(r[m])) for r in rows for m in metrics)
        assert (work / stem / name / 'seed0' / 'multires' / 'multires.png').stat().st_size > 0

    rows = read(out / 'results_by_scale.csv')  # collect_results.py
    assert sorted((r['encoding'], float(r['scale'])) for r in rows) == \
        sorted((e, s) for e in names for s in (0.5, 1.0, 2.0))
    assert all(math.isfinite(float(r[m])) for r in rows for m in metrics)
    summary = read(out / 'results.csv')
    assert sorted(r['encoding'] for r in summary) == sorted(names)
    for r in summary:
        assert r['seeds'] == '1'
        assert float(r['params (M)']) > 0 and float(r['GFLOPs @64x80']) > 0 and float(r['s/iter']) > 0
        assert all(math.isfinite(float(r[m])) for m in metrics)
    assert (out / f'{metrics[0].replace("/", "_")}_vs_scale.png').exists()
    assert (out / f'{metrics[0].replace("/", "_")}_vs_encoding.png').exists()

    if config == SEG:  # an interrupted study resumes: finished runs are skipped
        log = run(command, env)
        assert log.count('evaluated already, skipped') == len(names)
        assert f'] study: {len(names)}/{len(names)} runs done ({len(names)} skipped), elapsed ' in log
