"""The encoding study: the 'layout' synthetic task, the FLOPs counter against a hand count, and
compare_encodings.py --quick (training, eval_multires.py, collect_results.py) end to end for an
UperNet and a DINO config."""
import csv
import json
import math
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from mmpe.datasets import LAYOUT_DET_CLASSES, generate_detection_set, generate_segmentation_set, render_layout_scene

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


# ----------------------------------------------------------------------------- FLOPs

@pytest.mark.parametrize('encoding', [dict(type='ape'), dict(type='rope_axial'), dict(type='rope_mixed')])
def test_flops_match_hand_count_of_tiny_vit(encoding):
    from mmpe.complexity import ROPE_ANGLE_FLOPS, ROPE_FLOPS_PER_ELEMENT, model_complexity
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


# ----------------------------------------------------------------------------- end to end

def run(args, env):
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    if proc.returncode:
        raise AssertionError(f'{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
    return proc.stdout + proc.stderr


def read(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


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
    command = [sys.executable, 'tools/compare_encodings.py', config, '--encodings', *encodings,
               '--seeds', '0', '--work-dir', str(work), '--out', str(out), '--flops-size', '64', '80', '--quick']
    run(command, env)
    names = [e.split('=')[0] for e in encodings]

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
