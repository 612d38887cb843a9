"""Layers, backbones and necks; importing this registers them in mmdet/mmseg MODELS. DINO's detector
(``mmpe.models.dino``, it imports mmdet's models) is imported by the configs that use it."""
from .attention import PosAttention
from .simple_fpn import PESimpleFPN
from .swin import PESwinTransformer
from .vit import PEVisionTransformer, PEViTBlock

__all__ = ['PESimpleFPN', 'PESwinTransformer', 'PEVisionTransformer', 'PEViTBlock', 'PosAttention']

try:
    import mmcv._ext  # noqa: F401  mmcv's compiled ops, absent from mmcv-lite
except ImportError:
    pass
else:  # deformable attention as a PyTorch operator (torch.ops.mmpe.ms_deform_attn)
    from .deform_attn import PEMultiScaleDeformableAttention  # noqa: F401
    __all__.append('PEMultiScaleDeformableAttention')
