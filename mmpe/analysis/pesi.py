"""PESI metrics of the LOOPE paper (docs/design.md section 9): how monotone and how symmetric the
similarity of positions is around each cell of an H x W grid.

A similarity A has shape (H, W, H, W): A[x, y, i, j] compares cell (x, y) with cell (i, j)
(x, i rows; y, j columns). ``pesi(table)`` uses the cosine similarity of the rows of a position
table (H, W, D); ``pesi_from_similarity(sim)`` takes any similarity, e.g. a RoPE kernel
(``mmpe.analysis.rope_kernel``), so both go through the same metric code.

Per centre (x, y), every cell (the centre included) has a radius r = round(distance) and an
angle bucket k = floor(atan2(j - y, i - x) / (2 pi / N)) mod N (the centre: atan2(0, 0) = 0,
bucket 0):

- M_U = mean over centres of 1 - Spearman(r, mu(r)), mu(r) the mean similarity of radial bin r.
  2 when similarity falls strictly with the radius everywhere, 0 when it strictly rises.
- M_D = mean over centres of 1 - (mean over the N buckets of Spearman(distance, similarity)
  over the bucket's cells); a bucket with fewer than 2 cells or an undefined correlation
  (constant distance or similarity) counts as 0.
- A_SU = mean over centres of the mean over radial bins (r = 0 included) of std / mean of the
  bin's similarities (population std). A bin whose mean similarity is 0 gives inf or nan
  (reported, not hidden); near-zero means make A_SU large, of either sign.

An undefined Spearman correlation in M_U (one radial bin, or mu constant) also counts as 0.
Similarities within ``TIE_TOLERANCE`` (1e-6) of each other (in sorted order) tie when ranked,
so values that are equal mathematically but differ by float noise (about 1e-7 for float32
tables) tie; ties get average ranks, as in scipy.stats.spearmanr. Computed in float64 with
numpy, vectorised over centres (a 14x14 grid takes about 25 ms).
"""
import math
from typing import Dict

import numpy as np
import torch

TIE_TOLERANCE = 1e-6


def _as_float64(a) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu().double().numpy()
    return np.asarray(a, dtype=np.float64)


def cosine_similarity_map(table) -> np.ndarray:
    """Cosine similarity of the rows of a position table (H, W, D), torch or numpy ->
    (H, W, H, W) float64 numpy array."""
    t = _as_float64(table)
    if t.ndim != 3:
        raise ValueError(f'table must have shape (H, W, D), got {t.shape}')
    h, w, d = t.shape
    flat = t.reshape(h * w, d)
    norms = np.linalg.norm(flat, axis=1)
    if not (norms > 0).all():
        cells = [divmod(int(n), w) for n in np.flatnonzero(~(norms > 0))[:5]]
        raise ValueError(f'table has zero (or non-finite) rows at (row, col) {cells}: cosine similarity undefined')
    unit = flat / norms[:, None]
    return (unit @ unit.T).reshape(h, w, h, w)


