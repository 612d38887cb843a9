"""gilbert_order against a transcription of Jakub Červený's recursive gilbert2d (``mmpe.testing``), and the
curve properties of docs/design.md section 3 (LOOPE X_G)."""
import pytest
import torch

from mmpe.pos_embed import gilbert_order
from mmpe.testing import gilbert2d_reference

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
