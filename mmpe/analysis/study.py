"""The encoding study's shared parts: encodings by name, run metadata, test-time rescaling of a
config, the multi-scale evaluation of a checkpoint (tools/analysis_tools/eval_multires.py), and the
outputs of a run directory (read by mmpe.analysis.results and mmpe.analysis.study_runner).

A run directory (one training of one config, encoding and seed) holds mmengine's training
outputs (checkpoints, ``<timestamp>/vis_data/scalars.json``) and ``multires/`` from
eval_multires.py: ``multires.csv`` (one row per test scale), ``run.json`` (backbone, encoding,
seed, config) and ``config.py`` (the evaluated config at scale 1).
"""
import ast
import copy
import csv
import json
import math
import numbers
import os
import os.path as osp
import time
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.dist import is_main_process

from ..engine.launch import build_runner, launched_as_main, tta_config
from ..pos_embed import ENCODING_PRESETS
from .progress import Item, Progress
from .report import pyplot, write_table


def parse_encoding(spec: str) -> Tuple[str, dict]:
    """(name, pos_embed dict) of a preset name ('rope_mixed+ape') or of ``NAME=DICT`` with DICT a
    JSON or Python dict literal, e.g. ``"rope_mixed interpolate={'type': 'rope_mixed', 'coords': 'interpolate'}"``."""
    if '=' not in spec:
        if spec not in ENCODING_PRESETS:
            raise ValueError(f'encoding {spec!r} is not a preset (accepted: {", ".join(ENCODING_PRESETS)}); '
                             f'give NAME=DICT for any other pos_embed, e.g. "mine={{\'type\': \'rope_mixed\'}}"')
        return spec, dict(ENCODING_PRESETS[spec])
    name, literal = (s.strip() for s in spec.split('=', 1))
    try:
        value = json.loads(literal)
    except json.JSONDecodeError:
        try:
            value = ast.literal_eval(literal)
        except (ValueError, SyntaxError):
            value = None
    if not name or not isinstance(value, dict) or 'type' not in value:
        raise ValueError(f'encoding {spec!r} must be a preset name or NAME=DICT with a pos_embed dict that has a '
                         f"'type' key (JSON or Python literal)")
    return name, value


def encoding_name(pos_embed: dict) -> str:
    """The preset name of a pos_embed dict, else ``type(key=value, ...)``."""
    for name, preset in ENCODING_PRESETS.items():
        if preset == pos_embed:
            return name
    extra = ', '.join(f'{k}={v!r}' for k, v in sorted(pos_embed.items()) if k != 'type')
    return f'{pos_embed.get("type")}({extra})' if extra else str(pos_embed.get('type'))


def run_info(cfg) -> Dict:
    """backbone, encoding and seed of a run's config: its ``study`` dict (set by
    compare_encodings.py and the configs/study/ files) where given, else the backbone type, the
    encoding name of ``model.backbone.pos_embed`` and ``randomness.seed``."""
    study = cfg.get('study') or {}
    backbone = cfg.model.get('backbone', {})
    pos_embed = backbone.get('pos_embed')
    return dict(backbone=study.get('backbone', backbone.get('type', '?')),
                encoding=study.get('encoding', encoding_name(dict(pos_embed)) if pos_embed else 'default'),
                seed=study.get('seed', (cfg.get('randomness') or {}).get('seed')))


# ----------------------------------------------------------------------------- test-time scale

def _scaled(value, scale: float):
    if isinstance(value, (int, float)):
        return type(value)(round(value * scale)) if isinstance(value, int) else value * scale
    return type(value)(_scaled(v, scale) for v in value)


