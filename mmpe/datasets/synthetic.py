"""Deterministic synthetic scenes where geometry and position decide the label.

Each image shows 1-4 non-overlapping shapes (a square or a disk, random size and colour) on a
noisy background. An object's class is its shape *and* the half of the image its centre lies
in ('square-top', 'square-bottom', 'disk-top', 'disk-bottom'), so a model must know where a
shape is, not only what it looks like. The same scenes are written as a COCO-format detection
set and as an ADE20k-layout segmentation set.
"""
import json
import os
import os.path as osp
from typing import List, Tuple

import numpy as np
from PIL import Image

DET_CLASSES = ('square-top', 'square-bottom', 'disk-top', 'disk-bottom')
# ADE20k layout with reduce_zero_label=True: 0 in the annotation is "ignore", k is class k-1.
SEG_CLASSES = ('background',) + DET_CLASSES


def render_scene(rng: np.random.Generator, height: int, width: int, max_objects: int = 4
                 ) -> Tuple[np.ndarray, List[Tuple[int, Tuple[int, int, int, int]]], np.ndarray]:
    """Draw one scene.

    Returns the image (H, W, 3) uint8, the objects as (class index in DET_CLASSES,
    (x, y, w, h) box in pixels), and the class map (H, W) uint8 with 0 = background and
    k + 1 = DET_CLASSES[k].
    """
    image = rng.normal(40, 12, size=(height, width, 3)).clip(0, 255)
    label = np.zeros((height, width), np.uint8)
    objects, taken = [], np.zeros((height, width), bool)
    ys, xs = np.mgrid[:height, :width]
    min_size, max_size = max(8, min(height, width) // 10), max(12, min(height, width) // 4)
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _attempt in range(20):
            size = int(rng.integers(min_size, max_size + 1))
            x0 = int(rng.integers(0, width - size + 1))
            y0 = int(rng.integers(0, height - size + 1))
            if not taken[max(0, y0 - 2):y0 + size + 2, max(0, x0 - 2):x0 + size + 2].any():
                break
        else:
            continue
        shape = int(rng.integers(0, 2))  # 0 square, 1 disk
        if shape == 0:
            mask = (xs >= x0) & (xs < x0 + size) & (ys >= y0) & (ys < y0 + size)
        else:
            r = size / 2
            mask = (xs + 0.5 - x0 - r) ** 2 + (ys + 0.5 - y0 - r) ** 2 <= r * r
        bottom = int(y0 + size / 2 >= height / 2)
        cls = 2 * shape + bottom
        image[mask] = rng.integers(120, 256, size=3)
        label[mask] = cls + 1
        taken[y0:y0 + size, x0:x0 + size] = True
        objects.append((cls, (x0, y0, size, size)))
    return image.astype(np.uint8), objects, label


def generate_detection_set(root: str, num_train: int = 200, num_val: int = 50, height: int = 256,
                           width: int = 320, seed: int = 0) -> None:
    """Write ``root/{train,val}/*.png`` and ``root/annotations/instances_{train,val}.json`` (COCO)."""
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    categories = [dict(id=i + 1, name=name) for i, name in enumerate(DET_CLASSES)]
    for split, count in (('train', num_train), ('val', num_val)):
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, annotations = [], []
        for idx in range(count):
            image, objects, _ = render_scene(rng, height, width)
            file_name = f'{idx:06d}.png'
            Image.fromarray(image).save(osp.join(root, split, file_name))
            images.append(dict(id=idx, file_name=file_name, height=height, width=width))
            for cls, (x, y, w, h) in objects:
                annotations.append(dict(id=len(annotations) + 1, image_id=idx, category_id=cls + 1,
                                        bbox=[x, y, w, h], area=w * h, iscrowd=0))
        with open(osp.join(root, 'annotations', f'instances_{split}.json'), 'w') as f:
            json.dump(dict(images=images, annotations=annotations, categories=categories), f)


def generate_segmentation_set(root: str, num_train: int = 200, num_val: int = 50, height: int = 256,
                              width: int = 320, seed: int = 0) -> None:
    """Write the ADE20k layout: ``root/images/{training,validation}/*.jpg`` and
    ``root/annotations/{training,validation}/*.png`` (1 = background, 2..5 = DET_CLASSES)."""
    rng = np.random.default_rng(seed)
    for split, count in (('training', num_train), ('validation', num_val)):
        os.makedirs(osp.join(root, 'images', split), exist_ok=True)
        os.makedirs(osp.join(root, 'annotations', split), exist_ok=True)
        for idx in range(count):
            image, _, label = render_scene(rng, height, width)
            Image.fromarray(image).save(osp.join(root, 'images', split, f'{idx:06d}.jpg'), quality=95)
            Image.fromarray(label + 1).save(osp.join(root, 'annotations', split, f'{idx:06d}.png'))
