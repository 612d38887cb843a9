"""mmpe: positional encodings for ViT and Swin backbones in MMDetection and MMSegmentation."""
from . import compat
compat.apply()

from . import pos_embed  # noqa: F401,E402
from . import hooks, models  # noqa: F401,E402
from . import checkpoint  # noqa: F401,E402  (registers hf:// and timm:// with mmengine's CheckpointLoader)

__version__ = '0.1.0'
