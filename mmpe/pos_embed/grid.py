"""Patch-grid coordinates and the generalized Hilbert ("Gilbert") order."""
from functools import lru_cache
from typing import Tuple

import numpy as np
import torch

from .cache import table_cache

HW = Tuple[int, int]


@table_cache(maxsize=64)
def _grid_coords(height: int, width: int, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    n = torch.arange(height * width, device=device)
    return (n % width).float(), torch.div(n, width, rounding_mode='floor').float()


def padding_to_multiple(size: int, multiple: int) -> int:
    """How much to add to ``size`` to reach a multiple of ``multiple``. Floor division only: on a
    dynamic size under torch.compile, ``(-size) % multiple`` makes torch 2.14's inductor fail
    ("TensorReferenceAnalysis has no attribute python_mod")."""
    return (size + multiple - 1) // multiple * multiple - size


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
