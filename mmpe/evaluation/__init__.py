"""Evaluation metrics; importing this registers them in mmseg's METRICS
(``custom_imports=dict(imports=['mmpe', 'mmpe.evaluation'])``)."""
from .metrics import ClassIoUMetric

__all__ = ['ClassIoUMetric']
