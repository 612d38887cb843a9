"""A backbone's pretrained checkpoint, the one loading sequence of both backbones (``load_pretrained``): read by any
name (``mmpe.converters.checkpoint``), unwrapped, its layout detected once and logged, converted for the model,
checked to fill it, loaded non-strictly, and what did not load logged; a clear error when it belongs to another
model."""
import logging
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Tuple

from mmengine.logging import print_log
from torch import nn

from .checkpoint import load_checkpoint
from .state_dict import StateDict, backbone_keys, unwrap_state_dict
from .swin import SWIN_LAYOUTS, swin_layout, swin_state_for_model
from .timm_vit import VIT_LAYOUTS, timm_vit_layout, vit_state_for_model

# Backbone family -> (layout detector, {layout: description}, conversion for a model). A conversion takes
# (state dict, layout, the model's state dict, **what it needs of the model) and returns (the state dict the model
# loads, {dropped key: reason}).
FAMILIES = {'ViT': (timm_vit_layout, VIT_LAYOUTS, vit_state_for_model),
            'Swin': (swin_layout, SWIN_LAYOUTS, swin_state_for_model)}
# Buffers a model derives itself: not reported missing (timm's Swin checkpoints do not store RPB's index).
DERIVED_BUFFERS = ('.relative_position_index',)


@dataclass(frozen=True)
class PretrainedLoad:
    """What ``load_pretrained`` did: the checkpoint's name and detected ``layout``; the model's keys the checkpoint
    did not fill (``missing_keys``, derived buffers left out), its converted keys the model does not have
    (``unexpected_keys``) and the keys the conversion dropped, with the reason (``ignored_keys``)."""

    checkpoint: str
    layout: str
    missing_keys: List[str]
    unexpected_keys: List[str]
    ignored_keys: Dict[str, str]


def describe_state_dict(state_dict: StateDict) -> str:
    """What a state dict looks like, e.g. "a ViT state dict, layout 'vit': timm VisionTransformer ..."."""
    for family, (detect, names, _) in FAMILIES.items():
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
    detect, names, _ = FAMILIES[family]
    state = unwrap_state_dict(load_checkpoint(checkpoint))
    if prefix:
        state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if not state:
            raise ValueError(f'checkpoint {checkpoint} has no keys starting with prefix={prefix!r}')
    else:
        state = backbone_keys(state)
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


def load_pretrained(model: nn.Module, checkpoint: str, *, family: str, prefix: Optional[str] = None,
                    **model_args) -> PretrainedLoad:
    """Load ``checkpoint`` into the backbone ``model`` of ``family`` ('ViT': ``PEVisionTransformer``, 'Swin':
    ``PESwinTransformer``), whatever layout the family's detector recognises.

    Reads it (``load_backbone_state``: any name, unwrapped, ``prefix`` or the backbone's keys, layout detected and
    logged), converts it for the model (the family's conversion: ``vit_state_for_model`` takes
    ``model_args`` num_heads and grid_size, ``swin_state_for_model`` pos_embed), checks that it fills the model
    (``check_fills_model``), loads it non-strictly and logs to mmengine's current logger, each line starting with
    the checkpoint's name: the dropped keys (info), the missing and the unexpected ones (warnings).
    """
    _, _, convert = FAMILIES[family]
    original, layout = load_backbone_state(checkpoint, family, prefix)
    reference = model.state_dict()
    state, ignored = convert(original, layout, reference, **model_args)
    check_fills_model(checkpoint, state, reference, family, original)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith(DERIVED_BUFFERS)]
    name = type(model).__name__
    if ignored:
        print_log(f'checkpoint {checkpoint}: ignored keys: {ignored}', logger='current')
    if missing:
        print_log(f'checkpoint {checkpoint}: missing keys (in {name}, not in the checkpoint): {missing}',
                  logger='current', level=logging.WARNING)
    if unexpected:
        print_log(f'checkpoint {checkpoint}: unexpected keys (in the checkpoint, not in {name}): {unexpected}',
                  logger='current', level=logging.WARNING)
    return PretrainedLoad(checkpoint, layout, missing, unexpected, ignored)
