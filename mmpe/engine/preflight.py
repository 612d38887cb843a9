"""Pre-flight check of a train / test config before the Runner is built: dataset roots, annotation
files, image folders and checkpoints (local files, and hf:// / timm:// / URL names, which must be in
the local cache on an offline machine). ``check`` lists what is missing; ``run`` prints it as one
message (what, where it was looked for, how to get it) and exits with code 2. ``resume`` decides
what a resumed training resumes from (``mmpe.engine.checkpoints.resume_checkpoint``), or exits with
code 2 saying why no complete checkpoint can be resumed."""
import os.path as osp
import sys
from dataclasses import dataclass
from typing import Iterator, List, Optional, Tuple

from mmengine.config import Config

from ..converters import checkpoint as ckpt
from .checkpoints import ResumeError, resume_checkpoint

EXIT_CODE = 2
DATA_SOURCES = {
    'CocoDataset': 'COCO 2017 from https://cocodataset.org/#download (train2017.zip, val2017.zip, '
                   'annotations_trainval2017.zip), unpacked into data/coco/ (docs/user_guides/data.md)',
    'ADE20KDataset': 'ADEChallengeData2016.zip from http://data.csail.mit.edu/places/ADEchallenge/'
                     'ADEChallengeData2016.zip, unpacked into data/ade/ (docs/user_guides/data.md)',
}


@dataclass(frozen=True)
class Phase:
    """What one Runner entry point reads: the dataloaders it builds (each with the evaluator of its
    results, or None), and whether it initialises the model's weights from the checkpoints of
    ``init_cfg`` / ``pretrained`` (mmengine's ``Runner.train()`` does; ``Runner.test()`` does not: it
    only loads ``load_from``)."""
    loaders: Tuple[Tuple[str, Optional[str]], ...]
    init_weights: bool


PHASES = {'train': Phase((('train_dataloader', None), ('val_dataloader', 'val_evaluator')), init_weights=True),
          'test': Phase((('test_dataloader', 'test_evaluator'),), init_weights=False)}


@dataclass
class Missing:
    """One missing input: ``what`` it is, ``where`` it was looked for, ``how`` to get it."""
    what: str
    where: str
    how: str

    def __str__(self) -> str:
        return f'  - {self.what}: {self.where}\n    {self.how}'


def _leaf_datasets(dataset: dict) -> Iterator[dict]:
    """The datasets inside wrappers (ConcatDataset's ``datasets``, RepeatDataset's ``dataset`` ...)."""
    if 'datasets' in dataset:
        for d in dataset['datasets']:
            yield from _leaf_datasets(d)
    elif isinstance(dataset.get('dataset'), dict):
        yield from _leaf_datasets(dataset['dataset'])
    else:
        yield dataset


def _is_remote(path: str) -> bool:
    return '://' in path


def _dataset_missing(loader: str, dataset: dict) -> List[Missing]:
    kind = dataset.get('type', 'dataset')
    how = (f'get {DATA_SOURCES[kind]}, or ' if kind in DATA_SOURCES else '') + \
        f'point the config at your copy: --cfg-options {loader}.dataset.data_root=DIR/'
    root = dataset.get('data_root') or ''
    if _is_remote(root):
        return []
    if root and not osp.isdir(root):
        return [Missing(f'{kind} root of {loader} (data_root)', f'{osp.abspath(root)}: No such file or directory',
                        how)]
    missing = []
    ann_file = dataset.get('ann_file') or ''
    if ann_file and not _is_remote(ann_file):
        path = osp.join(root, ann_file)
        if not osp.isfile(path):
            missing.append(Missing(f'{kind} annotation file of {loader} (ann_file)',
                                   f'{osp.abspath(path)}: No such file or directory', how))
    for key, folder in (dataset.get('data_prefix') or {}).items():
        path = osp.join(root, folder)
        if folder and not _is_remote(folder) and not osp.isdir(path):
            missing.append(Missing(f'{kind} folder of {loader} (data_prefix.{key})',
                                   f'{osp.abspath(path)}: No such file or directory', how))
    return missing


