"""Deterministic synthetic scenes where geometry and position decide the label.

Two tasks, each written as a COCO-format detection set and as an ADE20k-layout segmentation set:

- ``task='halves'`` (the default; the CPU demos): 1-4 non-overlapping shapes (a square or a
  disk, random size and colour) on a noisy background. An object's class is its shape *and*
  the half of the image its centre lies in ('square-top', 'square-bottom', 'disk-top',
  'disk-bottom'), so a model must know where a shape is, not only what it looks like.
- ``task='layout'`` (the encoding study, ``render_layout_scene``): every length is a fraction
  of the image, so a scene rendered at 2x is the same scene with objects twice as large in
  pixels. It has two parts that test different things:

  - 1-2 squares labelled by the image *half* their centre lies in ('square-left',
    'square-right'): absolute position. All squares look alike; only where they are in the
    image decides the class.
  - exactly 2 disks, the one whose centre is further left is 'disk-left', the other
    'disk-right': relative layout. The class of a disk depends on where the *other* disk is,
    not on where it is in the image, so it needs attention between distant objects that
    knows their offset; an encoding-free (permutation-invariant) backbone sees two identical
    disks.
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
LAYOUT_DET_CLASSES = ('square-left', 'square-right', 'disk-left', 'disk-right')
LAYOUT_SEG_CLASSES = ('background',) + LAYOUT_DET_CLASSES

Scene = Tuple[np.ndarray, List[Tuple[int, Tuple[int, int, int, int]]], np.ndarray]


def render_scene(rng: np.random.Generator, height: int, width: int, max_objects: int = 4) -> Scene:
    """Draw one scene.

    Returns the image (H, W, 3) uint8, the objects as (class index in DET_CLASSES,
    (x, y, w, h) box in pixels), and the class map (H, W) uint8 with 0 = background and
    k + 1 = DET_CLASSES[k].
    """
    image = rng.normal(40, 12, size=(height, width, 3)).clip(0, 255)
    label = np.zeros((height, width), np.uint8)
    objects, taken = [], np.zeros((height, width), bool)
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
        mask = _shape_mask(shape, (x0, y0, size, size), height, width)
        bottom = int(y0 + size / 2 >= height / 2)
        cls = 2 * shape + bottom
        image[mask] = rng.integers(120, 256, size=3)
        label[mask] = cls + 1
        taken[y0:y0 + size, x0:x0 + size] = True
        objects.append((cls, (x0, y0, size, size)))
    return image.astype(np.uint8), objects, label


def _shape_mask(shape: int, box: Tuple[int, int, int, int], height: int, width: int) -> np.ndarray:
    """(H, W) bool mask of a square (shape 0) filling ``box`` (x, y, w, h) or the disk (1) inscribed in it."""
    x0, y0, w, h = box
    ys, xs = np.mgrid[:height, :width]
    if shape == 0:
        return (xs >= x0) & (xs < x0 + w) & (ys >= y0) & (ys < y0 + h)
    return (xs + 0.5 - x0 - w / 2) ** 2 + (ys + 0.5 - y0 - h / 2) ** 2 <= (w / 2) ** 2


def _layout_geometry(rng: np.random.Generator, aspect: float) -> List[Tuple[int, Tuple[float, float, float, float]]]:
    """Shapes (0 square, 1 disk) and boxes (x0, y0, w, h) in fractions of the image width and
    height, for an image of width / height ``aspect``: 2 disks then 1-2 squares, each of side
    0.2-0.3 of the image's shorter side, at least 0.02 apart, square centres at least 0.05
    from the vertical midline, disk centres at least 0.1 apart in x (so every label is
    unambiguous at any resolution). The draws do not depend on ``aspect``."""
    shapes = [1, 1] + [0] * int(rng.integers(1, 3))
    for _attempt in range(1000):
        boxes = []
        for _ in shapes:
            side = rng.uniform(0.2, 0.3)
            w, h = side * min(1.0, 1 / aspect), side * min(1.0, aspect)
            boxes.append((rng.uniform(0, 1 - w), rng.uniform(0, 1 - h), w, h))
        apart = all(a[0] + a[2] + 0.02 <= b[0] or b[0] + b[2] + 0.02 <= a[0] or
                    a[1] + a[3] + 0.02 <= b[1] or b[1] + b[3] + 0.02 <= a[1]
                    for i, a in enumerate(boxes) for b in boxes[:i])
        cx = [x0 + w / 2 for x0, _, w, _ in boxes]
        off_line = all(abs(cx[i] - 0.5) >= 0.05 for i in range(2, len(shapes)))
        if apart and off_line and abs(cx[0] - cx[1]) >= 0.1:
            return list(zip(shapes, boxes))
    raise RuntimeError('could not place the layout objects')  # does not happen with these sizes


def render_layout_scene(rng: np.random.Generator, height: int, width: int) -> Scene:
    """Draw one scene of the 'layout' task (module docstring); same return values as
    ``render_scene``, classes in LAYOUT_DET_CLASSES. The geometry is drawn first, in fractions
    of the image, so the same generator state gives the same scene at any resolution of the
    same aspect ratio, scaled (up to rounding to whole pixels)."""
    geometry = _layout_geometry(rng, width / height)
    colours = rng.integers(120, 256, size=(len(geometry), 3))
    image = rng.normal(40, 12, size=(height, width, 3)).clip(0, 255)
    label = np.zeros((height, width), np.uint8)
    disk_cx = [x0 + w / 2 for shape, (x0, _, w, _) in geometry if shape == 1]
    objects = []
    for (shape, (x0, y0, w, h)), colour in zip(geometry, colours):
        size = max(1, round(w * width))
        box = (round(x0 * width), round(y0 * height), size, size)
        if shape == 0:  # image half of the centre: 0 square-left, 1 square-right
            cls = int(x0 + w / 2 >= 0.5)
        else:  # 2 disk-left, 3 disk-right
            cls = 2 + int(x0 + w / 2 == max(disk_cx))
        mask = _shape_mask(shape, box, height, width)
        image[mask] = colour
        label[mask] = cls + 1
        objects.append((cls, box))
    return image.astype(np.uint8), objects, label


# task -> (scene renderer, detection classes)
TASKS = {'halves': (render_scene, DET_CLASSES), 'layout': (render_layout_scene, LAYOUT_DET_CLASSES)}


def get_task(task: str):
    """(scene renderer, detection classes) of ``task``; the segmentation classes are
    ('background',) + the detection classes."""
    if task not in TASKS:
        raise ValueError(f'task={task!r} is not supported; accepted: {", ".join(map(repr, TASKS))}')
    return TASKS[task]


def generate_detection_set(root: str, *, num_train: int = 200, num_val: int = 50, height: int = 256,
                           width: int = 320, seed: int = 0, task: str = 'halves') -> None:
    """Write ``root/{train,val}/*.png`` and ``root/annotations/instances_{train,val}.json`` (COCO)
    of ``task`` ('halves' or 'layout', module docstring)."""
    render, classes = get_task(task)
    categories = [dict(id=i + 1, name=name) for i, name in enumerate(classes)]
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    for split, count in (('train', num_train), ('val', num_val)):
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, annotations = [], []
        for idx in range(count):
            image, objects, _ = render(rng, height, width)
            file_name = f'{idx:06d}.png'
            Image.fromarray(image).save(osp.join(root, split, file_name))
            images.append(dict(id=idx, file_name=file_name, height=height, width=width))
            for cls, (x, y, w, h) in objects:
                annotations.append(dict(id=len(annotations) + 1, image_id=idx, category_id=cls + 1,
                                        bbox=[x, y, w, h], area=w * h, iscrowd=0))
        with open(osp.join(root, 'annotations', f'instances_{split}.json'), 'w') as f:
            json.dump(dict(images=images, annotations=annotations, categories=categories), f)


def generate_segmentation_set(root: str, *, num_train: int = 200, num_val: int = 50, height: int = 256,
                              width: int = 320, seed: int = 0, task: str = 'halves') -> None:
    """Write the ADE20k layout of ``task``: ``root/images/{training,validation}/*.jpg`` and
    ``root/annotations/{training,validation}/*.png`` (1 = background, k + 2 = the task's
    detection class k)."""
    render, _ = get_task(task)
    rng = np.random.default_rng(seed)
    for split, count in (('training', num_train), ('validation', num_val)):
        os.makedirs(osp.join(root, 'images', split), exist_ok=True)
        os.makedirs(osp.join(root, 'annotations', split), exist_ok=True)
        for idx in range(count):
            image, _, label = render(rng, height, width)
            Image.fromarray(image).save(osp.join(root, 'images', split, f'{idx:06d}.jpg'), quality=95)
            Image.fromarray(label + 1).save(osp.join(root, 'annotations', split, f'{idx:06d}.png'))
