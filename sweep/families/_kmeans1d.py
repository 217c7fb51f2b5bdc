"""Batched 1-D k-means (greedy k-means++ seeding, then Lloyd), as scikit-learn's KMeans.

It reproduces ``sklearn.cluster.KMeans(n_clusters=k, n_init=1, init="k-means++")`` in law
(not draw for draw: the random streams differ) on every chain of a (B, N) batch at once.

In one dimension every Voronoi cell of a set of centres is a contiguous run of the sorted data.
So once each chain is sorted and has (block) prefix sums of x and x**2, the potential of any
set of centres, the D^2 cumulative sums that k-means++ samples from, and a Lloyd update cost
O(k log N) per chain (bisection on the sorted rows) instead of O(k N). The only O(N log N)
work is the sort. For small N, k-means++ uses explicit D^2 arrays instead (fewer numpy calls);
both paths consume the same random numbers and pick the same centres.
"""

from __future__ import annotations

import functools

import numpy as np

# scikit-learn KMeans defaults that GaussianMixture's "kmeans" initialisation inherits.
KMEANS_MAX_ITER = 300
KMEANS_TOL = 1e-4


def searchsorted_rows(a: np.ndarray, v: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """For each row r, count the entries of the sorted row ``a[rows[r]]`` that are < v[r].

    Vectorised bisection (``np.searchsorted(side="left")`` row by row, without the loop).
    ``a`` is (B, N) sorted along axis 1, ``v`` is (R, M) and ``rows`` is (R,).
    """
    n = a.shape[1]
    flat = a.ravel()
    base = (rows * n)[:, None]
    lo = np.zeros(v.shape, dtype=np.intp)
    hi = np.full(v.shape, n, dtype=np.intp)
    for _ in range(n.bit_length()):
        mid = (lo + hi) >> 1
        go = (flat.take(base + np.minimum(mid, n - 1)) < v) & (mid < hi)
        lo = np.where(go, mid + 1, lo)
        hi = np.where(go, hi, mid)
    return lo


@functools.lru_cache(maxsize=64)
def prefix_block(n: int) -> int:
    """Entries per stored prefix sum of :class:`SortedRows` for rows of n values: about sqrt(n)
    (cached: np.clip on a scalar costs some 50 us, several times per generation)."""
    return int(np.clip(2 ** round(np.log2(np.sqrt(n))), 8, 64))


class SortedRows:
    """Sorted rows with block prefix sums, for sums of x and x**2 over index ranges.

    np.cumsum runs at ~4 ns per element here, ten times a block sum, and only O(k log N)
    prefix values per chain are ever needed. So only every ``block``-th prefix value is stored
    and a value in between adds the partial block on demand. Blocks of about sqrt(N) entries
    balance the two costs.
    """

    def __init__(self, xs: np.ndarray, xs2: np.ndarray | None = None):
        self.xs = xs
        b, self.n = xs.shape
        self.BLOCK = prefix_block(self.n)
        starts = np.arange(0, self.n, self.BLOCK)
        self.c1 = np.zeros((b, len(starts) + 1))
        self.c2 = np.zeros((b, len(starts) + 1))
        np.cumsum(np.add.reduceat(xs, starts, axis=1), axis=1, out=self.c1[:, 1:])
        sq = xs * xs if xs2 is None else xs2
        np.cumsum(np.add.reduceat(sq, starts, axis=1), axis=1, out=self.c2[:, 1:])
        self._lane = np.arange(self.BLOCK)

    @classmethod
    def from_sums(cls, xs: np.ndarray, c1: np.ndarray, c2: np.ndarray) -> SortedRows:
        """Sorted rows with their block prefix sums (B, ceil(N / BLOCK) + 1) already formed as
        the constructor forms them (:func:`sweep.families._kmeans1d_numba.sorted_rows` does, bit
        for bit)."""
        data = object.__new__(cls)
        data.xs, data.c1, data.c2 = xs, c1, c2
        data.n = xs.shape[1]
        data.BLOCK = prefix_block(data.n)
        data._lane = np.arange(data.BLOCK)
        return data

    def bounds(self, centers: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Cell boundaries (R, ..., q+1) of sorted centres (R, ..., q): cell j is [b_j, b_j+1)."""
        mids = 0.5 * (centers[..., 1:] + centers[..., :-1])
        # scikit-learn gives a point equidistant from equal centres to the first of them, so
        # the later copies get empty cells: push their lower boundary up to the next one.
        dup = centers[..., 1:] == centers[..., :-1]
        if dup.any():
            mids = np.minimum.accumulate(np.where(dup, np.inf, mids)[..., ::-1], axis=-1)
            mids = mids[..., ::-1]
        inner = searchsorted_rows(self.xs, mids.reshape(len(rows), -1), rows)
        edge = np.broadcast_to(0, mids.shape[:-1] + (1,))
        return np.concatenate([edge, inner.reshape(mids.shape), edge + self.n], axis=-1)

    def _take(self, arr, idx, rows):
        shape = (-1,) + (1,) * (idx.ndim - 1)
        return arr.ravel().take((rows * arr.shape[1]).reshape(shape) + idx)

    def _window(self, idx, rows):
        """Block index of idx, and the entries of its block before idx (zeros elsewhere)."""
        blk = idx // self.BLOCK
        start = blk * self.BLOCK
        vals = self._take(self.xs, np.minimum(start[..., None] + self._lane, self.n - 1), rows)
        vals *= self._lane < (idx - start)[..., None]
        return blk, vals

    def prefix1(self, idx: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Sum of x over the first ``idx`` (R, ...) sorted entries of each row."""
        blk, vals = self._window(idx, rows)
        return self._take(self.c1, blk, rows) + vals.sum(axis=-1)

    def prefix2(self, idx: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Sum of x**2 over the first ``idx`` (R, ...) sorted entries of each row."""
        blk, vals = self._window(idx, rows)
        return self._take(self.c2, blk, rows) + (vals * vals).sum(axis=-1)

    def prefix12(self, idx: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both prefix sums, sharing one gather."""
        blk, vals = self._window(idx, rows)
        return (
            self._take(self.c1, blk, rows) + vals.sum(axis=-1),
            self._take(self.c2, blk, rows) + (vals * vals).sum(axis=-1),
        )

    def cells(self, bounds: np.ndarray, rows: np.ndarray, *, squares: bool = True):
        """Count, sum and (if ``squares``) sum of squares of every cell."""
        n = np.diff(bounds, axis=-1).astype(float)
        if not squares:
            return n, np.diff(self.prefix1(bounds, rows), axis=-1), None
        p1, p2 = self.prefix12(bounds, rows)
        return n, np.diff(p1, axis=-1), np.diff(p2, axis=-1)


def _potential(n, s1, s2, c):
    # sum over a cell of (x - c)**2; clipped because prefix-sum differences can round below 0
    return np.maximum(n * c * c - 2.0 * c * s1 + s2, 0.0)


def _count_below(edges, vals, strict=True):
    """Per row, how many of the few ``edges`` (R, e) are < (or <=) each of ``vals``; a loop
    over the short axis, because numpy reductions over a tiny last axis are slow."""
    out = np.zeros(np.broadcast_shapes(vals.shape, (len(edges), 1)), dtype=np.intp)
    for i in range(edges.shape[1]):
        out += (edges[:, i, None] < vals) if strict else (edges[:, i, None] <= vals)
    return out


def _d2_sample(data, rows, bnd, centers, cum, vals):
    """Indices (R, T) drawn by ``searchsorted(cumsum(D**2), vals)``, D the distance to the
    nearest centre, without forming the cumulative sum: the cumulative D**2 at every block
    start comes from the prefix sums, which locates the block; then D**2 is accumulated over
    that block's entries only."""
    cum0 = np.concatenate([np.zeros((len(rows), 1)), cum], axis=1)  # D**2 before each cell
    j = _count_below(cum[:, :-1], vals)  # the cell
    before = np.take_along_axis(cum0, j, 1)
    lo = np.take_along_axis(bnd, j, 1)
    hi = np.take_along_axis(bnd, j + 1, 1)
    c = np.take_along_axis(centers, j, 1)
    # cumulative D**2 over [0, t) at every block start t (the cell of t is that of entry t)
    nblk = data.c2.shape[1]
    t = np.minimum(np.arange(nblk) * data.BLOCK, data.n)
    cell = _count_below(bnd[:, 1:-1], t, strict=False)
    p1b, p2b = data.prefix12(bnd, rows)
    lo_t = np.take_along_axis(bnd, cell, 1)
    c_t = np.take_along_axis(centers, cell, 1)
    g = np.take_along_axis(cum0, cell, 1) + _potential(
        (t - lo_t).astype(float),
        data.c1 - np.take_along_axis(p1b, cell, 1),
        data.c2 - np.take_along_axis(p2b, cell, 1),
        c_t,
    )
    below = (t > lo[..., None]) & (t <= hi[..., None]) & (g[:, None, :] < vals[..., None])
    pos = np.where(below, np.arange(nblk), -1).max(axis=2)  # last such block start
    m = np.where(pos >= 0, t[np.maximum(pos, 0)], lo)
    g_start = np.where(pos >= 0, np.take_along_axis(g, np.maximum(pos, 0), 1) - before, 0.0)
    # the drawn entry is in [m, m + BLOCK): accumulate D**2 over that window
    lanes = m[..., None] + data._lane
    vals_w = data._take(data.xs, np.minimum(lanes, data.n - 1), rows)
    d2 = np.where(lanes < hi[..., None], (vals_w - c[..., None]) ** 2, 0.0)
    cum_w = g_start[..., None] + np.cumsum(d2, axis=-1)
    idx = m + (cum_w < (vals - before)[..., None]).sum(axis=-1)
    return np.minimum(np.minimum(idx, hi - 1), data.n - 1)


# Below this many samples per chain, k-means++ works on explicit D**2 arrays (O(k N) per chain,
# few numpy calls); above it, on the sorted rows' prefix sums (O(k log N) per chain).
DENSE_SEEDING_MAX_N = 512


def _kmeans_plusplus_dense(xs, k, rng, first):
    b, n = xs.shape
    rows = np.arange(b)
    trials = 2 + int(np.log(k))
    centers = [xs[rows, first]]
    closest = (xs - centers[0][:, None]) ** 2
    for _ in range(1, k):
        vals = rng.random((b, trials)) * closest.sum(axis=1, keepdims=True)
        cum = np.cumsum(closest, axis=1)
        cand = np.minimum((cum[:, None, :] < vals[:, :, None]).sum(axis=2), n - 1)
        xc = xs[rows[:, None], cand]
        dist = np.minimum(closest[:, None, :], (xs[:, None, :] - xc[:, :, None]) ** 2)
        best = np.argmin(dist.sum(axis=2), axis=1)
        closest = dist[rows, best]
        centers.append(xc[rows, best])
    return np.sort(np.stack(centers, axis=1), axis=1)


def kmeans_plusplus(data: SortedRows, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ seeding with 2 + int(log k) local trials; returns sorted (B, k).

    Both code paths draw the same random numbers in the same order, and give the same centres.
    """
    b, n = data.xs.shape
    rows = np.arange(b)
    trials = 2 + int(np.log(k))
    first = rng.integers(0, n, size=b)
    if n <= DENSE_SEEDING_MAX_N:
        return _kmeans_plusplus_dense(data.xs, k, rng, first)
    centers = data.xs[rows, first][:, None]
    total2 = data.c2[:, -1:]
    for q in range(1, k):
        bnd = data.bounds(centers, rows)
        cum = np.cumsum(_potential(*data.cells(bnd, rows), centers), axis=1)
        vals = rng.random((b, trials)) * cum[:, -1:]
        cand = data.xs[rows[:, None], _d2_sample(data, rows, bnd, centers, cum, vals)]
        # Potential of the current centres plus each candidate; keep the best (first on ties).
        # sum_cells sum (x - c)**2 = sum_cells (n c**2 - 2 c S1) + sum x**2 needs no squares.
        trial = np.sort(
            np.concatenate([np.broadcast_to(centers[:, None, :], (b, trials, q)), cand[:, :, None]], axis=2), axis=2
        )
        cnt, s1, _ = data.cells(data.bounds(trial, rows), rows, squares=False)
        pot = (cnt * trial * trial - 2.0 * trial * s1).sum(axis=2) + total2
        centers = trial[rows, np.argmin(pot, axis=1)]
    return centers


def _relocate(data, rows, bnd, old, cnt, sums):
    """scikit-learn's empty-cluster fix: move each empty centre onto the point farthest from
    its centre (in 1-D the farthest points of a cell are at its ends)."""
    left, right = bnd[:, :-1].copy(), bnd[:, 1:] - 1
    empty = cnt == 0
    order = np.argsort(~empty, axis=1, kind="stable")  # empty cluster ids first, in id order
    r_idx = np.arange(len(rows))
    for r in range(int(empty.sum(axis=1).max())):
        need = empty.sum(axis=1) > r
        xl = data.xs[rows[:, None], np.clip(left, 0, data.n - 1)]
        xr = data.xs[rows[:, None], np.clip(right, 0, data.n - 1)]
        dl = np.where(left <= right, (xl - old) ** 2, -1.0)
        dr = np.where(right > left, (xr - old) ** 2, -1.0)
        both = np.concatenate([dl, dr], axis=1)
        pick = np.argmax(both, axis=1)
        cell, from_right = pick % old.shape[1], pick >= old.shape[1]
        xfar = np.where(from_right, xr[r_idx, cell], xl[r_idx, cell])
        tgt = order[:, r]
        for arr, val in ((sums, xfar), (cnt, 1.0)):
            arr[r_idx, cell] -= np.where(need, val, 0.0)
            arr[r_idx, tgt] = np.where(need, val, arr[r_idx, tgt])
        left[r_idx, cell] += need & ~from_right
        right[r_idx, cell] -= need & from_right
    return cnt, sums


def lloyd(
    data: SortedRows, centers: np.ndarray, tol: np.ndarray, max_iter: int = KMEANS_MAX_ITER
) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd iterations from sorted (B, k) centres; returns the final centres and the cell
    boundaries (B, k+1) of the labels scikit-learn would return (assigned to final centres).

    A chain stops at strict convergence (labels unchanged) or when the summed squared centre
    shift is <= ``tol`` (B,), as in ``sklearn.cluster._kmeans._kmeans_single_lloyd``.
    """
    centers = centers.copy()
    b, k = centers.shape
    active = np.arange(b)
    prev = np.full((b, k + 1), -1, dtype=np.intp)
    for _ in range(max_iter):
        old = centers[active]
        bnd = data.bounds(old, active)
        cnt, sums, _ = data.cells(bnd, active, squares=False)
        if (cnt == 0).any():
            hit = (cnt == 0).any(axis=1)
            cnt[hit], sums[hit] = _relocate(data, active[hit], bnd[hit], old[hit], cnt[hit].copy(), sums[hit].copy())
        new = np.where(cnt > 0, sums / np.maximum(cnt, 1.0), old)
        shift = ((new - old) ** 2).sum(axis=1)
        done = (prev[active] == bnd).all(axis=1) | (shift <= tol[active])
        centers[active] = np.sort(new, axis=1)
        prev[active] = bnd
        active = active[~done]
        if active.size == 0:
            break
    rows = np.arange(b)
    return centers, data.bounds(centers, rows)
