"""An independent reference for the W2 tests: the linear-interpolation method on a common grid.

Both quantile functions are the linear interpolants of CDFs tabulated on one grid; between two
consecutive merged levels {F(x_i)} U {G(x_i)} both are linear in u, so the integral of the
squared difference is (du / 3) (d0**2 + d0 d1 + d1**2). Each quantile function is off by less
than one grid step wherever it is evaluated, and by O(step**2) where the density is smooth. Apart
from a row gather it shares no code with the cubic pieces of sweep.families._quantiles1d, so on a
fine grid it checks them from outside (it was the package's own method before 0.2.0).
"""

from __future__ import annotations

import numpy as np

from sweep.families._quantiles1d import _rows_take


def _segments(grid, cdf):
    """(R, M, 3) table of x_i, F_i and the inverse slope of segment [i, i+1] (0 after the last
    point and on flat segments), so that a quantile is x_i + (u - F_i) * slope_i."""
    table = np.empty(grid.shape + (3,))
    table[..., 0], table[..., 1] = grid, cdf
    dx, df = np.diff(grid, axis=1), np.diff(cdf, axis=1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # A segment holding a subnormal sliver of mass (a collapsed component far away) would
        # give an infinite slope and 0 * inf = NaN; such a segment carries no mass: slope 0.
        table[:, :-1, 2] = np.where(df > dx * 1e-290, dx / df, 0.0)
    table[:, -1, 2] = 0.0
    return table.reshape(-1, 3)


def _quantile_at(u, last, table):
    # last: index of the last tabulated level <= u (-1 below the first: clamp to x_0);
    # one gather of (x, F, slope) triples instead of three gathers
    r, m = u.shape[0], table.shape[0] // u.shape[0]
    seg = table.take(np.maximum(last, 0) + (np.arange(r) * m)[:, None], axis=0)
    return seg[..., 0] + np.maximum(u - seg[..., 1], 0.0) * seg[..., 2]


def w2_from_cdfs(grid, cdf_a, cdf_b):
    """2-Wasserstein distance (R,) between distributions with CDFs tabulated on a grid.

    Parameters
    ----------
    grid : (R, M) or (M,) increasing grid points.
    cdf_a, cdf_b : (R, M) CDF values on the grid; the grid must hold (almost) all the mass of
        both distributions, mass outside it is ignored.
    """
    r, m = cdf_a.shape
    grid = np.broadcast_to(grid, cdf_a.shape)
    a = np.maximum.accumulate(np.clip(cdf_a, 0.0, 1.0), axis=1)
    b = np.maximum.accumulate(np.clip(cdf_b, 0.0, 1.0), axis=1)
    levels = np.concatenate([a, b], axis=1)
    order = np.argsort(levels, axis=1, kind="stable")  # merges two sorted runs: linear time
    u = _rows_take(levels, order)
    last_a = np.cumsum(order < m, axis=1) - 1
    last_b = np.arange(2 * m) - 1 - last_a
    d = _quantile_at(u, last_a, _segments(grid, a)) - _quantile_at(u, last_b, _segments(grid, b))
    d0, d1 = d[:, :-1], d[:, 1:]
    w2sq = (np.diff(u, axis=1) * (d0 * d0 + d0 * d1 + d1 * d1)).sum(axis=1) / 3.0
    return np.sqrt(np.maximum(w2sq, 0.0))