def _group_ranks(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """1-based ranks of values (C, M) among the entries of the same row and group; a run of
    values whose neighbours (in sorted order) differ by at most ``TIE_TOLERANCE`` ties and gets
    its average rank."""
    c, m = values.shape
    order = np.lexsort((values, groups), axis=-1)  # by group, then value, per row
    v, g = np.take_along_axis(values, order, -1), np.take_along_axis(groups, order, -1)
    position = np.broadcast_to(np.arange(m), (c, m))
    group_start = np.ones((c, m), dtype=bool)
    group_start[:, 1:] = g[:, 1:] != g[:, :-1]
    run_start = group_start.copy()
    run_start[:, 1:] |= v[:, 1:] - v[:, :-1] > TIE_TOLERANCE
    rank = position - np.maximum.accumulate(np.where(group_start, position, 0), axis=1) + 1
    run = (np.cumsum(run_start, axis=1) - 1 + np.arange(c)[:, None] * m).ravel()
    mean_rank = np.bincount(run, weights=rank.ravel().astype(np.float64)) / np.maximum(np.bincount(run), 1)
    ranks = np.empty((c, m))
    np.put_along_axis(ranks, order, mean_rank[run].reshape(c, m), -1)
    return ranks


def _grouped_spearman(a: np.ndarray, b: np.ndarray, groups: np.ndarray, num_groups: int) -> np.ndarray:
    """Spearman correlation of a and b (C, M) within each (row, group); groups (C, M) in
    [0, num_groups), or -1 for entries to leave out. Returns (C, num_groups), 0 where a group
    has fewer than 2 entries or a constant a or b."""
    ra, rb = _group_ranks(a, groups), _group_ranks(b, groups)
    c = a.shape[0]
    keep = groups >= 0
    index = (np.arange(c)[:, None] * num_groups + groups)[keep]

    def group_sum(w):
        return np.bincount(index, weights=w[keep], minlength=c * num_groups).reshape(c, num_groups)

    n = group_sum(np.ones_like(ra))
    sa, sb = group_sum(ra), group_sum(rb)
    # n * sum of squares - square of sum: exact in float64 (ranks are multiples of 1/2).
    var_a, var_b = n * group_sum(ra * ra) - sa * sa, n * group_sum(rb * rb) - sb * sb
    cov = n * group_sum(ra * rb) - sa * sb
    defined = (n >= 2) & (var_a > 0) & (var_b > 0)
    return np.where(defined, cov / np.sqrt(np.where(defined, var_a * var_b, 1.0)), 0.0)


def pesi_from_similarity(similarity, num_buckets: int = 60) -> Dict[str, float]:
    """PESI metrics of a similarity (H, W, H, W) (torch or numpy): {'M_U', 'M_D', 'A_SU'}.

    ``num_buckets``: N, the angle buckets of M_D (60 in the paper).
    """
    if isinstance(num_buckets, bool) or not isinstance(num_buckets, int) or num_buckets < 1:
        raise ValueError(f'num_buckets must be a positive int, got {num_buckets!r}')
    sim = _as_float64(similarity)
    if sim.ndim != 4 or sim.shape[:2] != sim.shape[2:]:
        raise ValueError(f'similarity must have shape (H, W, H, W), got {sim.shape}')
    if not np.isfinite(sim).all():
        raise ValueError('similarity has non-finite values')
    h, w = sim.shape[:2]
    n = h * w
    sim = sim.reshape(n, n)
    rows, cols = np.divmod(np.arange(n), w)
    d_row, d_col = rows[None, :] - rows[:, None], cols[None, :] - cols[:, None]  # (centre, cell): i - x, j - y
    dist2 = d_row ** 2 + d_col ** 2
    radius = np.rint(np.sqrt(dist2)).astype(np.int64)  # sqrt of an integer is never k + 1/2: no rounding ties
    centres = np.arange(n)[:, None]

    # Radial bins: mean (M_U) and coefficient of variation (A_SU).
    num_bins = int(radius.max()) + 1
    bin_index = (centres * num_bins + radius).ravel()
    counts = np.bincount(bin_index, minlength=n * num_bins).reshape(n, num_bins)
    present = counts > 0
    mean = np.bincount(bin_index, weights=sim.ravel(), minlength=n * num_bins).reshape(n, num_bins)
    mean = mean / np.maximum(counts, 1)
    deviation = sim - mean[centres, radius]
    std = np.sqrt(np.bincount(bin_index, weights=(deviation ** 2).ravel(),
                              minlength=n * num_bins).reshape(n, num_bins) / np.maximum(counts, 1))
    radii = np.broadcast_to(np.arange(num_bins, dtype=np.float64), (n, num_bins))
    rho_u = _grouped_spearman(radii, mean, np.where(present, 0, -1), 1)[:, 0]
    with np.errstate(divide='ignore', invalid='ignore'):
        cv = np.where(present, std / mean, 0.0)
    a_su = (cv.sum(1) / present.sum(1)).mean()

    # Angle buckets (M_D). Angles on a bucket boundary (up to float error) go to the bucket
    # that starts there.
    position = np.arctan2(d_col, d_row) * num_buckets / (2 * math.pi)
    nearest = np.rint(position)
    position = np.where(np.abs(position - nearest) < 1e-9, nearest, position)
    bucket = np.floor(position).astype(np.int64) % num_buckets
    rho_d = _grouped_spearman(dist2.astype(np.float64), sim, bucket, num_buckets)
    return {'M_U': float((1 - rho_u).mean()), 'M_D': float((1 - rho_d.mean(1)).mean()), 'A_SU': float(a_su)}


def pesi(table, num_buckets: int = 60) -> Dict[str, float]:
    """PESI metrics {'M_U', 'M_D', 'A_SU'} of a position table (H, W, D), torch or numpy,
    from the cosine similarity of its rows. ``num_buckets``: angle buckets of M_D."""
    return pesi_from_similarity(cosine_similarity_map(table), num_buckets)
