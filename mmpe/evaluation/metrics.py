"""Per-class and class-group IoU for the encoding study's segmentation sets."""
from typing import Dict, Optional, Sequence

import numpy as np
from mmseg.evaluation import IoUMetric
from mmseg.registry import METRICS


@METRICS.register_module()
class ClassIoUMetric(IoUMetric):
    """mmseg's IoUMetric (aAcc, mIoU, mAcc, ...) plus ``IoU.<class>`` for every class and
    ``IoU.<group>``, the mean IoU (%) of each named group of classes, e.g.
    ``class_groups=dict(quadrant=('square-top-left', ...), layout=('disk-left', 'disk-right'))``."""

    def __init__(self, class_groups: Optional[Dict[str, Sequence[str]]] = None, **kwargs):
        super().__init__(**kwargs)
        self.class_groups = dict(class_groups or {})

    def compute_metrics(self, results: list) -> Dict[str, float]:
        metrics = super().compute_metrics(results)
        columns = tuple(zip(*results))
        intersect, union = sum(columns[0]).numpy(), sum(columns[1]).numpy()
        with np.errstate(invalid='ignore', divide='ignore'):
            iou = dict(zip(self.dataset_meta['classes'], intersect / union * 100))
        for group, names in self.class_groups.items():
            unknown = [n for n in names if n not in iou]
            if unknown:
                raise ValueError(f'class_groups[{group!r}] names unknown classes {unknown}; '
                                 f'classes: {list(iou)}')
            metrics[f'IoU.{group}'] = round(float(np.nanmean([iou[n] for n in names])), 2)
        metrics.update({f'IoU.{name}': round(float(value), 2) for name, value in iou.items()})
        return metrics
