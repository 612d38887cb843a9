"""Positional encodings, pure torch: additive token encodings (APE, 2D sin-cos, LOOPE),
rotary encodings of q/k (RoPE-Axial, RoPE-Mixed) and the Swin relative position bias."""
from .absolute import (
    LearnedPosEmbed,
    LOOPEContext,
    LOOPEPosEmbed,
    SinCosPosEmbed,
    interleaved_sincos,
    resize_pos_table,
    sincos_2d,
)
from .base import AttentionPosEmbed, TokenPosEmbed
from .builder import BACKBONE_ENCODINGS, ENCODING_PRESETS, build_pos_embed
from .cache import TABLE_CACHES, TableCache, table_cache
from .grid import gilbert_order, grid_coords
from .rope import (
    RoPEAxial,
    RoPEMixed,
    RotateFixed,
    RotateMixed,
    axial_magnitudes,
    mixed_cos_sin,
    mixed_init_freqs,
    rope_axial_tables,
    rope_coords,
    rotate_pairs,
)
from .rpb import RelativePositionBias, relative_position_index
from .spec import ENCODINGS, PosEmbedSpec, parse_pos_embed_cfg

__all__ = [
    'AttentionPosEmbed', 'BACKBONE_ENCODINGS', 'ENCODING_PRESETS', 'ENCODINGS', 'LOOPEContext', 'LOOPEPosEmbed',
    'LearnedPosEmbed', 'PosEmbedSpec', 'RelativePositionBias', 'RoPEAxial', 'RoPEMixed', 'RotateFixed', 'RotateMixed',
    'SinCosPosEmbed', 'TABLE_CACHES', 'TableCache',
    'TokenPosEmbed', 'axial_magnitudes', 'build_pos_embed', 'gilbert_order', 'grid_coords', 'interleaved_sincos',
    'mixed_cos_sin', 'mixed_init_freqs', 'parse_pos_embed_cfg', 'relative_position_index', 'resize_pos_table',
    'rope_axial_tables', 'rope_coords', 'rotate_pairs', 'sincos_2d', 'table_cache',
]
