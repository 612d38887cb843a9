"""Synthetic datasets for CPU demos and tests."""
from .synthetic import (DET_CLASSES, SEG_CLASSES, generate_detection_set, generate_segmentation_set,
                        render_scene)

__all__ = ['DET_CLASSES', 'SEG_CLASSES', 'generate_detection_set', 'generate_segmentation_set', 'render_scene']
