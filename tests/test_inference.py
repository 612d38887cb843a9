"""mmpe.engine.inference and tools/image_demo.py: mmdet's DetInferencer and mmseg's MMSegInferencer on
checkpoints of the demo configs trained here, compared with mmdet's / mmseg's single-image APIs
(init_detector + inference_detector, init_model + inference_model); what the visualizers draw."""
import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import mmcv
import numpy as np
import pytest
import torch

from mmpe.datasets import generate_detection_set, generate_segmentation_set
from mmpe.engine.inference import build_inferencer, image_files, model_config, predict_images

ROOT = Path(__file__).resolve().parents[1]
DET = str(ROOT / 'configs/demo/dino_swin-rope-mixed_synthetic.py')
SEG = str(ROOT / 'configs/demo/upernet_swin-rope-mixed_synthetic.py')


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Synthetic data and a checkpoint of each demo config after one training iteration (tools/train.py)."""
    root = tmp_path_factory.mktemp('inference')
    generate_detection_set(str(root / 'det'), num_train=2, num_val=2, seed=0)
    generate_segmentation_set(str(root / 'seg'), num_train=2, num_val=2, seed=0)
    env = dict(os.environ, MMPE_SYNTHETIC_DET=f'{root}/det/', MMPE_SYNTHETIC_SEG=f'{root}/seg/', OMP_NUM_THREADS='1')
    for name, config in (('det', DET), ('seg', SEG)):
        proc = subprocess.run([sys.executable, 'tools/train.py', config, '--work-dir', str(root / f'work_{name}'),
                               '--cfg-options', 'train_cfg.max_iters=1', 'train_cfg.val_interval=10',
                               'default_hooks.checkpoint.interval=1'],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
    return root


def read_rgb(path) -> np.ndarray:
    return mmcv.imread(str(path), channel_order='rgb')


def test_image_files_and_bad_input(tmp_path):
    for name in ('b.png', 'a.jpg', 'notes.txt'):
        (tmp_path / name).write_bytes(b'')
    assert image_files([str(tmp_path), str(tmp_path / 'b.png')]) == [
        str(tmp_path / 'a.jpg'), str(tmp_path / 'b.png'), str(tmp_path / 'b.png')]
    with pytest.raises(FileNotFoundError, match='inputs: no image or folder .*missing.png'):
        image_files(str(tmp_path / 'missing.png'))


def test_model_config_errors(tmp_path):
    with pytest.raises(ValueError, match='model: give a config .* got neither model nor weights'):
        model_config(None, None)
    torch.save({'state_dict': {}}, tmp_path / 'bare.pth')
    with pytest.raises(ValueError, match=r'checkpoint .*bare.pth holds no config \(meta\["cfg"\]\)'):
        model_config(str(tmp_path / 'bare.pth'), None)
    (tmp_path / 'cls.py').write_text("default_scope = 'mmpretrain'\nmodel = dict(type='ImageClassifier')\n")
    with pytest.raises(ValueError, match="default_scope 'mmpretrain' names no toolbox of mmpe; accepted: mmdet, mmseg"):
        build_inferencer(str(tmp_path / 'cls.py'))


@pytest.mark.slow  # trains two checkpoints (module fixture, about 60 s), runs both toolboxes
def test_detector_predictions_and_drawings(trained, tmp_path, device):
    """DetInferencer (through build_inferencer, also from the checkpoint alone) predicts what mmdet's
    inference_detector does; its visualizer draws the boxes above the score threshold and nothing else."""
    from mmdet.apis import inference_detector, init_detector
    checkpoint = str(trained / 'work_det' / 'iter_1.pth')
    images = image_files(str(trained / 'det' / 'val'))
    inferencer = build_inferencer(DET, checkpoint, device=str(device))
    predict_images(inferencer, images, str(tmp_path / 'all'), score_thr=0.0)
    predict_images(build_inferencer(checkpoint, device=str(device)), images, str(tmp_path / 'none'), score_thr=1.01,
                   save_pred=False)
    reference = init_detector(DET, checkpoint, device=str(device))
    for image in images:
        name = Path(image).name
        expected = inference_detector(reference, image).pred_instances
        pred = json.loads((tmp_path / 'all' / 'preds' / f'{Path(image).stem}.json').read_text())
        np.testing.assert_allclose(pred['bboxes'], expected.bboxes.cpu().numpy(), atol=1e-3)
        np.testing.assert_allclose(pred['scores'], expected.scores.cpu().numpy(), atol=1e-5)
        assert pred['labels'] == expected.labels.tolist()
        assert not (tmp_path / 'none' / 'preds').exists()
        original = read_rgb(image)
        np.testing.assert_array_equal(read_rgb(tmp_path / 'none' / 'vis' / name), original)  # no box scores 1.01
        drawn = read_rgb(tmp_path / 'all' / 'vis' / name)
        assert drawn.shape == original.shape
        x1, y1, x2, y2 = np.clip(np.round(expected.bboxes[0].cpu().numpy()).astype(int), 0,
                                 [original.shape[1] - 1, original.shape[0] - 1] * 2)
        edge = np.s_[y1:y2 + 1, x1]  # the left edge of the top-scoring box
        assert (drawn[edge] != original[edge]).any(axis=-1).mean() > 0.5


@pytest.mark.slow  # uses the trained checkpoints
def test_segmentor_predictions_and_drawings(trained, tmp_path, device):
    """MMSegInferencer predicts what mmseg's inference_model does; the drawing is mmseg's blend
    image (1 - opacity) + palette[class] opacity, exactly (PNG inputs: lossless)."""
    from mmseg.apis import inference_model, init_model
    checkpoint = str(trained / 'work_seg' / 'iter_1.pth')
    inputs = tmp_path / 'images'
    inputs.mkdir()
    for jpg in image_files(str(trained / 'seg' / 'images' / 'validation')):
        mmcv.imwrite(mmcv.imread(jpg), str(inputs / f'{Path(jpg).stem}.png'))
    predict_images(build_inferencer(SEG, checkpoint, device=str(device)), str(inputs), str(tmp_path / 'out'),
                   opacity=0.5)
    reference = init_model(SEG, checkpoint, device=str(device))
    palette = np.array(reference.dataset_meta['palette'])
    for index, image in enumerate(image_files(str(inputs))):
        expected = inference_model(reference, image).pred_sem_seg.data[0].cpu().numpy()
        saved = mmcv.imread(str(tmp_path / 'out' / 'pred' / f'{index:08d}_pred.png'), flag='unchanged')
        np.testing.assert_array_equal(saved, expected)
        original = read_rgb(image)
        np.testing.assert_array_equal(read_rgb(tmp_path / 'out' / 'vis' / Path(image).name),
                                      (original * 0.5 + palette[expected] * 0.5).astype(np.uint8))


@pytest.mark.slow  # uses the trained checkpoints
def test_image_demo_tool(trained, tmp_path, monkeypatch):
    """tools/image_demo.py with mmdet's arguments: a folder, the config by name, --weights, --out-dir."""
    monkeypatch.setattr(sys, 'argv', ['image_demo.py', str(trained / 'seg' / 'images' / 'validation'),
                                      'mmpe::demo/upernet_swin-rope-mixed_synthetic.py',
                                      '--weights', str(trained / 'work_seg' / 'iter_1.pth'),
                                      '--out-dir', str(tmp_path), '--device', 'cpu', '--no-save-pred'])
    runpy.run_path(str(ROOT / 'tools' / 'image_demo.py'), run_name='__main__')
    assert sorted(p.name for p in (tmp_path / 'vis').iterdir()) == ['000000.jpg', '000001.jpg']
    assert not (tmp_path / 'pred').exists()