def scale_test_cfg(cfg, scale: float):
    """A copy of ``cfg`` whose test images are ``scale`` times the size the config tests at.

    The test pipeline's one resize transform (``scale`` or ``scale_factor``) is multiplied by
    ``scale``; a pipeline without one gets ``Resize(scale_factor=scale, keep_ratio=True)`` right
    after image loading (before the annotations, so the metric compares at the original size,
    as mmdet/mmseg test pipelines do). An mmseg ``slide`` test crop and stride are scaled too.
    At scale 1 the config is returned unchanged.
    """
    if not scale > 0:
        raise ValueError(f'scale must be positive, got {scale!r}')
    cfg = copy.deepcopy(cfg)
    if scale == 1:
        return cfg
    dataset = cfg.test_dataloader.dataset
    pipeline = dataset.get('pipeline')
    if pipeline is None:
        raise ValueError('test_dataloader.dataset has no pipeline to rescale (wrapped datasets are not supported)')
    types = [t['type'].split('.')[-1] for t in pipeline]
    if 'TestTimeAug' in types:
        raise ValueError('test pipelines with TestTimeAug are not supported: evaluate one scale at a time')
    resizes = [i for i, t in enumerate(types) if t.endswith('Resize')]
    if len(resizes) > 1:
        raise ValueError(f'test pipeline has {len(resizes)} resize transforms {[types[i] for i in resizes]}; '
                         f'expected at most one')
    if resizes:
        resize = pipeline[resizes[0]]
        key = 'scale' if resize.get('scale') is not None else 'scale_factor'
        if resize.get(key) is None:
            raise ValueError(f'test resize {dict(resize)} has neither scale nor scale_factor')
        resize[key] = _scaled(resize[key], scale)
    else:
        loads = [i for i, t in enumerate(types) if t.startswith('LoadImage')]
        if not loads:
            raise ValueError(f'test pipeline {types} has no resize and no LoadImage* transform to insert one after')
        pipeline.insert(loads[0] + 1, dict(type='Resize', scale_factor=scale, keep_ratio=True))
    test_cfg = cfg.model.get('test_cfg') or {}
    if test_cfg.get('mode') == 'slide':
        test_cfg['crop_size'] = _scaled(test_cfg['crop_size'], scale)
        test_cfg['stride'] = _scaled(test_cfg['stride'], scale)
    return cfg


