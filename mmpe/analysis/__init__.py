"""Studying the encodings. Imported here: the diagnostics of the LOOPE paper (PESI metrics of
position tables and RoPE kernels, the Three-Cell Experiment) and the report writer. Modules of their
own: ``study`` (encodings by name, multi-scale evaluation, run outputs), ``study_runner`` (the study of
compare_encodings.py), ``launchers`` (how its runs start), ``transfer`` (its presets), ``results`` and
``reproduce`` (collect_results.py's tables, plots and docs/reproduce.md), ``stats`` (statistics over
seeds), ``pesi_report`` (pesi.py's table), ``benchmark`` (timing and memory), ``benchmark_cases`` (what
the benchmark tools measure), ``compilation`` (torch.compile of whole detectors and segmentors: graph
breaks, graphs over sizes, eager against compiled training steps), ``complexity`` (FLOPs, through
mmengine's analyzer), ``progress`` (live progress of long work)."""
from .pesi import cosine_similarity_map, pesi, pesi_from_similarity
from .report import pyplot, write_table
from .tables import (
    ape_table,
    backbone_state,
    loope_module,
    loope_positions,
    loope_static_table,
    loope_table,
    raster_order,
    rope_kernel,
    rope_mixed_freqs,
    sincos_table,
    sinusoid_table,
)
from .three_cell import (
    GROUPS,
    NUM_TARGETS,
    ThreeCellClassifier,
    evaluate,
    group_accuracy,
    majority_accuracy,
    three_cell_images,
    three_cell_labels,
    three_cell_sample,
    train_three_cell,
)

__all__ = [
    'GROUPS', 'NUM_TARGETS', 'ThreeCellClassifier', 'ape_table', 'backbone_state', 'cosine_similarity_map', 'evaluate',
    'group_accuracy', 'loope_module', 'loope_positions', 'loope_static_table', 'loope_table', 'majority_accuracy',
    'pesi', 'pesi_from_similarity', 'raster_order', 'rope_kernel', 'rope_mixed_freqs', 'sincos_table',
    'sinusoid_table', 'three_cell_images', 'three_cell_labels', 'three_cell_sample', 'train_three_cell',
    'pyplot', 'write_table',
]
