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

'transfer-ms' is issue 32's: the same pretraining, then fine-tuning as users train, with the random resize
and crop of mmseg's ADE20k pipeline (segmentation) and of mmdet's DINO pipeline (detection)
(configs/study/transfer-ms_*.py); DINOv3's own RoPE (centred coordinates with its rescale augmentation) as
a ViT encoding; the test-time resolution options of index-trained RoPE (``pos_embed.scaling``, evaluation
variants at 1.5x and 2x); and the Swin investigation, under both protocols: PESwinTransformer with
``mask_padding=True``, and mmdet's own SwinTransformer through the same pretraining, fine-tuning and
evaluation (single size). Its data sets are those of 'transfer' plus a detection set with 100 validation
images (the first 20 are 'transfer''s).
"""
from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence, Tuple

VIT_STUDY_ENCODINGS = ('ape', 'sincos', 'rope_axial', 'rope_mixed',
                       "rope_mixed interpolate={'type': 'rope_mixed', 'coords': 'interpolate'}", 'rope_mixed+ape',
                       'loope', 'none')
SWIN_STUDY_ENCODINGS = ('rpb', 'rope_axial', 'rope_mixed', 'loope', 'none')


@dataclass(frozen=True)
class EvalVariant:
    """One more evaluation of each trained run whose encoding is one of ``encodings`` (their names, as
    ``parse_encoding`` gives them): eval_multires.py at ``scales`` of the run's config with ``cfg`` merged in
    (a setting a trained model switches at test time, e.g. ``model.backbone.pos_embed.scaling``), written as
    ``RUN/config_<name>.py`` and evaluated into ``RUN/multires_<name>/``, tabulated as the encoding
    '<encoding> +<name>'."""
    name: str
    encodings: Tuple[str, ...]
    cfg: dict = field(hash=False)
    scales: Tuple[float, ...] = ()


@dataclass(frozen=True)
class StudyGroup:
    """``configs`` (of one backbone) each run with every encoding (specs of
    ``mmpe.analysis.study.parse_encoding``; none: the configs as they are), each (encoding, seed)
    fine-tuning the checkpoint of its run of the ``pretrain`` config, if given; ``variants``: more
    evaluations of the trained runs (``EvalVariant``); ``scales``: the group's own test scales (the study's
    ``--scales`` do not change them), if not the study's."""
    pretrain: Optional[str]
    configs: Sequence[str]
    encodings: Sequence[str]
    variants: Tuple[EvalVariant, ...] = ()
    scales: Tuple[float, ...] = ()


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
# issue 32 (module docstring): the test-time options of the ViT's index-trained RoPE, on the 18 x 18 patch grid of
# 144 px fine-tuning (multi-scale fine-tuning crops 144 px too)
MS_VARIANTS = tuple(
    EvalVariant(kind, encodings, dict(model=dict(backbone=dict(pos_embed=dict(scaling=dict(type=kind,
                                                                                        train_grid=(18, 18)))))),
                (1.5, 2.0))
    for kind, encodings in (('linear', ('rope_axial', 'rope_mixed')), ('ntk', ('rope_axial', )),
                            ('yarn', ('rope_axial', 'rope_mixed'))))
VIT_MS_ENCODINGS = ('ape', 'rope_axial', 'rope_mixed',
                    "rope_mixed interpolate={'type': 'rope_mixed', 'coords': 'interpolate'}",
                    "rope_dinov3 rescale2={'type': 'rope_axial', 'theta': 100.0, 'coords': 'centered', "
                    "'pairing': 'half', 'axes': 'yx', 'coord_aug': {'rescale': 2.0}}")
VIT_DINO_ENCODINGS = VIT_MS_ENCODINGS[:4]
SWIN_MS_ENCODINGS = ('rpb', 'rope_axial', 'rope_mixed')
SWIN_PADDING_ENCODINGS = ('rpb', 'rope_axial')
DINO_SCALES = (0.5, 1.0, 2.0)  # a DINO evaluation of 100 images at 1.5x costs about as much as its training
PRETRAIN_VIT, PRETRAIN_SWIN = STUDY + 'pretrain_vit-tiny_layout48.py', STUDY + 'pretrain_swin-tiny_layout48.py'
TRANSFER_MS = Preset(
    groups=(
        StudyGroup(PRETRAIN_VIT, tuple(STUDY + f'transfer-ms_{t}_vit-tiny_layout144.py' for t in ('upernet', 'fcn1x1')),
                   VIT_MS_ENCODINGS, MS_VARIANTS),
        StudyGroup(PRETRAIN_VIT, (STUDY + 'transfer-ms_dino_vit-tiny_layout144.py', ), VIT_DINO_ENCODINGS,
                   scales=DINO_SCALES),
        StudyGroup(PRETRAIN_SWIN, tuple(STUDY + f'transfer-ms_{t}_swin-tiny_layout144.py'
                                        for t in ('upernet', 'fcn1x1')), SWIN_MS_ENCODINGS),
        StudyGroup(PRETRAIN_SWIN, (STUDY + 'transfer-ms_dino_swin-tiny_layout144.py', ), SWIN_MS_ENCODINGS,
                   scales=DINO_SCALES),
        # the Swin investigation (UperNet, where the single-size collapse was probed): padding masked under both
        # protocols, the unmasked single-size runs to compare with, and mmdet's SwinTransformer
        StudyGroup(PRETRAIN_SWIN, (STUDY + 'transfer-ms_upernet_swin-tiny-maskpad_layout144.py',
                                   STUDY + 'transfer_upernet_swin-tiny-maskpad_layout144.py',
                                   STUDY + 'transfer_upernet_swin-tiny_layout144.py'), SWIN_PADDING_ENCODINGS),
        StudyGroup(STUDY + 'pretrain_mmdet-swin-tiny_layout48.py',
                   (STUDY + 'transfer_upernet_mmdet-swin-tiny_layout144.py', ), ()),
    ),
    seeds=(0, 1, 2, 3, 4),
    scales=(0.5, 0.75, 1.0, 1.5, 2.0),
    data=TRANSFER.data[:2] + (
        SyntheticSet('finetune144-det-val100', 'MMPE_TRANSFER_DET', 'det', 144, num_train=200, num_val=100, seed=1),),
    max_jobs=2,
    env={'OMP_NUM_THREADS': '1'},
)
PRESETS = {'transfer': TRANSFER, 'transfer-ms': TRANSFER_MS}
