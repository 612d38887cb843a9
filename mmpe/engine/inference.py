"""Predictions on images: mmdet's ``DetInferencer`` or mmseg's ``MMSegInferencer`` (the config's
``default_scope`` decides, as for tools/train.py), drawn by the toolbox's own visualizer
(``DetLocalVisualizer``: boxes, labels and scores; ``SegLocalVisualizer``: the class map blended over
the image). What tools/image_demo.py runs."""
import os.path as osp
from typing import List, Optional, Sequence, Union

from mmengine.config import Config
from mmengine.infer import BaseInferencer
from mmengine.runner.checkpoint import _load_checkpoint
from mmengine.utils import scandir

from .config_names import config_file

TOOLBOXES = ('mmdet', 'mmseg')
IMAGE_SUFFIXES = ('.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp')  # mmdet's


def model_config(model: Optional[str], weights: Optional[str]) -> Config:
    """The config of ``model``: a config file or name (``'mmpe::dino/<config>.py'``), or, when
    ``model`` is None or a ``.pth`` file, the config an mmengine checkpoint holds (``meta['cfg']``,
    written by the Runner that trained it)."""
    if model is not None and not model.endswith('.pth'):
        return Config.fromfile(config_file(model))
    checkpoint = model or weights
    if checkpoint is None:
        raise ValueError('model: give a config (file or name) or a checkpoint; got neither model nor weights')
    text = _load_checkpoint(checkpoint, map_location='cpu').get('meta', {}).get('cfg')
    if text is None:
        raise ValueError(f'model: checkpoint {checkpoint} holds no config (meta["cfg"]); give the config as well')
    return Config.fromstring(text, file_format='.py')


def build_inferencer(model: Optional[str], weights: Optional[str] = None, *, device: Optional[str] = None,
                     palette: str = 'none') -> BaseInferencer:
    """mmdet's DetInferencer or mmseg's MMSegInferencer for ``model`` (see ``model_config``) with the
    checkpoint ``weights`` (a ``.pth`` given as ``model`` is both), on ``device`` (None: CUDA when
    available). ``palette``: mmdet's box colours ('none': the dataset's, else 'coco', 'voc', 'citys',
    'random'); segmentors colour by the palette saved in the checkpoint."""
    cfg = model_config(model, weights)
    if model is not None and model.endswith('.pth'):
        weights = model
    scope = cfg.get('default_scope')
    if scope == 'mmdet':
        from mmdet.apis import DetInferencer
        return DetInferencer(cfg, weights, device=device, palette=palette)
    if scope == 'mmseg':
        from mmseg.apis import MMSegInferencer
        return MMSegInferencer(cfg, weights, device=device)
    raise ValueError(f'model {model or weights}: default_scope {scope!r} names no toolbox of mmpe; '
                     f'accepted: {", ".join(TOOLBOXES)}')


def image_files(inputs: Union[str, Sequence[str]]) -> List[str]:
    """The image files of ``inputs`` (files, and the images of folders, sorted by name)."""
    files = []
    for path in [inputs] if isinstance(inputs, str) else inputs:
        if osp.isdir(path):
            files += [osp.join(path, name) for name in sorted(scandir(path, suffix=IMAGE_SUFFIXES))]
        elif osp.isfile(path):
            files.append(path)
        else:
            raise FileNotFoundError(f'inputs: no image or folder {path}')
    return files


def predict_images(inferencer: BaseInferencer, inputs: Union[str, Sequence[str]], out_dir: str, *,
                   score_thr: float = 0.3, batch_size: int = 1, save_vis: bool = True, save_pred: bool = True,
                   show: bool = False, opacity: float = 0.8, with_labels: bool = False) -> dict:
    """Predict ``inputs`` (see ``image_files``) and write what the toolbox writes under ``out_dir``:
    detectors ``vis/<image name>`` (boxes of score >= ``score_thr``) and ``preds/<image stem>.json``
    (every box); segmentors ``vis/<image name>`` (class colours blended with ``opacity``, class names
    with ``with_labels``) and ``pred/<n>_pred.png`` (class indices, the n-th image in input order).
    Returns the inferencer's results (``predictions``, ``visualization``)."""
    from mmdet.apis import DetInferencer
    files = image_files(inputs)
    if isinstance(inferencer, DetInferencer):
        return inferencer(files, batch_size=batch_size, show=show, out_dir=out_dir, pred_score_thr=score_thr,
                          no_save_vis=not save_vis, no_save_pred=not save_pred)
    # MMSegInferencer.__call__ always writes both folders under out_dir: BaseInferencer's takes them apart.
    return BaseInferencer.__call__(inferencer, files, batch_size=batch_size, show=show, opacity=opacity,
                                   with_labels=with_labels, img_out_dir=osp.join(out_dir, 'vis') if save_vis else '',
                                   pred_out_dir=osp.join(out_dir, 'pred') if save_pred else '')
