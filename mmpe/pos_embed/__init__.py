"""Positional encodings, pure torch: additive token encodings (APE, 2D sin-cos, LOOPE),
rotary encodings of q/k (RoPE-Axial, RoPE-Mixed) and the Swin relative position bias."""
from .absolute import (LearnedPosEmbed, LOOPEContext, LOOPEPosEmbed, SinCosPosEmbed, interleaved_sincos,
                       resize_pos_table, sincos_2d)
from .base import AttentionPosEmbed, TokenPosEmbed
from .builder import ENCODINGS, build_pos_embed, parse_pos_embed_cfg
from .grid import gilbert_order, grid_coords
from .rope import RoPEAxial, RoPEMixed, apply_rope, axial_magnitudes, mixed_init_freqs, rope_tables
from .rpb import RelativePositionBias, relative_position_index

__all__ = [
    'AttentionPosEmbed', 'ENCODINGS', 'LOOPEContext', 'LOOPEPosEmbed', 'LearnedPosEmbed', 'RelativePositionBias',
    'RoPEAxial', 'RoPEMixed', 'SinCosPosEmbed', 'TokenPosEmbed', 'apply_rope', 'axial_magnitudes',
    'build_pos_embed', 'gilbert_order', 'grid_coords', 'interleaved_sincos', 'mixed_init_freqs',
    'parse_pos_embed_cfg', 'relative_position_index', 'resize_pos_table', 'rope_tables', 'sincos_2d',
]
