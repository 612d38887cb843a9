"""mmpe: positional encodings for ViT and Swin backbones in MMDetection and MMSegmentation.

Model code: ``pos_embed`` (the encodings, pure PyTorch), ``models`` (attention, ViT, Swin, SimpleFPN;
registered in mmdet/mmseg MODELS), ``converters`` (checkpoints by name, layouts). Running:
``engine`` (compatibility fixes, hooks, launch, pre-flight). Studying: ``analysis``, ``datasets``,
``evaluation``. docs/design.md section 1 has the layers and which may import which.
"""
from .engine import compat, config_names

compat.apply()
config_names.register()  # 'mmpe::<folder>/<config>.py' names (mmpe/engine/config_names.py)

from . import models, pos_embed  # noqa: F401,E402
from .converters import checkpoint  # noqa: F401,E402  (registers hf:// and timm:// with mmengine's CheckpointLoader)
from .engine import checkpoints, hooks, optimizers  # noqa: F401,E402  (register AtomicCheckpointHook, RandomStateHook, ...)
from .version import __version__  # noqa: F401,E402
