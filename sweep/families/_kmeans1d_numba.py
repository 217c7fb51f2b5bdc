"""Compiled k-means initialisation in 1-D (gmm1d's ``kernel: numba``): the k-means++ seeding
of short rows and the Lloyd iterations.

:func:`kmeans_plusplus` and :func:`lloyd` return bit for bit what their numpy versions in
:mod:`sweep.families._kmeans1d` return, so that both EM kernels start from the same k-means fit.
The seeding draws its random numbers with the same numpy calls, in the same order, before the
compiled part (they do not depend on the data), and sums D**2 as numpy does (pairwise, and
cumulative sums in order). In Lloyd every cell sum is formed as
:class:`~sweep.families._kmeans1d.SortedRows` forms it (the stored block prefix sum plus the
partial block, summed as numpy's pairwise sum of a ``BLOCK``-long masked window), the centre
shift is summed in numpy's order, and a cell boundary is the count of values below a midpoint,
an exact integer however it is found. A chain that meets an empty cell (scikit-learn's
relocation, rare) is left to the numpy code, from its start: chains are independent there.
At N = 100 the numpy iterations cost about what the whole compiled EM fit does.
"""

from __future__ import annotations

import numpy as np

from sweep._numba import compile_helpers, jit
from sweep.families._kmeans1d import DENSE_SEEDING_MAX_N, KMEANS_MAX_ITER, SortedRows, prefix_block
from sweep.families._kmeans1d import kmeans_plusplus as kmeans_plusplus_numpy
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


def _psum0(a, lo, n):
    """numpy's pairwise sum of a[lo : lo + n] for n <= 128: one block."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    return _pairwise(a[lo : lo + n], n)


def _split(n):
    """Where numpy's pairwise sum splits n > 128 values: half, rounded down to a multiple of 8."""
    half = n // 2
    return half - half % 8


# numpy's recursion unrolled (numba's disk cache does not keep recursive functions): three
# levels of splits cover every n <= 512 = DENSE_SEEDING_MAX_N
def _psum1(a, lo, n):
    if n <= 128:
        return _psum0(a, lo, n)
    h = _split(n)
    return _psum0(a, lo, h) + _psum0(a, lo + h, n - h)


def _psum2(a, lo, n):
    if n <= 128:
        return _psum0(a, lo, n)
    h = _split(n)
    return _psum1(a, lo, h) + _psum1(a, lo + h, n - h)


def _psum(a, lo, n):
    """numpy's pairwise sum of a[lo : lo + n], n <= 512."""
    if n <= 128:
        return _psum0(a, lo, n)
    h = _split(n)
    return _psum2(a, lo, h) + _psum2(a, lo + h, n - h)


def _seed_rows(xs, first, u, centers):
    """Greedy k-means++ on short sorted rows, as ``_kmeans_plusplus_dense``, from its random
    numbers: first (B,) indices, u (k-1, B, trials) uniforms; unsorted centres into (B, k)."""
    b, n = xs.shape
    k, trials = centers.shape[1], u.shape[2]
    closest, cum = np.empty(n), np.empty(n)
    dist, pot, cand = np.empty((trials, n)), np.empty(trials), np.empty(trials, dtype=np.int64)
    for r in range(b):
        c0 = xs[r, first[r]]
        centers[r, 0] = c0
        for i in range(n):
            d = xs[r, i] - c0
            closest[i] = d * d
        for q in range(1, k):
            total = _psum(closest, 0, n)
            run = 0.0
            for i in range(n):
                run += closest[i]
                cum[i] = run
            for t in range(trials):
                val = u[q - 1, r, t] * total
                count = 0
                for i in range(n):
                    count += cum[i] < val
                cand[t] = min(count, n - 1)
                xc = xs[r, cand[t]]
                for i in range(n):
                    d = xs[r, i] - xc
                    d2 = d * d
                    dist[t, i] = closest[i] if closest[i] <= d2 else d2
                pot[t] = _psum(dist[t], 0, n)
            best = 0
            for t in range(1, trials):
                if pot[t] < pot[best]:
                    best = t
            for i in range(n):
                closest[i] = dist[best, i]
            centers[r, q] = xs[r, cand[best]]


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
            for j in range(k):  # cr = sorted new (insertion sort: k is small; no allocation)
                val, at = new[j], j
                while at > 0 and cr[at - 1] > val:
                    cr[at] = cr[at - 1]
                    at -= 1
                cr[at] = val
            if same or shift <= tol[r]:
                break
        _bounds(xr, cr, bounds[r])


