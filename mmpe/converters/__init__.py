"""Pretrained weights: checkpoints by name and file (``checkpoint``), the state dict inside them
(``state_dict``), layout detection and conversion from timm / Microsoft / RoPE-ViT / Meta DINOv3 /
transformers layouts to mmpe backbones (``timm_vit``, ``dinov3``, ``swin``), and the one loading sequence of both
backbones (``backbone.load_pretrained``)."""
from .backbone import PretrainedLoad, check_fills_model, describe_state_dict, load_backbone_state, load_pretrained
from .dinov3 import DINOV3_LAYOUTS, convert_dinov3
from .state_dict import backbone_state_dict, load_state_file, unwrap_state_dict
from .swin import (
                   SWIN_LAYOUTS,
                   axial_as_mixed_freqs,
                   convert_microsoft_swin,
                   convert_swin,
                   resize_rpb_tables,
                   swin_layout,
)
from .timm_vit import VIT_LAYOUTS, convert_timm_vit, timm_vit_layout

__all__ = ['DINOV3_LAYOUTS', 'PretrainedLoad', 'SWIN_LAYOUTS', 'VIT_LAYOUTS', 'axial_as_mixed_freqs',
           'backbone_state_dict', 'check_fills_model', 'convert_dinov3', 'convert_microsoft_swin', 'convert_swin',
           'convert_timm_vit', 'describe_state_dict', 'load_backbone_state', 'load_pretrained', 'load_state_file',
           'resize_rpb_tables', 'swin_layout', 'timm_vit_layout', 'unwrap_state_dict']
