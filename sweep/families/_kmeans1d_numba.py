"""Compiled k-means initialisation in 1-D (gmm1d's ``kernel: numba``): the centred sorted rows
with their prefix sums, the k-means++ seeding, the Lloyd iterations and the cell sums that seed EM.

:func:`sorted_rows`, :func:`kmeans_plusplus`, :func:`lloyd` and :func:`cells` return bit for bit
what their numpy versions in :mod:`sweep.families._kmeans1d` return, so that both EM kernels start
from the same k-means fit. The block prefix sums are formed as ``np.add.reduceat`` forms a
segment's sum (its first value plus numpy's pairwise sum of the rest) and then ``np.cumsum``.
The seeding draws its random numbers with the same numpy calls, in the same order, before the
compiled part (they do not depend on the data): on short rows it sums D**2 as numpy's explicit
code does (pairwise, and cumulative sums in order); on rows longer than ``DENSE_SEEDING_MAX_N``
it follows numpy's prefix-sum code step for step (cell potentials, the cumulative D**2 at every
block start, the draw's block and then its entry, the trial potentials summed in numpy's order).
Every cell sum is formed as :class:`~sweep.families._kmeans1d.SortedRows` forms it (the stored
block prefix sum plus the partial block, summed as numpy's pairwise sum of a ``BLOCK``-long
masked window), the centre shift is summed in numpy's order, and a cell boundary is the count of
values below a midpoint, an exact integer however it is found. A Lloyd chain that meets an empty
cell (scikit-learn's relocation, rare) is left to the numpy code, from its start: chains are
independent there. At N = 100 the numpy iterations cost about what the whole compiled EM fit
does.
"""

from __future__ import annotations

import numpy as np

from sweep._numba import compile_helpers, jit
from sweep.families._kmeans1d import DENSE_SEEDING_MAX_N, KMEANS_MAX_ITER, SortedRows, prefix_block
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


def _prefix12(xs, c1, c2, block, idx, win):
    """Sums of the first idx sorted values and of their squares, as ``SortedRows.prefix12``
    (the masked window's squares are (v * 0) ** 2 = +0, as numpy's)."""
    n = xs.shape[0]
    blk = idx // block
    start = blk * block
    for lane in range(block):
        v = xs[min(start + lane, n - 1)]
        win[0, lane] = v if lane < idx - start else v * 0.0
        win[1, lane] = win[0, lane] * win[0, lane]
    return c1[blk] + _pairwise(win[0], block), c2[blk] + _pairwise(win[1], block)


def _potential(cnt, s1, s2, c):
    """``_kmeans1d._potential``: sum over a cell of (x - c)**2 from its sums, clipped at 0."""
    p = cnt * c * c - 2.0 * c * s1 + s2
    return p if p >= 0.0 else 0.0


def _d2_draw(xs, c1, c2, block, q, cen, bnd, cum0, g, val, win):
    """One index of ``_kmeans1d._d2_sample`` (the same comparisons on the same sums): the cell
    of val in the cumulative cell potentials cum0, the last block start in that cell whose
    cumulative D**2 (g) is below val, then D**2 accumulated over that block's entries."""
    n = xs.shape[0]
    j = 0
    for i in range(q - 1):
        j += cum0[i + 1] < val
    before, lo, hi, c = cum0[j], bnd[j], bnd[j + 1], cen[j]
    pos = -1
    for i in range(g.shape[0]):
        t = min(i * block, n)
        if t > lo and t <= hi and g[i] < val:
            pos = i
    m = min(pos * block, n) if pos >= 0 else lo
    run = 0.0
    target = val - before
    count = 0
    g_start = g[pos] - before if pos >= 0 else 0.0
    for lane in range(block):
        at = m + lane
        d = xs[min(at, n - 1)] - c
        d2 = d * d if at < hi else 0.0
        run = d2 if lane == 0 else run + d2  # np.cumsum, then g_start added to each
        count += g_start + run < target
    return min(min(m + count, hi - 1), n - 1)


