"""LayoutLabelsInCrop: the layout task's labels derived again after a crop (mmpe/datasets/transforms.py).

The reference is the renderer (mmpe.datasets.synthetic.render_layout_scene): its objects' boxes and label
map, cropped by hand, give each object's expected label from the rules written out here: a square by the half
of the crop its visible box's centre lies in, the disks as rendered while both are visible, else ignored.
"""
import numpy as np
import pytest
from mmdet.registry import TRANSFORMS as DET_TRANSFORMS
from mmdet.structures.bbox import HorizontalBoxes
from mmseg.registry import TRANSFORMS as SEG_TRANSFORMS

from mmpe.datasets import render_layout_scene
from mmpe.datasets.transforms import LayoutLabelsInCrop

IGNORE = 255


def scene(seed: int, size: int):
    """A rendered layout scene: objects [(class, (x0, y0, x1, y1))] and its class map with
    reduce_zero_label classes (0 background, k + 1 detection class k)."""
    _, objects, label = render_layout_scene(np.random.default_rng(seed), size, size)
    return [(cls, (x, y, x + w, y + h)) for cls, (x, y, w, h) in objects], label.astype(np.uint8)


def crop_box(box, crop):
    """box (x0, y0, x1, y1) clipped to crop (x0, y0, x1, y1), in the crop's pixels, or None if outside."""
    x0, y0 = max(box[0], crop[0]) - crop[0], max(box[1], crop[1]) - crop[1]
    x1, y1 = min(box[2], crop[2]) - crop[0], min(box[3], crop[3]) - crop[1]
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def det_results(objects, crop):
    """mmdet's results of the crop (RandomCrop keeps the boxes left with an area, clipped)."""
    kept = [(cls, box) for cls, box in ((cls, crop_box(box, crop)) for cls, box in objects) if box is not None]
    return dict(img_shape=(crop[3] - crop[1], crop[2] - crop[0]),
                gt_bboxes=HorizontalBoxes(np.array([b for _, b in kept], np.float32).reshape(-1, 4)),
                gt_bboxes_labels=np.array([c for c, _ in kept], np.int64),
                gt_ignore_flags=np.zeros(len(kept), bool))


def expected_det(results):
    """(labels, ignore flags) by the rules, from the cropped boxes."""
    boxes, labels = results['gt_bboxes'].numpy(), results['gt_bboxes_labels'].copy()
    width = results['img_shape'][1]
    ignore = np.zeros(len(labels), bool)
    both_disks = {2, 3} <= set(labels.tolist())
    for i, (x0, _, x1, _) in enumerate(boxes):
        if labels[i] < 2:
            labels[i] = int((x0 + x1) / 2 >= width / 2)
        elif not both_disks:
            ignore[i] = True
    return labels, ignore


def expected_seg(objects, label, crop):
    """The crop of ``label`` with each object's pixels relabelled by the rules."""
    x0, y0, x1, y1 = crop
    out = label[y0:y1, x0:x1].copy()
    disks_seen = [np.any(out == cls + 1) for cls in (2, 3)]
    for cls, box in objects:
        clipped = crop_box(box, crop)
        if clipped is None:
            continue
        bx0, by0, bx1, by1 = clipped
        pixels = out[by0:by1, bx0:bx1]  # a view: objects' boxes do not overlap
        if cls < 2:
            pixels[pixels > 0] = 1 + int((bx0 + bx1) / 2 >= out.shape[1] / 2)
        elif not all(disks_seen):
            pixels[pixels > 0] = IGNORE
    return out


@pytest.mark.parametrize('size', [72, 144])
def test_an_uncropped_scene_keeps_the_rendered_labels(size):
    transform = LayoutLabelsInCrop()
    for seed in range(20):
        objects, label = scene(seed, size)
        assert np.array_equal(transform(dict(gt_seg_map=label.copy()))['gt_seg_map'], label)
        results = transform(det_results(objects, (0, 0, size, size)))
        assert results['gt_bboxes_labels'].tolist() == [cls for cls, _ in objects]
        assert not results['gt_ignore_flags'].any()


def test_crops_of_an_upscaled_scene_get_the_labels_of_the_crop():
    """144 px crops of 288 px scenes: some squares change side, some disks lose their partner."""
    transform = LayoutLabelsInCrop(ignore_index=IGNORE)
    changed = ignored = 0
    for seed in range(10):
        objects, label = scene(seed, 288)
        for cx in range(0, 145, 36):
            for cy in range(0, 145, 72):
                crop = (cx, cy, cx + 144, cy + 144)
                seg = transform(dict(gt_seg_map=label[cy:cy + 144, cx:cx + 144].copy()))['gt_seg_map']
                expected = expected_seg(objects, label, crop)
                assert np.array_equal(seg, expected), (seed, crop)
                results = det_results(objects, crop)
                rendered = results['gt_bboxes_labels'].copy()
                labels, ignore = expected_det(results)
                results = transform(results)
                assert results['gt_bboxes_labels'].tolist() == labels.tolist(), (seed, crop)
                assert results['gt_ignore_flags'].tolist() == ignore.tolist(), (seed, crop)
                changed += int((labels != rendered).sum())
                ignored += int(ignore.sum())
    assert changed > 0 and ignored > 0  # the crops exercise both rules


def test_registered_for_mmdet_and_mmseg_pipelines():
    for registry in (DET_TRANSFORMS, SEG_TRANSFORMS):
        transform = registry.build(dict(type='LayoutLabelsInCrop', ignore_index=254))
        assert isinstance(transform, LayoutLabelsInCrop) and transform.ignore_index == 254
