"""Checkpoint converters from timm / Microsoft / RoPE-ViT layouts to mmpe backbones."""
from .timm_vit import convert_timm_vit, load_state_file, timm_vit_layout, unwrap_state_dict

__all__ = ['convert_timm_vit', 'load_state_file', 'timm_vit_layout', 'unwrap_state_dict']
