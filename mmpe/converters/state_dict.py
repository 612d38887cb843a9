"""The state dict inside a checkpoint, shared by every converter: unwrapping a training checkpoint,
picking a backbone's keys out of a detector or segmentor, reading a file."""
from collections import OrderedDict
from typing import Dict

import torch

from .checkpoint import read_checkpoint

StateDict = Dict[str, torch.Tensor]


def unwrap_state_dict(checkpoint: dict) -> StateDict:
    """The tensor mapping inside a training checkpoint ({'state_dict'|'model'|'module': ...})."""
    for key in ('state_dict', 'model', 'module'):
        if isinstance(checkpoint, dict) and isinstance(checkpoint.get(key), dict):
            checkpoint = checkpoint[key]
    return checkpoint


def backbone_state_dict(checkpoint: dict) -> StateDict:
    """The backbone state dict of a checkpoint (``unwrap_state_dict``, then ``backbone_keys``)."""
    return backbone_keys(unwrap_state_dict(checkpoint))


def backbone_keys(state_dict: StateDict) -> StateDict:
    """An unwrapped state dict without a 'module.' prefix; when keys start with 'backbone.' (a detector or
    segmentor checkpoint), only those, without the prefix."""
    if all(k.startswith('module.') for k in state_dict):
        state_dict = {k[len('module.'):]: v for k, v in state_dict.items()}
    if any(k.startswith('backbone.') for k in state_dict):
        state_dict = {k[len('backbone.'):]: v for k, v in state_dict.items() if k.startswith('backbone.')}
    return OrderedDict(state_dict)


def load_state_file(path: str, trust_pickle: bool = False) -> StateDict:
    """The state dict (``unwrap_state_dict``) of a .safetensors or torch file, read on CPU by
    ``mmpe.converters.checkpoint.read_checkpoint`` (``trust_pickle``: torch.load(weights_only=False), trusted
    files only)."""
    return unwrap_state_dict(read_checkpoint(path, trust_pickle=trust_pickle))
