"""Patch-grid coordinates, padding to whole patches and windows, and the generalized Hilbert
("Gilbert") order."""
from functools import lru_cache
from typing import Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .cache import table_cache

HW = Tuple[int, int]


@table_cache(maxsize=64)
def _grid_coords(height: int, width: int, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    # broadcast rows and columns (no % or // by the width: ONNX export takes no tensor % a traced size)
    x = torch.arange(width, device=device, dtype=torch.float32).expand(height, width)
    y = torch.arange(height, device=device, dtype=torch.float32)[:, None].expand(height, width)
    return x.reshape(-1), y.reshape(-1)


def padding_to_multiple(size: int, multiple: int) -> int:
    """How much to add to ``size`` to reach a multiple of ``multiple``. Floor division only: on a
    dynamic size under torch.compile, ``(-size) % multiple`` makes torch 2.14's inductor fail
    ("TensorReferenceAnalysis has no attribute python_mod")."""
    return (size + multiple - 1) // multiple * multiple - size


def pad_to_multiple(x: torch.Tensor, multiple: HW, channels_last: bool = False) -> torch.Tensor:
    """x (B, C, H, W), or (B, H, W, C) if ``channels_last``, zero-padded at the bottom and right
    to multiples of ``multiple`` (mH, mW) (the 'corner' padding of mmcv's ``AdaptivePadding``). Eager
    returns x itself when nothing is missing; torch.compile always pads (by zero rows for some
    sizes), since a branch on a dynamic size would compile one graph for each outcome."""
    h, w = x.shape[1:3] if channels_last else x.shape[2:]
    pad_h, pad_w = padding_to_multiple(h, multiple[0]), padding_to_multiple(w, multiple[1])
    if not torch.compiler.is_compiling() and not (pad_h or pad_w):
        return x
    return F.pad(x, (0, 0, 0, pad_w, 0, pad_h) if channels_last else (0, pad_w, 0, pad_h))


def crop_to_tokens(x: torch.Tensor, hw: HW) -> torch.Tensor:
    """The top-left (H, W) of a padded map x (B, H', W', C), as tokens (B, H*W, C): the inverse of
    ``pad_to_multiple``. Eager slices (a view when nothing was padded); torch.compile crops by a
    negative pad, a copy, since a slice makes dynamo guard on whether it is contiguous, i.e. on
    whether the size was padded (a graph for each outcome)."""
    if torch.compiler.is_compiling():
        x = F.pad(x, (0, 0, 0, hw[1] - x.shape[2], 0, hw[0] - x.shape[1]))
    else:
        x = x[:, :hw[0], :hw[1]]
    return x.reshape(x.shape[0], hw[0] * hw[1], x.shape[3])


def patch_embed_input(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """images (B, C, H, W) padded to whole patches (``pad_to_multiple``) for a patch-embedding
    convolution. Under torch.compile also laid out channels-last: inductor lays the convolution's
    input out so anyway, and left to inductor, torch 2.14 fixes that layout's strides to one input
    size, so backward fails at the next size ("expected size 576==576, stride 2736==3216")."""
    images = pad_to_multiple(images, (patch_size, patch_size))
    return images.contiguous(memory_format=torch.channels_last) if torch.compiler.is_compiling() else images


def grid_coords(hw: HW, device=None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Column x and row y (float32, shape (H*W,)) of each token of a row-major H x W grid, on ``device``."""
    return _grid_coords(hw[0], hw[1], torch.device(device or 'cpu'))


# Gilbert order: Jakub Červený's gilbert2d recursion, run breadth-first on numpy arrays. A rectangle is a
# column (p, da, w, db, h, first): flat index p = row * width + col of its first cell, flat unit step da and
# length w of its major axis, flat unit step db and length h of its minor axis (gilbert2d's axis vectors are
# a = da * w, b = db * h), and the 0-based curve step of its first cell.
_TILE = 16  # rectangles with both sides <= _TILE are filled from a table of their curves


def _gilbert_split(rects: np.ndarray, tile: int) -> Tuple[np.ndarray, np.ndarray]:
    """Split rectangles (6, R) with gilbert2d's rules, one recursion level for all of them at a time, until
    each is a run (one cell high: along a; else one cell wide: along b) or fits in tile x tile (tile=0: runs
    only).

    Returns the runs, int64 (4, R1): flat index of the first cell, flat unit step, length and first curve
    step; and the tiles, int64 (6, R2) rectangles.
    """
    runs, tiles = [], []
    while rects.shape[1]:
        p, da, w, db, h, first = rects
        along_a = h == 1
        is_run = along_a | (w == 1)
        is_tile = (w <= tile) & (h <= tile)
        runs.append(np.array([p, np.where(along_a, da, db), np.where(along_a, w, h), first]).compress(
            is_run & ~is_tile, axis=1))
        tiles.append(rects.compress(is_tile, axis=1))
        rects = rects.compress(~(is_run | is_tile), axis=1)
        long = 2 * rects[2] > 3 * rects[4]

        # Long rectangles: two parts along a, the first one of even length if possible. gilbert2d halves an
        # axis vector by floor division: |a // 2| = w // 2, or (w + 1) // 2 if a points backwards.
        p, da, w, db, h, first = rects.compress(long, axis=1)
        w2 = (w + (da < 0)) // 2
        w2 += (w2 % 2 == 1) & (w > 2)
        children = [[p, da, w2, db, h, first],
                    [p + w2 * da, da, w - w2, db, h, first + w2 * h]]

        # Others: up along half of b (even if possible), across along a, back down.
        p, da, w, db, h, first = rects.compress(~long, axis=1)
        w2 = (w + (da < 0)) // 2
        h2 = (h + (db < 0)) // 2
        h2 += (h2 % 2 == 1) & (h > 2)
        size_1, size_2 = h2 * w2, w * (h - h2)
        children += [[p, db, h2, da, w2, first],
                     [p + h2 * db, da, w, db, h - h2, first + size_1],
                     [p + (w - 1) * da + (h2 - 1) * db, -db, h2, -da, w - w2, first + size_1 + size_2]]
        rects = np.concatenate([np.array(child) for child in children], axis=1)
    return np.concatenate(runs, axis=1), np.concatenate(tiles, axis=1)


def _index_in_piece(sizes: np.ndarray) -> np.ndarray:
    """Index of each cell in its piece, (sum(sizes),), for pieces of the given sizes (R,) laid one after the
    other (cells of piece r: ``np.repeat(..., sizes)`` of per-piece values)."""
    return np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)


def _run_cells(runs: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Flat index and curve step of every cell of the runs (4, R) of ``_gilbert_split``."""
    start, step, length, first = runs
    k = _index_in_piece(length)
    return np.repeat(start, length) + k * np.repeat(step, length), np.repeat(first, length) + k


def _tile_type(da: np.ndarray, w: np.ndarray, db: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Index in the tile table of rectangles with both sides <= _TILE: gilbert2d's curve of a rectangle,
    as offsets along a and b from its first cell, depends only on w, h and the directions of a and b."""
    return (((w - 1) * _TILE + h - 1) * 2 + (da < 0)) * 2 + (db < 0)


@lru_cache(maxsize=1)
def _tile_curves() -> Tuple[np.ndarray, np.ndarray]:
    """Offsets (i along a, j along b) of the k-th cell of the curve of each tile type, int8 arrays
    (types * _TILE**2,) indexed by type * _TILE**2 + k: ``_gilbert_split`` of one rectangle per type, down
    to runs, in a _TILE x _TILE frame."""
    s = _TILE
    w, h, back_a, back_b = (v.ravel() for v in np.meshgrid(np.arange(1, s + 1), np.arange(1, s + 1), [0, 1], [0, 1],
                                                            indexing='ij'))
    x0, y0 = (w - 1) * back_a, (h - 1) * back_b  # first cell: a backward axis starts at the far side
    rects = np.stack([x0 + s * y0, 1 - 2 * back_a, w, s * (1 - 2 * back_b), h, np.arange(w.size) * s * s])
    cell, step = _run_cells(_gilbert_split(rects, tile=0)[0])
    local = np.zeros(w.size * s * s, dtype=np.int64)  # local cell of each step; 0 past a type's w * h cells
    local[step] = cell
    tile = np.arange(local.size) // (s * s)
    return np.abs(local % s - x0[tile]).astype(np.int8), np.abs(local // s - y0[tile]).astype(np.int8)


def gilbert_order(height: int, width: int) -> torch.LongTensor:
    """Generalized Hilbert curve over a height x width grid, starting at the top-left cell.

    Returns a LongTensor (height, width) whose entry [row, col] is the 1-based step at which
    the curve visits that cell. The curve starts along the longer side (width if
    width >= height). Built in a few milliseconds; LOOPE caches it on its device
    (``mmpe.pos_embed.absolute.gilbert_positions``).
    """
    if height < 1 or width < 1:
        raise ValueError(f'gilbert_order needs a grid of at least 1 x 1, got {height} x {width}')
    # gilbert2d(width, height): the major axis is the longer side.
    root = [0, 1, width, width, height, 0] if width >= height else [0, width, height, 1, width, 0]
    runs, tiles = _gilbert_split(np.array(root, dtype=np.int64)[:, None], _TILE)
    order = np.empty(height * width, dtype=np.int64)  # 0-based curve step of each cell, row-major
    cell, step = _run_cells(runs)
    order[cell] = step
    p, da, w, db, h, first = tiles
    size = w * h
    k = _index_in_piece(size)
    entry = np.repeat(_tile_type(da, w, db, h) * _TILE ** 2, size) + k
    i, j = (offsets[entry] for offsets in _tile_curves())
    order[np.repeat(p, size) + i * np.repeat(da, size) + j * np.repeat(db, size)] = np.repeat(first, size) + k
    return torch.from_numpy(order + 1).view(height, width)
