"""Study presets of tools/analysis_tools/compare_encodings.py (``--preset NAME``): which backbones,
fine-tuning configs, encodings, seeds, test scales and data a whole study runs, in one place.

'transfer' is issue 22's protocol in miniature: per backbone and encoding, pretrain on the
synthetic 'layout' task at 48x48 (configs/study/pretrain_*_layout48.py, the analogue of ImageNet at
224 px), then fine-tune the pretrained backbone at 144x144 (token grid 3x larger per side; the
checkpoint goes in through ``model.backbone.init_cfg`` like ImageNet weights) for segmentation
(UperNet), the position-blind 1x1 head (the control) and detection (DINO), and evaluate each
fine-tuned model at 0.5-2x of 144 px. Every seed is a different pretraining and fine-tuning. Sized
for about 3 hours of a 2-core CPU machine, 2 runs at a time with one thread each (the measured
per-step times are in docs/results.md, "Transfer study: protocol and budget").
"""
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

VIT_STUDY_ENCODINGS = ('ape', 'sincos', 'rope_axial', 'rope_mixed',
                       "rope_mixed interpolate={'type': 'rope_mixed', 'coords': 'interpolate'}", 'rope_mixed+ape',
                       'loope', 'none')
SWIN_STUDY_ENCODINGS = ('rpb', 'rope_axial', 'rope_mixed', 'loope', 'none')


@dataclass(frozen=True)
class StudyGroup:
    """``configs`` (of one backbone) each run with every encoding (specs of
    ``mmpe.analysis.study.parse_encoding``; none: the configs as they are), each (encoding, seed)
    fine-tuning the checkpoint of its run of the ``pretrain`` config, if given."""
    pretrain: Optional[str]
    configs: Sequence[str]
    encodings: Sequence[str]


@dataclass(frozen=True)
class SyntheticSet:
    """A set of tools/misc/make_synthetic_data.py (``--task layout``), written to
    ``DATA_ROOT/<name>/{det,seg}``; ``env`` (the variable the configs read) names its ``kind`` part."""
    name: str
    env: str
    kind: str  # 'seg' or 'det'
    size: int  # square images, side in pixels
    num_train: int
    num_val: int
    seed: int


@dataclass(frozen=True)
class Preset:
    groups: Tuple[StudyGroup, ...]
    seeds: Tuple[int, ...]
    scales: Tuple[float, ...]
    data: Tuple[SyntheticSet, ...]
    max_jobs: int
    env: Dict[str, str] = field(default_factory=dict)  # every run's environment (threads per run)
    flops_size: Tuple[int, int] = (144, 144)


STUDY = 'configs/study/'
TRANSFER = Preset(
    groups=(
        StudyGroup(STUDY + 'pretrain_vit-tiny_layout48.py',
                   tuple(STUDY + f'transfer_{task}_vit-tiny_layout144.py' for task in ('upernet', 'fcn1x1', 'dino')),
                   VIT_STUDY_ENCODINGS),
        StudyGroup(STUDY + 'pretrain_swin-tiny_layout48.py',
                   tuple(STUDY + f'transfer_{task}_swin-tiny_layout144.py' for task in ('upernet', 'fcn1x1', 'dino')),
                   SWIN_STUDY_ENCODINGS),
    ),
    seeds=(0, 1, 2, 3, 4),
    scales=(0.5, 0.75, 1.0, 1.5, 2.0),
    data=(
        SyntheticSet('pretrain48', 'MMPE_TRANSFER_PRETRAIN', 'seg', 48, num_train=1000, num_val=50, seed=0),
        SyntheticSet('finetune144', 'MMPE_TRANSFER_SEG', 'seg', 144, num_train=200, num_val=50, seed=1),
        SyntheticSet('finetune144-det', 'MMPE_TRANSFER_DET', 'det', 144, num_train=200, num_val=20, seed=1),
    ),
    max_jobs=2,
    env={'OMP_NUM_THREADS': '1'},
)
PRESETS = {'transfer': TRANSFER}
