"""Quantile machinery for batches of 1-D distributions (mixtures, KDEs), vectorised over chains.

In 1-D, W2**2 = int_0^1 (F^-1(u) - G^-1(u))**2 du, an integral over quantile functions.

* :func:`mixture_quantile` solves F(q) = p for Gaussian mixtures by safeguarded Newton inside
  the bracket [min_j q_j(p), max_j q_j(p)] of the component quantiles (F is a weighted mean of
  the component CDFs, so its p-quantile lies between theirs).
* :func:`w2_mixtures` (Gaussian mixtures, whose densities are known): each side's CDF and
  density are tabulated on its own grid, a fixed standardised grid placed on every component
  (:func:`mixture_grid`), so a narrow component is resolved at its own scale however far it
  sits from the others. The quantile function is the monotone cubic Hermite interpolant in u
  with the exact slopes 1 / f (:func:`quantile_pieces`), and the integral of the squared
  difference of the two piecewise cubics is done exactly on the merged set of both sides'
  levels (:func:`w2_from_pieces`). Steep quantile functions (modes separated by gaps, where a
  u-grid would need to be extremely fine) cost nothing extra, the truth is tabulated once for
  all chains, and the error is O(step**4).
  The KDE family uses the same pieces for its FFT-tabulated CDF and density.
"""

from __future__ import annotations

import numpy as np
from scipy import special

# Grids reach this many component standard deviations beyond the outermost means: the mass
# left outside is below 1e-18.
GRID_SDS = 9.0
# how much denser than even spacing mixture_grid is in the bulk (see there)
_GRID_STRETCH = 2.0


def w2_unit(tw, tm, tv):
    """The power of two nearest the spread of the true mixtures (R, k): the largest of their
    component sds and of their means' distances to the overall mean.

    The W2 functions work in this unit: the cubic integrals of :func:`w2_from_pieces` multiply
    up to four quantile slopes, which overflow for distributions of scale ~1e145 and more. Dividing
    by a power of two is exact (barring subnormals), so results are bit for bit unchanged for
    truths of moderate scale (a unit of 1 for spreads in [0.71, 1.41)) and scale exactly.
    """
    centre = (tw * tm).sum(axis=1, keepdims=True)
    with np.errstate(over="ignore", invalid="ignore"):
        spread = np.max(np.maximum(np.sqrt(tv), np.abs(tm - centre)))
    return float(2.0 ** np.clip(np.round(np.log2(spread)), -1000, 1000)) if np.isfinite(spread) else 1.0


def mixture_cdf(x, w, m, sd, *, upper=False):
    """CDF (or survival function if ``upper``) at x (R, M) of mixtures (R, k); (R, M)."""
    out = np.zeros(np.broadcast_shapes(x.shape, w[:, :1].shape))
    for j in range(w.shape[1]):
        z = (x - m[:, j, None]) / sd[:, j, None]
        out += w[:, j, None] * special.ndtr(-z if upper else z)
    return out


def mixture_pdf(x, w, m, sd):
    """Density at x (R, M) of mixtures (R, k); (R, M)."""
    out = np.zeros(np.broadcast_shapes(x.shape, w[:, :1].shape))
    for j in range(w.shape[1]):
        z = (x - m[:, j, None]) / sd[:, j, None]
        out += (w[:, j, None] / (sd[:, j, None] * np.sqrt(2.0 * np.pi))) * np.exp(-0.5 * z * z)
    return out


def mixture_quantile(p, w, m, v, *, max_iter=100):
    """Quantiles (R, P) at levels p (P,) in (0, 1) of mixtures (R, k), to ~1e-12 relative."""
    p = np.asarray(p, dtype=np.float64)[None, :]
    sd = np.sqrt(v)
    comp = m[:, :, None] + sd[:, :, None] * special.ndtri(p)[:, None, :]
    lo, hi = comp.min(axis=1), comp.max(axis=1)
    x = 0.5 * (lo + hi)
    for _ in range(max_iter):
        f = mixture_cdf(x, w, m, sd) - p
        lo = np.where(f < 0, x, lo)
        hi = np.where(f < 0, hi, x)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = x - f / mixture_pdf(x, w, m, sd)
        ok = (newton > lo) & (newton < hi)
        x_new = np.where(ok, newton, 0.5 * (lo + hi))
        if np.all(np.abs(x_new - x) <= 1e-13 * (1.0 + np.abs(x))):
            return x_new
        x = x_new
    return x


def _rows_take(arr, idx):
    # arr[r, idx[r, j]] through one flat take (take_along_axis builds slow fancy indices)
    return arr.ravel().take(idx + (np.arange(arr.shape[0]) * arr.shape[1])[:, None])