def _seed_sorted_rows(xs, c1, c2, block, first, u, centers):
    """Greedy k-means++ on long sorted rows, as ``_kmeans1d.kmeans_plusplus`` for N above
    DENSE_SEEDING_MAX_N (cell sums from the block prefix sums, the D**2 draw located by block),
    from its random numbers: first (B,) indices, u (k-1, B, trials) uniforms; sorted centres
    into (B, k)."""
    b, n = xs.shape
    k, trials = centers.shape[1], u.shape[2]
    nblk = c1.shape[1]
    bnd, tb = np.empty(k + 1, dtype=np.int64), np.empty(k + 1, dtype=np.int64)
    p1b, p2b, cum0 = np.empty(k + 1), np.empty(k + 1), np.empty(k + 1)
    g, win = np.empty(nblk), np.empty((2, block))
    trial, pot, terms, tp = np.empty((trials, k)), np.empty(trials), np.empty(k), np.empty(k + 1)
    for r in range(b):
        xr, c1r, c2r, cen = xs[r], c1[r], c2[r], centers[r]
        cen[0] = xr[first[r]]
        total2 = c2r[nblk - 1]
        for q in range(1, k):
            _bounds(xr, cen[:q], bnd[: q + 1])
            for j in range(q + 1):
                p1b[j], p2b[j] = _prefix12(xr, c1r, c2r, block, bnd[j], win)
            cum0[0] = 0.0
            for j in range(q):
                pj = _potential(float(bnd[j + 1] - bnd[j]), p1b[j + 1] - p1b[j], p2b[j + 1] - p2b[j], cen[j])
                cum0[j + 1] = pj if j == 0 else cum0[j] + pj
            # cumulative D**2 at every block start t (before t: the cells below t's, and t's
            # own cell up to t)
            for i in range(nblk):
                t = min(i * block, n)
                cell = 0
                for j in range(1, q):
                    cell += bnd[j] <= t
                g[i] = cum0[cell] + _potential(float(t - bnd[cell]), c1r[i] - p1b[cell], c2r[i] - p2b[cell], cen[cell])
            for t in range(trials):
                idx = _d2_draw(xr, c1r, c2r, block, q, cen, bnd, cum0, g, u[q - 1, r, t] * cum0[q], win)
                # the current centres plus the candidate, sorted (ties: equal values, equal bits)
                cand, at = xr[idx], 0
                while at < q and cen[at] <= cand:
                    trial[t, at] = cen[at]
                    at += 1
                trial[t, at] = cand
                for j in range(at, q):
                    trial[t, j + 1] = cen[j]
                # its potential as numpy sums it: sum_cells (n c**2 - 2 c S1), then + sum x**2
                _bounds(xr, trial[t, : q + 1], tb[: q + 2])
                for j in range(q + 2):
                    tp[j] = _prefix1(xr, c1r, block, tb[j], win[0])
                for j in range(q + 1):
                    c = trial[t, j]
                    terms[j] = float(tb[j + 1] - tb[j]) * c * c - 2.0 * c * (tp[j + 1] - tp[j])
                pot[t] = _psum0(terms, 0, q + 1) + total2
            best = 0
            for t in range(1, trials):
                if pot[t] < pot[best]:
                    best = t
            for j in range(q + 1):
                cen[j] = trial[best, j]


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


def _cell_rows(xs, c1, c2, block, bounds, cnt, s1, s2):
    """Count, sum and sum of squares of every cell of the boundaries (B, k + 1), as
    ``SortedRows.cells`` forms them (differences of :func:`_prefix12`)."""
    b, k = cnt.shape
    p1, p2, win = np.empty(k + 1), np.empty(k + 1), np.empty((2, block))
    for r in range(b):
        for j in range(k + 1):
            p1[j], p2[j] = _prefix12(xs[r], c1[r], c2[r], block, bounds[r, j], win)
        for j in range(k):
            cnt[r, j] = float(bounds[r, j + 1] - bounds[r, j])
            s1[r, j] = p1[j + 1] - p1[j]
            s2[r, j] = p2[j + 1] - p2[j]


_lloyd_compiled = jit()(_lloyd_rows)
_cells_compiled = jit()(_cell_rows)
_centre_compiled = jit()(_centre_rows)
_seed_compiled = jit()(_seed_rows)
_seed_sorted_compiled = jit()(_seed_sorted_rows)
_HELPERS = (
    "_pairwise",
    "_psum0",
    "_split",
    "_psum1",
    "_psum2",
    "_psum",
    "_prefix1",
    "_bounds",
    "_pairwise_sums",
    "_block_sums",
    "_prefix12",
    "_potential",
    "_d2_draw",
)


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
    """:func:`sweep.families._kmeans1d.kmeans_plusplus`, compiled: the same random numbers and
    the same sorted (B, k) centres, bit for bit (rows of at most ``DENSE_SEEDING_MAX_N`` values
    as its explicit-D**2 code, longer ones as its prefix-sum code)."""
    compile_helpers(globals(), _HELPERS)
    b, n = data.xs.shape
    trials = 2 + int(np.log(k))
    # the numpy code's draws, in its order: they do not depend on the data
    first = rng.integers(0, n, size=b)
    u = np.stack([rng.random((b, trials)) for _ in range(1, k)]) if k > 1 else np.empty((0, b, trials))
    centers = np.empty((b, k))
    if n <= DENSE_SEEDING_MAX_N:
        _seed_compiled(data.xs, first.astype(np.int64), u, centers)
        return np.sort(centers, axis=1)
    c1, c2 = np.ascontiguousarray(data.c1), np.ascontiguousarray(data.c2)
    _seed_sorted_compiled(data.xs, c1, c2, data.BLOCK, first.astype(np.int64), u, centers)
    return centers


def cells(data: SortedRows, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``data.cells(bounds, all rows)``, compiled: the count, sum and sum of squares (B, k) of
    every cell of the boundaries (B, k + 1), bit for bit."""
    compile_helpers(globals(), _HELPERS)
    b, k = bounds.shape[0], bounds.shape[1] - 1
    cnt, s1, s2 = np.empty((b, k)), np.empty((b, k)), np.empty((b, k))
    c1, c2 = np.ascontiguousarray(data.c1), np.ascontiguousarray(data.c2)
    _cells_compiled(data.xs, c1, c2, data.BLOCK, np.ascontiguousarray(bounds, dtype=np.int64), cnt, s1, s2)
    return cnt, s1, s2


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