def _evaluator_missing(name: str, evaluator) -> List[Missing]:
    evaluators = evaluator if isinstance(evaluator, (list, tuple)) else [evaluator]
    return [Missing(f'annotation file of {name} ({e.get("type", "metric")} ann_file)',
                    f'{osp.abspath(e["ann_file"])}: No such file or directory',
                    f'set {name}.ann_file to the annotation file of the evaluated split')
            for e in evaluators if isinstance(e, dict) and e.get('ann_file') and not _is_remote(e['ann_file'])
            and not osp.isfile(e['ann_file'])]


def config_checkpoints(model: dict) -> List[str]:
    """Every checkpoint a model config loads at init: ``init_cfg=dict(type='Pretrained', checkpoint=...)``
    and ``pretrained=...`` anywhere in it."""
    found = []

    def visit(node) -> None:
        if isinstance(node, dict):
            if node.get('type') == 'Pretrained' and isinstance(node.get('checkpoint'), str):
                found.append(node['checkpoint'])
            if isinstance(node.get('pretrained'), str):
                found.append(node['pretrained'])
            for value in node.values():
                visit(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                visit(value)
    visit(model)
    return list(dict.fromkeys(found))


def _checkpoint_missing(name: str, what: str, fetch: str) -> List[Missing]:
    try:
        if ckpt.cached_file(name) is not None:
            return []
        if not ckpt.is_named(name):
            if _is_remote(name):  # another mmengine scheme (s3://, open-mmlab://): not checked here
                return []
            return [Missing(what, f'{osp.abspath(name)}: No such file or directory',
                            'set it to an existing file, or name published weights by hf://, timm:// or URL '
                            '(docs/user_guides/weights.md)')]
        if not ckpt.offline():
            return []  # downloaded into the cache when the run starts
        return [Missing(f'{what}, not in the local cache and HF_HUB_OFFLINE=1', ckpt.cache_location(name),
                        f'fetch it on a machine with internet, into the same cache (HF_HOME / TORCH_HOME): {fetch}')]
    except ValueError as err:  # a malformed hf:// name, an unknown timm model
        return [Missing(what, name, str(err))]


def check(cfg: Config, config_file: str, phase: str) -> List[Missing]:
    """What the ``phase`` ('train' or 'test') of ``cfg`` reads (``PHASES``) and does not find."""
    if phase not in PHASES:
        raise ValueError(f'phase={phase!r}: expected one of {", ".join(map(repr, PHASES))}')
    missing = []
    for loader, evaluator in PHASES[phase].loaders:
        if loader == 'val_dataloader' and cfg.get('val_cfg') is None:
            continue
        if isinstance(cfg.get(loader), dict) and isinstance(cfg[loader].get('dataset'), dict):
            for dataset in _leaf_datasets(cfg[loader]['dataset']):
                missing += _dataset_missing(loader, dataset)
        if evaluator and cfg.get(evaluator):
            missing += _evaluator_missing(evaluator, cfg[evaluator])
    if PHASES[phase].init_weights:
        fetch = f'{ckpt.FETCH_TOOL} {config_file}'
        for name in config_checkpoints(cfg.get('model', {})):
            missing += _checkpoint_missing(name, f'pretrained checkpoint {name}', fetch)
    if cfg.get('load_from') and not (phase == 'train' and cfg.get('resume')):  # resumed: ``resume`` checks it
        missing += _checkpoint_missing(cfg.load_from, f'checkpoint to load (load_from) {cfg.load_from}',
                                       ckpt.fetch_command(cfg.load_from))
    return missing


def run(cfg: Config, config_file: str, phase: str) -> None:
    """``check``; when something is missing, print one message to stderr and exit with code 2."""
    missing = check(cfg, config_file, phase)
    if missing:
        print(f'{config_file}: cannot start, {len(missing)} input(s) missing (nothing was run):\n' +
              '\n'.join(map(str, missing)), file=sys.stderr)
        sys.exit(EXIT_CODE)


def resume(cfg: Config, config_file: str) -> None:
    """For a resumed training (``cfg.resume``; ``cfg.load_from`` is ``--resume PATH``, or None to resume
    from the work dir's ``last_checkpoint``): set ``cfg.load_from`` to the complete checkpoint to resume
    from (None on a first start: nothing to resume), or print why there is none and exit with code 2."""
    if not cfg.get('resume'):
        return
    try:
        cfg.load_from = resume_checkpoint(cfg.work_dir, cfg.get('load_from'))
    except ResumeError as err:
        print(f'{config_file}: {err} (nothing was run)', file=sys.stderr)
        sys.exit(EXIT_CODE)
