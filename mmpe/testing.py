"""Helpers for the tests, smoke checks and benchmarks.

- Small synthetic batches and one-step checks for mmdet detectors and mmseg segmentors: build a
  model from a config, feed it a random batch through its own data preprocessor, and get losses /
  predictions.
- ``gilbert2d_reference``: the independent oracle of ``mmpe.pos_embed.gilbert_order`` (LOOPE's X_G),
  a transcription of Jakub Červený's recursive gilbert2d that shares no code with mmpe; the
  Gilbert tests compare against it and tools/analysis_tools/benchmark_gilbert.py times against it.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch


def build_model(cfg, scope: str) -> torch.nn.Module:
    """Build model config ``cfg`` with mmdet's or mmseg's MODELS (``scope``) and initialise it
    as mmengine's Runner does. ``init_weights`` is not optional: some layers (DINO's
    ``level_embed``) hold uninitialised memory until it runs."""
    import importlib
    importlib.import_module(f'{scope}.utils').register_all_modules()  # also sets the default scope
    model = importlib.import_module(f'{scope}.registry').MODELS.build(cfg)
    model.init_weights()
    return model


def det_batch(image_shapes: Sequence[Tuple[int, int, int]], num_classes: int = 80,
              num_items: Optional[Sequence[int]] = None) -> dict:
    """A random mmdet batch (uint8 images, DetDataSample with boxes and labels; ``num_items`` boxes
    per image, default 1 to 9 drawn by mmdet). ``scale_factor`` is a tuple, as mmdet's pipeline gives
    it (mmdet's demo inputs: a numpy array, which torch.compile cannot deep-copy)."""
    from mmdet.testing import demo_mm_inputs
    batch = demo_mm_inputs(batch_size=len(image_shapes), image_shapes=list(image_shapes), num_classes=num_classes,
                           num_items=None if num_items is None else list(num_items))
    for sample in batch['data_samples']:
        sample.set_metainfo(dict(scale_factor=tuple(sample.scale_factor.tolist())))
    return batch


def seg_batch(image_shapes: Sequence[Tuple[int, int, int]], num_classes: int = 150, seed: int = 0) -> dict:
    """A random mmseg batch (uint8 images, SegDataSample with a label map, 255 = ignore)."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    gen = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for c, h, w in image_shapes:
        inputs.append(torch.randint(0, 256, (c, h, w), generator=gen, dtype=torch.uint8))
        sample = SegDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w)))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, h, w), generator=gen))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def train_step(model: torch.nn.Module, batch: dict) -> Dict[str, torch.Tensor]:
    """Preprocess ``batch``, compute the losses, backpropagate their sum; returns the losses."""
    model.train()
    data = model.data_preprocessor(batch, training=True)
    losses = model(**data, mode='loss')
    total, _ = model.parse_losses(losses)
    total.backward()
    return losses


@torch.no_grad()
def predict(model: torch.nn.Module, batch: dict) -> List:
    """Preprocess ``batch`` and return the model's predictions (data samples) in eval mode."""
    model.eval()
    data = model.data_preprocessor(batch, training=False)
    return model(**data, mode='predict')


def finite_losses(losses: Dict[str, object]) -> bool:
    """True when every loss value (tensor or list of tensors) is finite."""
    values = []
    for value in losses.values():
        values += value if isinstance(value, (list, tuple)) else [value]
    return all(torch.isfinite(torch.as_tensor(v)).all() for v in values if torch.is_tensor(v))


# ----------------------------------------------------------------------------- Gilbert curve oracle

def _sgn(v):
    return (v > 0) - (v < 0)


def _generate2d(x, y, ax, ay, bx, by):
    """gilbert2d's generate2d (github.com/jakubcerveny/gilbert, gilbert2d.py): the cells (x, y) of the
    rectangle at (x, y) with major axis (ax, ay) and minor axis (bx, by), in curve order."""
    w = abs(ax + ay)
    h = abs(bx + by)
    (dax, day) = (_sgn(ax), _sgn(ay))  # unit major direction
    (dbx, dby) = (_sgn(bx), _sgn(by))  # unit orthogonal direction

    if h == 1:  # trivial row fill
        for _ in range(0, w):
            yield (x, y)
            (x, y) = (x + dax, y + day)
        return

    if w == 1:  # trivial column fill
        for _ in range(0, h):
            yield (x, y)
            (x, y) = (x + dbx, y + dby)
        return

    (ax2, ay2) = (ax // 2, ay // 2)
    (bx2, by2) = (bx // 2, by // 2)

    w2 = abs(ax2 + ay2)
    h2 = abs(bx2 + by2)

    if 2 * w > 3 * h:
        if (w2 % 2) and (w > 2):  # prefer even steps
            (ax2, ay2) = (ax2 + dax, ay2 + day)

        # long case: split in two parts only
        yield from _generate2d(x, y, ax2, ay2, bx, by)
        yield from _generate2d(x + ax2, y + ay2, ax - ax2, ay - ay2, bx, by)

    else:
        if (h2 % 2) and (h > 2):  # prefer even steps
            (bx2, by2) = (bx2 + dbx, by2 + dby)

        # standard case: one step up, one long horizontal, one step down
        yield from _generate2d(x, y, bx2, by2, ax2, ay2)
        yield from _generate2d(x + bx2, y + by2, ax, ay, bx - bx2, by - by2)
        yield from _generate2d(x + (ax - dax) + (bx2 - dbx), y + (ay - day) + (by2 - dby),
                               -bx2, -by2, -(ax - ax2), -(ay - ay2))


def gilbert2d_reference(height, width):
    """LongTensor (height, width): the 1-based step at which gilbert2d(width, height) visits each cell."""
    cells = _generate2d(0, 0, width, 0, 0, height) if width >= height else _generate2d(0, 0, 0, height, width, 0)
    cols, rows = torch.tensor(list(cells), dtype=torch.long).reshape(-1, 2).T
    order = torch.zeros(height, width, dtype=torch.long)
    order[rows, cols] = torch.arange(1, len(cols) + 1)
    return order
