"""Checkpoint converters from timm / Microsoft / RoPE-ViT layouts to mmpe backbones."""
from .timm_vit import convert_timm_vit, load_state_file, timm_vit_layout, unwrap_state_dict
from .swin import (SWIN_AXIAL_THETA, axial_as_mixed_freqs, backbone_state_dict, convert_microsoft_swin,
                   resize_rpb_tables)

__all__ = ['SWIN_AXIAL_THETA', 'axial_as_mixed_freqs', 'backbone_state_dict', 'convert_microsoft_swin',
           'convert_timm_vit', 'load_state_file', 'resize_rpb_tables', 'timm_vit_layout', 'unwrap_state_dict']
