"""Layers, backbones and necks; importing this registers them in mmdet/mmseg MODELS."""
from .attention import PosAttention
from .simple_fpn import PESimpleFPN
from .swin import PESwinTransformer
from .vit import PEVisionTransformer, PEViTBlock

__all__ = ['PESimpleFPN', 'PESwinTransformer', 'PEVisionTransformer', 'PEViTBlock', 'PosAttention']
