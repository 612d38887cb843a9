"""A backbone's pretrained checkpoint: read by any name (``mmpe.converters.checkpoint``), its layout detected
and logged, and a clear error when it belongs to another model."""
from typing import Iterable, Optional, Tuple

from mmengine.logging import print_log

from .checkpoint import load_checkpoint
from .state_dict import StateDict, backbone_state_dict, unwrap_state_dict
from .swin import SWIN_LAYOUTS, swin_layout
from .timm_vit import VIT_LAYOUTS, timm_vit_layout

# Backbone family -> (layout detector, {layout: description}).
FAMILIES = {'ViT': (timm_vit_layout, VIT_LAYOUTS), 'Swin': (swin_layout, SWIN_LAYOUTS)}


def describe_state_dict(state_dict: StateDict) -> str:
    """What a state dict looks like, e.g. "a ViT state dict, layout 'vit': timm VisionTransformer ..."."""
    for family, (detect, names) in FAMILIES.items():
        try:
            layout = detect(state_dict)
            return f'a {family} state dict, layout {layout!r}: {names[layout]}'
        except ValueError:
            continue
    keys = ', '.join(list(state_dict)[:4])
    return f'neither a ViT nor a Swin state dict ({len(state_dict)} entries: {keys}, ...)'


def load_backbone_state(checkpoint: str, family: str, prefix: Optional[str] = None) -> Tuple[StateDict, str]:
    """The backbone state dict in ``checkpoint`` (hf://, timm://, URL or file) and its layout.

    Args:
        checkpoint: any name ``mmpe.converters.checkpoint.load_checkpoint`` takes.
        family: 'ViT' or 'Swin', the backbone that loads it.
        prefix: keep only the keys starting with it (stripped); by default a 'module.' prefix is
            stripped and, in a detector/segmentor checkpoint, the 'backbone.' keys are taken.
    Returns:
        (state dict, layout key of ``VIT_LAYOUTS`` / ``SWIN_LAYOUTS``); the layout is logged.
    Raises ValueError naming the checkpoint and what it looks like when it is not of ``family``.
    """
    detect, names = FAMILIES[family]
    state = unwrap_state_dict(load_checkpoint(checkpoint))
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if not state:
            raise ValueError(f'checkpoint {checkpoint} has no keys starting with prefix={prefix!r}')
    else:
        state = backbone_state_dict(state)
    try:
        layout = detect(state)
    except ValueError:
        raise ValueError(f'checkpoint {checkpoint} is not a {family} checkpoint: it looks like '
                         f'{describe_state_dict(state)}') from None
    print_log(f'checkpoint {checkpoint}: detected layout {layout!r}: {names[layout]}', logger='current')
    return state, layout


def check_fills_model(checkpoint: str, converted: Iterable[str], model_keys: Iterable[str], family: str,
                      original: StateDict) -> None:
    """ValueError when none of the ``converted`` keys is one of the model's (nothing would load)."""
    if not set(converted) & set(model_keys):
        raise ValueError(f'checkpoint {checkpoint} fills none of the {family} backbone\'s weights: it looks like '
                         f'{describe_state_dict(original)}')
