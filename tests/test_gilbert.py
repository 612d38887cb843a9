"""gilbert_order against a transcription of Jakub Červený's recursive gilbert2d, and the curve properties of
docs/design.md section 3 (LOOPE X_G)."""
import pytest
import torch

from mmpe.pos_embed import gilbert_order


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


SMALL = [(h, w) for h in range(1, 41) for w in range(1, 41)]
LARGE = [(200, 336), (336, 200), (97, 513), (1, 700), (700, 1), (2, 301), (127, 128)]


@pytest.fixture(scope='module')
def orders():
    return {hw: gilbert_order(*hw) for hw in SMALL + LARGE}


@pytest.mark.parametrize('height', range(1, 41))
def test_gilbert_order_matches_gilbert2d_small(orders, height):
    for width in range(1, 41):
        order = orders[height, width]
        assert order.shape == (height, width) and order.dtype == torch.long
        assert torch.equal(order, gilbert2d_reference(height, width)), (height, width)


@pytest.mark.parametrize('hw', LARGE)
def test_gilbert_order_matches_gilbert2d_large(orders, hw):
    assert torch.equal(orders[hw], gilbert2d_reference(*hw))


def test_gilbert_order_is_a_curve(orders):
    """A permutation of 1 .. N from the top-left cell whose consecutive cells touch: 4-neighbours, except for
    at most one diagonal step (some odd-by-even shapes need it)."""
    for (height, width), order in orders.items():
        n = height * width
        assert torch.equal(order.flatten().sort().values, torch.arange(1, n + 1)), (height, width)
        path = torch.empty(n, 2, dtype=torch.long)  # (row, col) of the cell visited at each step
        path[order.flatten() - 1] = torch.stack(torch.meshgrid(torch.arange(height), torch.arange(width),
                                                               indexing='ij')).flatten(1).T
        assert path[0].tolist() == [0, 0], (height, width)
        step = (path[1:] - path[:-1]).abs()
        diagonal = (step == 1).all(1)
        assert bool(((step.sum(1) == 1) | diagonal).all()), (height, width)
        assert int(diagonal.sum()) <= 1, (height, width)


def test_gilbert_order_runs_along_the_longer_side(orders):
    """The recursion starts along the width if width >= height, else along the height: the curve of an
    H x W grid with H > W is the W x H curve transposed."""
    for (height, width), order in orders.items():
        if height > width:
            assert torch.equal(order, orders[width, height].T), (height, width)


@pytest.mark.parametrize('height, width', [(0, 5), (5, 0), (-1, 3), (0, 0)])
def test_gilbert_order_rejects_empty_grid(height, width):
    with pytest.raises(ValueError, match='at least 1 x 1'):
        gilbert_order(height, width)
