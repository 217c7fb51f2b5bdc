"""Compiled Lloyd iterations of the 1-D k-means initialisation (gmm1d's ``kernel: numba``).

:func:`lloyd` returns bit for bit what :func:`sweep.families._kmeans1d.lloyd` returns, so that
both EM kernels start from the same k-means fit: every cell sum is formed as
:class:`~sweep.families._kmeans1d.SortedRows` forms it (the stored block prefix sum plus the
partial block, summed as numpy's pairwise sum of a ``BLOCK``-long masked window), the centre
shift is summed in numpy's order, and a cell boundary is the count of values below a midpoint,
an exact integer however it is found. A chain that meets an empty cell (scikit-learn's
relocation, rare) is left to the numpy code, from its start: chains are independent there.
At N = 100 the numpy iterations cost about what the whole compiled EM fit does.
"""

from __future__ import annotations

import numpy as np

from sweep._numba import jit
from sweep.families._em1d_numba import compile_helpers
from sweep.families._kmeans1d import KMEANS_MAX_ITER, SortedRows
from sweep.families._kmeans1d import lloyd as lloyd_numpy


def _pairwise(w, n):
    """numpy's pairwise sum of w[:n] for 8 <= n <= 128 (eight accumulators, then the rest)."""
    r0, r1, r2, r3, r4, r5, r6, r7 = w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]
    i = 8
    while i + 8 <= n:
        r0 += w[i]
        r1 += w[i + 1]
        r2 += w[i + 2]
        r3 += w[i + 3]
        r4 += w[i + 4]
        r5 += w[i + 5]
        r6 += w[i + 6]
        r7 += w[i + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += w[i]
        i += 1
    return res


def _prefix1(xs, c1, block, idx, win):
    """Sum of the first idx sorted values, as ``SortedRows.prefix1``."""
    n = xs.shape[0]
    blk = idx // block
    start = blk * block
    for lane in range(block):
        v = xs[min(start + lane, n - 1)]
        win[lane] = v if lane < idx - start else v * 0.0  # numpy's masked value: a signed 0
    return c1[blk] + _pairwise(win, block)


def _bounds(xs, centers, bnd):
    """Cell boundaries of sorted centres, as ``SortedRows.bounds``: equal centres after the
    first get empty cells (their lower boundary pushed up to the next one)."""
    k, n = centers.shape[0], xs.shape[0]
    bnd[0], bnd[k] = 0, n
    nxt = np.inf
    for j in range(k - 2, -1, -1):
        mid = np.inf if centers[j + 1] == centers[j] else 0.5 * (centers[j + 1] + centers[j])
        nxt = mid if mid < nxt else nxt
        lo, hi = 0, n  # count of values < nxt (a left bisection)
        while lo < hi:
            m = (lo + hi) >> 1
            if xs[m] < nxt:
                lo = m + 1
            else:
                hi = m
        bnd[j + 1] = lo


def _lloyd_rows(xs, c1, block, centers, tol, max_iter, bounds, fallback):
    """Lloyd from sorted centres (B, k), updated in place; final boundaries into bounds;
    fallback[r] set for the chains that met an empty cell (centres then left as they were)."""
    b, k = centers.shape
    bnd, prev = np.empty(k + 1, dtype=np.int64), np.empty(k + 1, dtype=np.int64)
    new, p1, win = np.empty(k), np.empty(k + 1), np.empty(block)
    for r in range(b):
        xr, cr = xs[r], centers[r]
        prev[:] = -1
        for _ in range(max_iter):
            _bounds(xr, cr, bnd)
            empty = False
            for j in range(k + 1):
                p1[j] = _prefix1(xr, c1[r], block, bnd[j], win)
            for j in range(k):
                cnt = float(bnd[j + 1] - bnd[j])
                empty = empty or cnt == 0.0
                new[j] = (p1[j + 1] - p1[j]) / max(cnt, 1.0)
            if empty:
                fallback[r] = True
                break
            shift = 0.0
            for j in range(k):
                d = new[j] - cr[j]
                shift += d * d
            same = True
            for j in range(k + 1):
                same = same and prev[j] == bnd[j]
                prev[j] = bnd[j]
            cr[:] = np.sort(new)
            if same or shift <= tol[r]:
                break
        _bounds(xr, cr, bounds[r])


_lloyd_compiled = jit()(_lloyd_rows)


def _rows_of(data: SortedRows, rows: np.ndarray) -> SortedRows:
    """The chains ``rows`` of data, with their stored prefix sums (not recomputed: the same
    bits whatever numpy's reduction order for a smaller array)."""
    sub = object.__new__(SortedRows)
    sub.__dict__.update(data.__dict__)
    sub.xs, sub.c1, sub.c2 = data.xs[rows], data.c1[rows], data.c2[rows]
    return sub


def lloyd(data: SortedRows, centers: np.ndarray, tol: np.ndarray, max_iter: int = KMEANS_MAX_ITER):
    """:func:`sweep.families._kmeans1d.lloyd`, compiled: the same (centres, boundaries), bit
    for bit."""
    compile_helpers(globals(), ("_pairwise", "_prefix1", "_bounds"))
    b, k = centers.shape
    out = np.array(centers, dtype=np.float64, order="C")
    bounds = np.empty((b, k + 1), dtype=np.int64)
    fallback = np.zeros(b, dtype=np.bool_)
    c1 = np.ascontiguousarray(data.c1)
    _lloyd_compiled(
        data.xs, c1, data.BLOCK, out, np.ascontiguousarray(tol, dtype=np.float64), max_iter, bounds, fallback
    )
    if fallback.any():
        rows = np.flatnonzero(fallback)
        out[rows], bounds[rows] = lloyd_numpy(_rows_of(data, rows), centers[rows], tol[rows], max_iter)
    return out, bounds.astype(np.intp)
