"""Synthetic datasets for CPU demos, tests and the encoding study."""
from .synthetic import (
    DET_CLASSES,
    LAYOUT_DET_CLASSES,
    LAYOUT_SEG_CLASSES,
    SEG_CLASSES,
    TASKS,
    generate_detection_set,
    generate_segmentation_set,
    get_task,
    render_layout_scene,
    render_scene,
)

__all__ = ['DET_CLASSES', 'LAYOUT_DET_CLASSES', 'LAYOUT_SEG_CLASSES', 'SEG_CLASSES', 'TASKS',
           'generate_detection_set', 'generate_segmentation_set', 'get_task', 'render_layout_scene', 'render_scene']