def grid_steps(per_component):
    """The standardised points t (per_component,) of :func:`mixture_grid`."""
    s = np.linspace(-1.0, 1.0, per_component)
    return GRID_SDS * np.sinh(_GRID_STRETCH * s) / np.sinh(_GRID_STRETCH)


def mixture_grid(w, m, v, per_component):
    """Sorted grid (R, k * per_component) on which to tabulate mixtures (R, k): the points
    m_j + t sd_j for ``per_component`` values of t in [-9, 9], for every component (so a narrow
    component is resolved at its own scale wherever it sits).

    The t are 9 sinh(2 s) / sinh(2) for s evenly spaced in [-1, 1]: 1.8x denser than even
    spacing in the bulk and 2x sparser in the far tails. The cubic interpolation error of a
    Gaussian quantile grows like |t|**3 step**4 in x while the mass it weighs falls like
    phi(t), so the error of W2**2 comes from |t| ~ 1-3; this spacing cut it 3x at equal cost.
    """
    t = grid_steps(per_component)
    grid = (m[:, :, None] + np.sqrt(v)[:, :, None] * t).reshape(len(m), -1)
    # each component's points are already sorted: a stable sort merges k runs in linear time
    return _rows_take(grid, np.argsort(grid, axis=1, kind="stable"))


