"""Diagnostics of positional encodings from the LOOPE paper: PESI metrics of position tables
and RoPE kernels, and the Three-Cell Experiment. Pure torch/numpy (no OpenMMLab imports)."""
from .pesi import cosine_similarity_map, pesi, pesi_from_similarity
from .report import write_table
from .tables import (ape_table, backbone_state, loope_module, loope_positions, loope_static_table, loope_table,
                     raster_order, rope_kernel, rope_mixed_freqs, sincos_table, sinusoid_table)
from .three_cell import (GROUPS, NUM_TARGETS, ThreeCellClassifier, evaluate, group_accuracy, majority_accuracy,
                         three_cell_images, three_cell_labels, three_cell_sample, train_three_cell)

__all__ = [
    'GROUPS', 'NUM_TARGETS', 'ThreeCellClassifier', 'ape_table', 'backbone_state', 'cosine_similarity_map', 'evaluate',
    'group_accuracy', 'loope_module', 'loope_positions', 'loope_static_table', 'loope_table', 'majority_accuracy',
    'pesi', 'pesi_from_similarity', 'raster_order', 'rope_kernel', 'rope_mixed_freqs', 'sincos_table',
    'sinusoid_table', 'three_cell_images', 'three_cell_labels', 'three_cell_sample', 'train_three_cell',
    'write_table',
]
