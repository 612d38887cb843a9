"""Layer-wise learning-rate decay for detectors and segmentors with a ``PEVisionTransformer`` backbone.

mmdet 3.3's ``LearningRateDecayOptimizerConstructor`` knows only ConvNeXt, and mmseg 1.2.2's only
ConvNeXt, BEiT and MAE (by class name, blocks named ``backbone.layers.N``); both replace the
paramwise rules (``custom_keys``, ``flat_decay_mult``, ...) by their own. This constructor keeps
mmengine's rules and scales each parameter's learning rate by its depth, as BEiT, MAE and ViTDet
fine-tune: with L blocks and decay rate r, the layer id is 0 for the patch embedding, the CLS and
register tokens and the token encoding (``backbone.pos_embed``), i + 1 for block i (its RoPE
frequencies included), L + 1 for the final norm and everything outside the backbone (neck, heads),
and the learning rate is the one mmengine's rules give times r ** (L + 1 - id).
"""
from typing import List, Optional

from mmengine.optim import DefaultOptimWrapperConstructor
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn

from ..models import PEVisionTransformer

# The paramwise_cfg keys mmengine 0.10.7's DefaultOptimWrapperConstructor reads.
MMENGINE_PARAMWISE_KEYS = ('custom_keys', 'bias_lr_mult', 'bias_decay_mult', 'norm_decay_mult', 'dwconv_decay_mult',
                           'flat_decay_mult', 'dcn_offset_lr_mult', 'bypass_duplicate')
# Backbone attributes before the first block: layer id 0.
EMBEDDINGS = ('patch_embed', 'cls_token', 'reg_token', 'pos_embed')


def vit_layer_id(name: str, num_layers: int) -> int:
    """Layer id of parameter ``name`` (as ``model.named_parameters()`` gives it) of a model whose
    backbone is a ``PEVisionTransformer`` with ``num_layers`` blocks (see the module docstring)."""
    parts = name.split('.')
    if parts[0] != 'backbone':
        return num_layers + 1
    if parts[1] in EMBEDDINGS:
        return 0
    if parts[1] == 'blocks':
        return int(parts[2]) + 1
    if parts[1] == 'norm':
        return num_layers + 1
    raise ValueError(f'layer-wise lr decay does not know the layer of backbone parameter {name!r}: '
                     f'known are backbone.{{{", ".join(EMBEDDINGS)}}} (layer 0), backbone.blocks.N (N + 1) '
                     f'and backbone.norm ({num_layers + 1})')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class PELayerDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """mmengine's paramwise rules, then each parameter group's learning rate times
    ``layer_decay_rate ** (num_layers + 1 - layer_id)`` (``vit_layer_id``).

    ``paramwise_cfg`` takes ``layer_decay_rate`` (required, in (0, 1]; 1 is no decay) and the keys
    of mmengine's DefaultOptimWrapperConstructor, e.g.
    ``dict(layer_decay_rate=0.7, flat_decay_mult=0.0, custom_keys={'cls_token': dict(decay_mult=0.0)})``.
    The number of layers is the backbone's number of blocks.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None):
        paramwise_cfg = dict(paramwise_cfg or {})
        unknown = sorted(set(paramwise_cfg) - {'layer_decay_rate', *MMENGINE_PARAMWISE_KEYS})
        if unknown:
            raise ValueError(f'PELayerDecayOptimizerConstructor paramwise_cfg got unknown key(s) '
                             f'{", ".join(map(repr, unknown))}; accepted: layer_decay_rate and mmengine\'s '
                             f'{", ".join(map(repr, MMENGINE_PARAMWISE_KEYS))} (the number of layers is the '
                             f'backbone\'s number of blocks)')
        rate = paramwise_cfg.get('layer_decay_rate')
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
            raise ValueError(f'PELayerDecayOptimizerConstructor paramwise_cfg layer_decay_rate must be a number in '
                             f'(0, 1] (1: no decay), got {rate!r}')
        super().__init__(optim_wrapper_cfg, paramwise_cfg)  # keeps the key: mmengine ignores it
        if self.base_lr is None:
            raise ValueError('PELayerDecayOptimizerConstructor needs the base learning rate optimizer.lr')
        self.layer_decay_rate = float(rate)

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '', is_dcn_module=None) -> None:
        """mmengine's groups (one per parameter) for ``module``; at the top (the whole model), each
        group's lr (mmengine's, else the base lr) is then scaled by the parameter's layer."""
        if prefix:  # mmengine recurses through the submodules
            super().add_params(params, module, prefix, is_dcn_module)
            return
        backbone = getattr(module, 'backbone', None)
        if not isinstance(backbone, PEVisionTransformer):
            raise TypeError(f'PELayerDecayOptimizerConstructor needs a model whose backbone is a PEVisionTransformer, '
                            f'got {type(backbone).__name__}')
        first = len(params)
        super().add_params(params, module, prefix, is_dcn_module)
        name_of = {id(p): n for n, p in module.named_parameters()}
        num_layers = len(backbone.blocks)
        for group in params[first:]:
            [param] = group['params']
            layer_id = vit_layer_id(name_of[id(param)], num_layers)
            group['lr'] = group.get('lr', self.base_lr) * self.layer_decay_rate ** (num_layers + 1 - layer_id)