def quantile_pieces(grid, cdf, pdf):
    """The quantile function of a distribution tabulated on a grid, as cubic pieces in u.

    Piece i + 1 covers [F_i, F_i+1]: x_i + c1 t + c2 t**2 + c3 t**3 with t = u - F_i, the cubic
    Hermite interpolant with the exact slopes 1 / f at both ends, so its error is O(step**4).
    Where the slopes would make it overshoot (the Fritsch-Carlson condition alpha**2 + beta**2
    > 9, e.g. across a gap between separated narrow components) and on flat segments, the piece
    is the linear interpolant (the only monotone choice there). Piece 0 is the constant x_0
    (below the first tabulated level) and the last piece is the constant x_M-1.

    Parameters
    ----------
    grid, cdf, pdf : (R, M) increasing points, CDF and density at them.

    Returns
    -------
    (5, R, M + 1) planes: x_i, F_i, c1, c2, c3 of every piece.
    """
    levels = np.maximum.accumulate(np.clip(cdf, 0.0, 1.0), axis=-1)
    planes = np.zeros((5,) + grid.shape[:-1] + (grid.shape[-1] + 1,))
    planes[0, ..., 1:], planes[1, ..., 1:] = grid, levels
    planes[0, ..., 0], planes[1, ..., 0] = grid[..., 0], levels[..., 0]
    dx, du = np.diff(grid, axis=-1), np.diff(levels, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # a segment holding a subnormal sliver of mass (a collapsed component far away) has no
        # usable slope: treat it as flat (0 * inf would be NaN)
        sloped = du > dx * 1e-290
        secant = np.where(sloped, dx / du, 0.0)
        alpha = 1.0 / (pdf[..., :-1] * secant)  # end slopes relative to the secant
        beta = 1.0 / (pdf[..., 1:] * secant)
        cubic = sloped & (alpha * alpha + beta * beta <= 9.0)
        m0 = np.where(cubic, secant * alpha, secant)
        m1 = np.where(cubic, secant * beta, secant)
        planes[2, ..., 1:-1] = m0
        planes[3, ..., 1:-1] = np.where(cubic, (3.0 * secant - 2.0 * m0 - m1) / du, 0.0)
        planes[4, ..., 1:-1] = np.where(cubic, (m0 + m1 - 2.0 * secant) / (du * du), 0.0)
    return planes


def _taylor_at(planes, piece, u):
    """Value and the next three Taylor coefficients at levels u of the pieces ``piece`` (flat
    indices into the planes' last two axes)."""
    x, level, c1, c2, c3 = (plane.take(piece) for plane in planes.reshape(5, -1))
    t = u - level
    return (x + t * (c1 + t * (c2 + t * c3)), c1 + t * (2.0 * c2 + 3.0 * t * c3), c2 + 3.0 * t * c3, c3)


def w2_from_pieces(planes_a, planes_b):
    """W2**2 (R,) between two batches of piecewise cubic quantile functions.

    The integral of (Q_a(u) - Q_b(u))**2 over u in (0, 1) is exact: on the merged set of both
    sides' levels, each side is a single cubic between consecutive levels, so the difference is
    a cubic e0 + e1 s + e2 s**2 + e3 s**3 and its square integrates in closed form.

    Parameters
    ----------
    planes_a, planes_b : (5, R, Ma + 1), (5, R, Mb + 1) from :func:`quantile_pieces`; either
        may have a single row, shared by every row of the other.
    """
    r = max(planes_a.shape[1], planes_b.shape[1])
    ma, mb = planes_a.shape[2] - 1, planes_b.shape[2] - 1
    levels = np.concatenate(
        [np.broadcast_to(planes_a[1, :, 1:], (r, ma)), np.broadcast_to(planes_b[1, :, 1:], (r, mb))], axis=1
    )
    order = np.argsort(levels, axis=1, kind="stable")  # merges two sorted runs: linear time
    u = _rows_take(levels, order)
    # piece of each side in force from each merged level on: the count of its levels so far
    # (ties: a's level first, either order gives the same integral)
    count_a = np.cumsum(order < ma, axis=1)[:, :-1]
    count_b = np.arange(1, ma + mb) - count_a
    rows = np.arange(r)[:, None]
    start, width = u[:, :-1], np.diff(u, axis=1)
    qa = _taylor_at(planes_a, count_a + rows * (ma + 1) * (planes_a.shape[1] > 1), start)
    qb = _taylor_at(planes_b, count_b + rows * (mb + 1) * (planes_b.shape[1] > 1), start)
    e0, e1, e2, e3 = (ca - cb for ca, cb in zip(qa, qb))
    h = width
    s = e2 * e3 / 3.0 + h * (e3 * e3 / 7.0)
    s = (e2 * e2 + 2.0 * e1 * e3) / 5.0 + h * s
    s = (e0 * e3 + e1 * e2) / 2.0 + h * s
    s = (e1 * e1 + 2.0 * e0 * e2) / 3.0 + h * s
    s = e0 * e1 + h * s
    s = e0 * e0 + h * s
    return (h * s).sum(axis=1)


def mixture_pieces(w, m, v, per_component=65):
    """:func:`quantile_pieces` (5, R, M + 1) of mixtures (R, k), tabulated on their
    :func:`mixture_grid` with their exact CDFs and densities."""
    grid = mixture_grid(w, m, v, per_component)
    sd = np.sqrt(v)
    return quantile_pieces(grid, mixture_cdf(grid, w, m, sd), mixture_pdf(grid, w, m, sd))


# rows per chunk: about this many merged levels, so the temporaries stay in cache (measured:
# 2**14 ran 2x faster than 2**17 on a 1 MiB L2)
CHUNK_LEVELS = 1 << 14


def w2_mixtures(w_a, m_a, v_a, w_b, m_b, v_b, per_component=65, *, kernel="numpy"):
    """W2 (R,) between two batches of mixtures, (R, k) arrays each; either side may be a
    single row (one mixture, e.g. the truth, shared by every row of the other side).

    Each side's quantile function is the monotone cubic interpolant of its CDF tabulated on
    its own :func:`mixture_grid` (:func:`quantile_pieces`), and W2**2 between the interpolants is
    integrated exactly (:func:`w2_from_pieces`). The error is the interpolation error only,
    O(step**4): below 2e-4 at the default 65 points per component, also for collapsed
    components (sd 1e-4) and tiny weights, and ~1e-5 between mixtures close to each other.

    ``kernel="numba"`` computes the same pieces and integral one row at a time in a compiled
    loop (:mod:`sweep.families._quantiles1d_numba`, several times faster) when one side is
    shared; the results differ from numpy's by rounding only.
    """
    r = max(len(w_a), len(w_b))
    if kernel == "numba" and min(len(w_a), len(w_b)) == 1 and r > 1:
        from sweep.families._quantiles1d_numba import w2_rows_against

        if len(w_a) == 1:  # W2 is symmetric: the shared side goes second
            w_a, m_a, v_a, w_b, m_b, v_b = w_b, m_b, v_b, w_a, m_a, v_a
        shared = mixture_pieces(w_b, m_b, v_b, per_component)
        return w2_rows_against(w_a, m_a, v_a, shared, grid_steps(per_component))
    shared_a = mixture_pieces(w_a, m_a, v_a, per_component) if len(w_a) == 1 else None
    shared_b = mixture_pieces(w_b, m_b, v_b, per_component) if len(w_b) == 1 else None
    levels = per_component * (w_a.shape[1] + w_b.shape[1])
    step = max(1, CHUNK_LEVELS // levels)
    out = np.empty(r)
    for r0 in range(0, r, step):
        sl = slice(r0, min(r0 + step, r))
        pa = shared_a if shared_a is not None else mixture_pieces(w_a[sl], m_a[sl], v_a[sl], per_component)
        pb = shared_b if shared_b is not None else mixture_pieces(w_b[sl], m_b[sl], v_b[sl], per_component)
        out[sl] = np.sqrt(np.maximum(w2_from_pieces(pa, pb), 0.0))
    return out
