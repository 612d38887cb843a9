"""Layers, backbones and necks; importing this registers them in mmdet/mmseg MODELS."""
from importlib.util import find_spec

from .attention import PosAttention
from .vit import PEVisionTransformer, PEViTBlock

__all__ = ['PEVisionTransformer', 'PEViTBlock', 'PosAttention']

if find_spec('mmcv') is not None:  # the neck is built of mmcv ConvModules; mmdet, its only user, needs mmcv anyway
    from .simple_fpn import PESimpleFPN  # noqa: F401
    __all__.append('PESimpleFPN')
