"""Layers, backbones and necks; importing this registers them in mmdet/mmseg MODELS."""
from .attention import PosAttention

__all__ = ['PosAttention']