def _pairwise_sums(a, lo, n):
    """numpy's pairwise sums of a[lo : lo + n] and of its squares, 1 <= n <= 128 (sequential
    below 8 values, else eight accumulators as :func:`_pairwise`), without forming the squares."""
    if n < 8:
        s1, s2 = a[lo], a[lo] * a[lo]
        for i in range(lo + 1, lo + n):
            s1 += a[i]
            s2 += a[i] * a[i]
        return s1, s2
    p0, p1, p2, p3, p4, p5, p6, p7 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3], a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    q0, q1, q2, q3 = p0 * p0, p1 * p1, p2 * p2, p3 * p3
    q4, q5, q6, q7 = p4 * p4, p5 * p5, p6 * p6, p7 * p7
    i = lo + 8
    while i + 8 <= lo + n:
        v0, v1, v2, v3, v4, v5, v6, v7 = a[i], a[i + 1], a[i + 2], a[i + 3], a[i + 4], a[i + 5], a[i + 6], a[i + 7]
        p0 += v0
        p1 += v1
        p2 += v2
        p3 += v3
        p4 += v4
        p5 += v5
        p6 += v6
        p7 += v7
        q0 += v0 * v0
        q1 += v1 * v1
        q2 += v2 * v2
        q3 += v3 * v3
        q4 += v4 * v4
        q5 += v5 * v5
        q6 += v6 * v6
        q7 += v7 * v7
        i += 8
    s1 = ((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7))
    s2 = ((q0 + q1) + (q2 + q3)) + ((q4 + q5) + (q6 + q7))
    while i < lo + n:
        s1 += a[i]
        s2 += a[i] * a[i]
        i += 1
    return s1, s2


def _block_sums(a, lo, n):
    """Sums of a[lo : lo + n] and of its squares as ``np.add.reduceat`` forms a segment's: its
    first value, plus numpy's pairwise sum of the others (n <= 129)."""
    s1, s2 = a[lo], a[lo] * a[lo]
    if n > 1:
        r1, r2 = _pairwise_sums(a, lo + 1, n - 1)
        s1 += r1
        s2 += r2
    return s1, s2


def _centre_rows(xs, shift, block, c1, c2):
    """xs[r] -= shift[r] in place, and the block prefix sums of the centred rows and of their
    squares into c1, c2 (B, blocks + 1), as ``SortedRows`` forms them with numpy (``reduceat``
    of each block, then ``cumsum``): one pass over the data, no (B, N) temporary."""
    b, n = xs.shape
    for r in range(b):
        row, s = xs[r], shift[r]
        for i in range(n):
            row[i] -= s
        c1[r, 0], c2[r, 0] = 0.0, 0.0
        j = 0
        for lo in range(0, n, block):
            s1, s2 = _block_sums(row, lo, min(block, n - lo))
            # cumsum: the first value as it is (a -0.0 stays -0.0), then running sums
            c1[r, j + 1] = s1 if j == 0 else c1[r, j] + s1
            c2[r, j + 1] = s2 if j == 0 else c2[r, j] + s2
            j += 1


_lloyd_compiled = jit()(_lloyd_rows)
_centre_compiled = jit()(_centre_rows)
_seed_compiled = jit()(_seed_rows)
_HELPERS = ("_pairwise", "_psum0", "_split", "_psum1", "_psum2", "_psum", "_prefix1", "_bounds", "_pairwise_sums", "_block_sums")


def sorted_rows(xs: np.ndarray, shift: np.ndarray) -> SortedRows:
    """``SortedRows(xs - shift[:, None])``, bit for bit, with xs centred in place: sorted rows
    (B, N) (C-contiguous float64, written) and their means (B,) in, one compiled pass."""
    compile_helpers(globals(), _HELPERS)
    b, n = xs.shape
    blocks = -(-n // prefix_block(n))
    c1, c2 = np.empty((b, blocks + 1)), np.empty((b, blocks + 1))
    _centre_compiled(xs, np.ascontiguousarray(shift, dtype=np.float64).reshape(b), prefix_block(n), c1, c2)
    return SortedRows.from_sums(xs, c1, c2)


def kmeans_plusplus(data: SortedRows, k: int, rng: np.random.Generator) -> np.ndarray:
    """:func:`sweep.families._kmeans1d.kmeans_plusplus`, compiled for rows of at most
    ``DENSE_SEEDING_MAX_N`` values (the numpy code above): the same random numbers and the
    same sorted (B, k) centres, bit for bit."""
    b, n = data.xs.shape
    if n > DENSE_SEEDING_MAX_N:
        return kmeans_plusplus_numpy(data, k, rng)
    compile_helpers(globals(), _HELPERS)
    trials = 2 + int(np.log(k))
    # the numpy code's draws, in its order: they do not depend on the data
    first = rng.integers(0, n, size=b)
    u = np.stack([rng.random((b, trials)) for _ in range(1, k)]) if k > 1 else np.empty((0, b, trials))
    centers = np.empty((b, k))
    _seed_compiled(data.xs, first.astype(np.int64), u, centers)
    return np.sort(centers, axis=1)


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
    compile_helpers(globals(), _HELPERS)
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
