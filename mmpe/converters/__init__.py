"""Checkpoint converters from timm / Microsoft / RoPE-ViT layouts to mmpe backbones."""
from .timm_vit import VIT_LAYOUTS, convert_timm_vit, load_state_file, timm_vit_layout, unwrap_state_dict
from .swin import (SWIN_AXIAL_THETA, SWIN_LAYOUTS, axial_as_mixed_freqs, backbone_state_dict, convert_microsoft_swin,
                   convert_swin, resize_rpb_tables, swin_layout)
from .backbone import check_fills_model, describe_state_dict, load_backbone_state

__all__ = ['SWIN_AXIAL_THETA', 'SWIN_LAYOUTS', 'VIT_LAYOUTS', 'axial_as_mixed_freqs', 'backbone_state_dict',
           'check_fills_model', 'convert_microsoft_swin', 'convert_swin', 'convert_timm_vit', 'describe_state_dict',
           'load_backbone_state', 'load_state_file', 'resize_rpb_tables', 'swin_layout', 'timm_vit_layout',
           'unwrap_state_dict']
