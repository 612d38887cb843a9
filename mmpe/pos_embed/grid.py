"""Patch-grid coordinates and the generalized Hilbert ("Gilbert") order."""
from functools import lru_cache, wraps
from typing import Iterator, Tuple

import torch

HW = Tuple[int, int]


def cache_builder(fn):
    """Decorate a function whose tensors go into a cache: they are built as ordinary tensors
    (even when first requested under ``torch.inference_mode``) without autograd history, so a
    table first made during evaluation can also serve a later training step."""
    @wraps(fn)
    def build(*args, **kwargs):
        with torch.inference_mode(False), torch.no_grad():
            return fn(*args, **kwargs)
    return build


@lru_cache(maxsize=64)
@cache_builder
def _grid_coords_cpu(height: int, width: int) -> Tuple[torch.Tensor, torch.Tensor]:
    n = torch.arange(height * width)
    return (n % width).float(), torch.div(n, width, rounding_mode='floor').float()


def grid_coords(hw: HW, device=None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Column x and row y (float32, shape (H*W,)) of each token of a row-major H x W grid."""
    x, y = _grid_coords_cpu(int(hw[0]), int(hw[1]))
    return x.to(device), y.to(device)


def _sign(v: int) -> int:
    return (v > 0) - (v < 0)


def _gilbert(x: int, y: int, ax: int, ay: int, bx: int, by: int) -> Iterator[Tuple[int, int]]:
    """Cells (x, y) of the rectangle spanned from (x, y) by major axis a and minor axis b."""
    w, h = abs(ax + ay), abs(bx + by)
    dax, day = _sign(ax), _sign(ay)
    dbx, dby = _sign(bx), _sign(by)
    if h == 1:
        for i in range(w):
            yield x + i * dax, y + i * day
        return
    if w == 1:
        for i in range(h):
            yield x + i * dbx, y + i * dby
        return
    ax2, ay2, bx2, by2 = ax // 2, ay // 2, bx // 2, by // 2
    if 2 * w > 3 * h:
        # Long rectangle: split along the major axis into two halves, preferring even steps.
        if abs(ax2 + ay2) % 2 and w > 2:
            ax2, ay2 = ax2 + dax, ay2 + day
        yield from _gilbert(x, y, ax2, ay2, bx, by)
        yield from _gilbert(x + ax2, y + ay2, ax - ax2, ay - ay2, bx, by)
    else:
        # Standard case: up along the minor axis, across, and back down.
        if abs(bx2 + by2) % 2 and h > 2:
            bx2, by2 = bx2 + dbx, by2 + dby
        yield from _gilbert(x, y, bx2, by2, ax2, ay2)
        yield from _gilbert(x + bx2, y + by2, ax, ay, bx - bx2, by - by2)
        yield from _gilbert(x + (ax - dax) + (bx2 - dbx), y + (ay - day) + (by2 - dby),
                            -bx2, -by2, -(ax - ax2), -(ay - ay2))


@lru_cache(maxsize=64)
@cache_builder
def gilbert_order(height: int, width: int) -> torch.LongTensor:
    """Generalized Hilbert curve over a height x width grid, starting at the top-left cell.

    Returns a LongTensor (height, width) whose entry [row, col] is the 1-based step at which
    the curve visits that cell. The curve starts along the longer side (width if
    width >= height). Cached per shape; treat the result as read-only.
    """
    if height < 1 or width < 1:
        raise ValueError(f'gilbert_order needs a grid of at least 1 x 1, got {height} x {width}')
    cells = _gilbert(0, 0, width, 0, 0, height) if width >= height else _gilbert(0, 0, 0, height, width, 0)
    cols, rows = torch.tensor(list(cells), dtype=torch.long).unbind(1)
    order = torch.empty(height, width, dtype=torch.long)
    order[rows, cols] = torch.arange(1, height * width + 1)
    return order
