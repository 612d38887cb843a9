"""Pipeline transform of the encoding study's 'layout' task (registered in mmdet's and mmseg's TRANSFORMS).

The task's labels are positional (``mmpe.datasets.synthetic``): a square is labelled by the image half its
centre lies in, a disk by the side of the other disk it lies on. A random crop of an upscaled image (the
multi-scale pipelines of ``configs/study/_base_/transfer-ms_pipelines.py``) keeps the labels of the whole
scene: a square left of the scene's midline can lie right of the crop's, and a disk whose partner is
cropped out keeps a label nothing in the crop decides. ``LayoutLabelsInCrop`` derives the labels again for
the image as it is after the crop.
"""
import cv2
import numpy as np
from mmcv.transforms import BaseTransform

from ..models.registry import register_transform
from .synthetic import LAYOUT_DET_CLASSES

# class indices in LAYOUT_DET_CLASSES (detection; segmentation with reduce_zero_label: the same + 1)
SQUARE_LEFT, SQUARE_RIGHT, DISK_LEFT, DISK_RIGHT = (
    LAYOUT_DET_CLASSES.index(name) for name in ('square-left', 'square-right', 'disk-left', 'disk-right'))


@register_transform
class LayoutLabelsInCrop(BaseTransform):
    """The 'layout' task's labels of the image as cropped; place it after the pipeline's crop (and resizes).

    - A square is 'square-left' or 'square-right' by the half of the image its visible part's centre (the
      centre of its visible bounding box) lies in.
    - The two disks keep their labels while both are visible (a crop keeps their order); a disk whose
      partner is cropped out has no label the image decides and is ignored.

    Segmentation (``gt_seg_map`` (H, W), reduce_zero_label classes: 0 background, 1 square-left,
    2 square-right, 3 disk-left, 4 disk-right): each 4-connected component of square pixels is one square;
    an ignored disk's pixels become ``ignore_index``. Detection (``gt_bboxes`` (n, 4) x1 y1 x2 y2,
    ``gt_bboxes_labels`` (n,) in LAYOUT_DET_CLASSES order, ``gt_ignore_flags`` (n,)): a square's box is
    its visible part (crops clip boxes); an ignored disk's flag is set (``PackDetInputs`` moves it to
    ``ignored_instances``). An uncropped scene is left as it is: the renderer keeps square centres at least
    0.05 of the width from the midline and both disks in the image.

    Args:
        ignore_index: the segmentation label of ignored pixels (mmseg's 255).
    """

    def __init__(self, ignore_index: int = 255):
        self.ignore_index = ignore_index

    def transform(self, results: dict) -> dict:
        if 'gt_seg_map' in results:
            results['gt_seg_map'] = self._seg_labels(results['gt_seg_map'])
        if 'gt_bboxes_labels' in results:
            self._det_labels(results)
        return results

    def _seg_labels(self, seg: np.ndarray) -> np.ndarray:
        """(H, W) class map of the crop -> the same with the labels derived again."""
        seg = seg.copy()
        half = seg.shape[1] / 2
        squares = np.isin(seg, (SQUARE_LEFT + 1, SQUARE_RIGHT + 1)).astype(np.uint8)
        count, components, stats, _ = cv2.connectedComponentsWithStats(squares, connectivity=4)
        for k in range(1, count):  # 0: not a square
            centre = stats[k, cv2.CC_STAT_LEFT] + stats[k, cv2.CC_STAT_WIDTH] / 2
            seg[components == k] = 1 + (SQUARE_RIGHT if centre >= half else SQUARE_LEFT)
        disks_seen = [np.any(seg == cls + 1) for cls in (DISK_LEFT, DISK_RIGHT)]
        if not all(disks_seen):
            seg[np.isin(seg, (DISK_LEFT + 1, DISK_RIGHT + 1))] = self.ignore_index
        return seg

    def _det_labels(self, results: dict) -> None:
        """Squares' labels from their boxes' centres, a lone disk's ignore flag, in place."""
        boxes = results['gt_bboxes'].numpy()  # mmdet's HorizontalBoxes (LoadAnnotations' default box_type)
        labels = results['gt_bboxes_labels'].copy()
        ignore = results['gt_ignore_flags'].copy()
        half = results['img_shape'][1] / 2
        square = np.isin(labels, (SQUARE_LEFT, SQUARE_RIGHT))
        centres = (boxes[:, 0] + boxes[:, 2]) / 2
        labels[square] = np.where(centres[square] >= half, SQUARE_RIGHT, SQUARE_LEFT)
        disk = np.isin(labels, (DISK_LEFT, DISK_RIGHT)) & ~ignore
        if not all(np.any(labels[disk] == cls) for cls in (DISK_LEFT, DISK_RIGHT)):
            ignore = ignore | disk
        results['gt_bboxes_labels'], results['gt_ignore_flags'] = labels, ignore

    def __repr__(self) -> str:
        return f'{type(self).__name__}(ignore_index={self.ignore_index})'
