"""Small synthetic batches and one-step checks for mmdet detectors and mmseg segmentors.

Used by the tests and by smoke checks: build a model from a config, feed it a random batch
through its own data preprocessor, and get losses / predictions.
"""
from typing import Dict, List, Sequence, Tuple

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


def det_batch(image_shapes: Sequence[Tuple[int, int, int]], num_classes: int = 80) -> dict:
    """A random mmdet batch (uint8 images, DetDataSample with boxes and labels)."""
    from mmdet.testing import demo_mm_inputs
    return demo_mm_inputs(batch_size=len(image_shapes), image_shapes=list(image_shapes), num_classes=num_classes)


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
