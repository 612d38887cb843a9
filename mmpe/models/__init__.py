"""Layers, backbones, necks and DINO's detector; importing this registers them in mmdet/mmseg MODELS."""
from .attention import PosAttention
from .simple_fpn import PESimpleFPN
from .swin import PESwinTransformer
from .vit import PEVisionTransformer, PEViTBlock

__all__ = ['PESimpleFPN', 'PESwinTransformer', 'PEVisionTransformer', 'PEViTBlock', 'PosAttention']

try:
    import mmcv._ext  # noqa: F401  mmcv's compiled ops, absent from mmcv-lite
except ImportError:
    pass
else:  # deformable attention as a PyTorch operator (torch.ops.mmpe.ms_deform_attn), DINO that compiles whole
    from .deform_attn import PEMultiScaleDeformableAttention  # noqa: F401
    from .dino import PEDINO  # noqa: F401
    __all__ += ['PEDINO', 'PEMultiScaleDeformableAttention']