def clean_metrics(metrics: Dict) -> Dict[str, float]:
    """Numeric metrics as floats; CocoMetric's -1 ("no object in this size range") becomes NaN."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, numbers.Real) and not isinstance(value, bool):  # numpy scalars too
            out[key] = math.nan if key.startswith('coco/') and value == -1 else float(value)
    return out


# ----------------------------------------------------------------------------- run outputs

MULTIRES = 'multires'
TTA = 'tta'  # the scale of multires.csv's multi-scale + flip row (eval_multires.py --tta)


def find_runs(paths: Sequence[str]) -> List[str]:
    """Run directories (those with ``multires/multires.csv``) at or below each path, sorted."""
    runs = set()
    for path in paths:
        if not osp.isdir(path):
            raise ValueError(f'work dir {path!r} does not exist')
        for root, dirs, files in os.walk(path):
            if osp.basename(root) == MULTIRES and 'multires.csv' in files:
                runs.add(osp.dirname(root))
                dirs.clear()
    return sorted(runs)


def run_evaluations(run_dir: str) -> List[str]:
    """The evaluation directories of a run: ``multires/``, then the ``multires_<variant>/`` of its evaluation
    variants (``mmpe.analysis.transfer.EvalVariant``) that hold a ``multires.csv``, sorted."""
    variants = sorted(d for d in os.listdir(run_dir) if d.startswith(MULTIRES + '_')
                      and osp.isfile(osp.join(run_dir, d, 'multires.csv')))
    return [osp.join(run_dir, d) for d in [MULTIRES, *variants]]


def read_csv(path: str) -> List[Dict]:
    """Rows of a CSV written by ``write_table``; numbers as floats, empty cells as NaN."""
    with open(path, newline='') as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        for key, value in row.items():
            try:
                row[key] = float(value) if value != '' else math.nan
            except ValueError:
                pass
    return rows


def train_speed(run_dir: str) -> Dict[str, float]:
    """Median training seconds per iteration (mmengine's logged ``time``, first logged window
    excluded as warm-up when there are more) and peak memory in MB (mmengine logs ``memory``
    on CUDA only; NaN otherwise), from every ``*/vis_data/scalars.json`` of the run."""
    times, memory = [], []
    for stamp in sorted(os.listdir(run_dir)):
        path = osp.join(run_dir, stamp, 'vis_data', 'scalars.json')
        if not osp.isfile(path):
            continue
        with open(path) as f:
            logs = [json.loads(line) for line in f if line.strip()]
        train = [log for log in logs if 'time' in log and 'loss' in log]
        times += [log['time'] for log in (train[1:] if len(train) > 1 else train)]
        memory += [log['memory'] for log in train if 'memory' in log]
    return dict(s_per_iter=sorted(times)[len(times) // 2] if times else math.nan,
                memory_mb=max(memory) if memory else math.nan)


# ----------------------------------------------------------------------------- multi-scale evaluation

def plot_metrics(rows: List[Dict], path: str, title: str) -> None:
    """One panel per metric, against scale (the 'tta' row is not a scale: not drawn)."""
    rows = [row for row in rows if row['scale'] != TTA]
    plt = pyplot()
    metrics = [k for k in rows[0] if k != 'scale']
    cols = min(3, len(metrics))
    nrows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3 * nrows), squeeze=False)
    scales = [row['scale'] for row in rows]
    for ax, metric in zip(axes.flat, metrics):
        ax.plot(scales, [row[metric] for row in rows], marker='o')
        ax.axvline(1.0, color='grey', linestyle=':', linewidth=1)
        ax.set_title(metric, fontsize='small')
        ax.set_xlabel('test scale')
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis('off')
    fig.suptitle(title, fontsize='small')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def tta_views(cfg) -> int:
    """Views per test image of the test pipeline's TestTimeAug transforms (the product of the numbers of
    choices of each step; 1 without one)."""
    return math.prod(len(choices) for transform in cfg.test_dataloader.dataset.pipeline
                     if transform['type'].split('.')[-1] == 'TestTimeAug' for choices in transform['transforms'])


def evaluate_scales(cfg, *, config: str, checkpoint: str, scales: Sequence[float], tta: bool = False,
                    out: Optional[str] = None) -> List[Dict]:
    """eval_multires.py: test ``checkpoint`` with ``cfg`` (the loaded ``config`` file) at every test scale
    (``scale_test_cfg``; one mmengine Runner per scale) and, with ``tta``, with the config's test-time
    augmentation as tools/test.py --tta runs it (the row 'tta'; a config without one fails before testing).
    The main process writes to ``out`` (default WORK_DIR/multires): multires.md/.csv (a row per scale,
    a column per metric), multires.png, run.json (``run_info``, config and checkpoint paths) and config.py
    (the config at scale 1). Returns the rows.

    The main process shows the progress of the evaluations (``mmpe.analysis.progress``); the ETA counts an
    evaluation at scale s as s ** 2 times one at scale 1 (pixels), the 'tta' row as one per view (``tta_views``)."""
    augmented = tta_config(cfg, config) if tta else None
    out = out or osp.join(cfg.work_dir, MULTIRES)
    stamp = time.strftime('%Y%m%d_%H%M%S')
    items = [Item(f'scale {scale:g}', work=scale ** 2) for scale in scales]
    items += [Item(TTA, work=tta_views(augmented))] if augmented is not None else []
    rows = []
    with Progress('eval_multires', items, unit='evaluations', show=launched_as_main(cfg.get('launcher', 'none'))) \
            as progress:
        for scale in progress.track(scales):
            scaled = scale_test_cfg(cfg, scale)
            scaled.load_from = checkpoint
            scaled.work_dir = osp.join(out, f'scale_{scale:g}')
            scaled.experiment_name = f'multires_{stamp}_scale_{scale:g}'  # one logger/visualizer per runner
            metrics = build_runner(scaled).test()
            rows.append(dict(scale=scale, **clean_metrics(metrics)))
        if augmented is not None:
            progress.start(len(scales))
            augmented.load_from = checkpoint
            augmented.work_dir = osp.join(out, TTA)
            augmented.experiment_name = f'multires_{stamp}_{TTA}'
            rows.append(dict(scale=TTA, **clean_metrics(build_runner(augmented).test())))
            progress.finish(len(scales))
    if not is_main_process():
        return rows
    info = dict(run_info(cfg), config=osp.abspath(config), checkpoint=osp.abspath(checkpoint))
    os.makedirs(out, exist_ok=True)
    cfg.dump(osp.join(out, 'config.py'))
    with open(osp.join(out, 'run.json'), 'w') as f:
        json.dump(info, f, indent=1)
    title = f'{info["backbone"]} / {info["encoding"]} / seed {info["seed"]}: metrics vs test scale'
    plot_metrics(rows, osp.join(out, 'multires.png'), title)
    print(write_table(rows, osp.join(out, 'multires'), title))  # last: multires.csv marks the run evaluated
    return rows
