"""Batched k-means in d dimensions (greedy k-means++ seeding, then Lloyd), as scikit-learn's KMeans.

It reproduces ``sklearn.cluster.KMeans(n_clusters=k, n_init=1, init="k-means++")`` (the
initialisation ``GaussianMixture(init_params="kmeans")`` runs) in law, not draw for draw, on every
chain of a (B, N, d) batch at once: the first centre uniformly among the samples, each next one
the best (lowest potential) of 2 + int(log k) candidates drawn with probability proportional to
D**2; then Lloyd iterations until the labels no longer change or the summed squared centre shift
is <= 1e-4 times the mean per-feature variance, at most 300; scikit-learn's relocation of empty
clusters onto the samples farthest from their centres; and the labels of the final centres.

Random draws are chain-leading and their number does not depend on the data (one index per chain,
then one (B, trials) uniform array per further centre); Lloyd draws nothing.
"""

from __future__ import annotations

import numpy as np

from sweep.families._gmmnd_rows import WorkingRows, swap_out
from sweep.families._kmeans1d import searchsorted_rows

# scikit-learn KMeans defaults that GaussianMixture's "kmeans" initialisation inherits.
KMEANS_MAX_ITER = 300
KMEANS_TOL = 1e-4


def _sq_dist(xt: np.ndarray, xx: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Squared distances (B, T, N) from the samples xt (B, d, N), of squared norms xx (B, N), to
    points c (B, T, d): ||x||**2 - 2 c.x + ||c||**2 through one batched matrix product, clipped at
    0 (scikit-learn's euclidean_distances computes them so)."""
    out = np.matmul(-2.0 * c, xt)  # scaling by -2 is exact: the same as scaling the product
    out += xx[:, None, :]
    out += (c * c).sum(axis=2)[:, :, None]
    return np.maximum(out, 0.0, out=out)


def _searchsorted_rows(cum: np.ndarray, vals: np.ndarray) -> np.ndarray:
    """``np.searchsorted(cum[r], vals[r])`` for every row r (clipped to N - 1, as scikit-learn),
    by exact bisection in each row: a chain's candidates never depend on its place in the block
    (one search over rows scaled into [r, r + 1] and concatenated rounded each row by its offset
    r, so a tie could move by one index with the row's position)."""
    b, n = cum.shape
    return np.minimum(searchsorted_rows(cum, vals, np.arange(b)), n - 1)


def kmeans_plusplus(xt: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ centres (B, k, d) of each chain's samples, laid out as xt (B, d, N)."""
    b, _, n = xt.shape
    xx = xt[:, 0] * xt[:, 0]
    for r in range(1, xt.shape[1]):
        xx += xt[:, r] * xt[:, r]
    rows = np.arange(b)
    trials = 2 + int(np.log(k))
    first = rng.integers(0, n, size=b)
    centers = [xt[rows, :, first]]
    closest = _sq_dist(xt, xx, centers[0][:, None, :])[:, 0]
    potential = closest.sum(axis=1)
    for j in range(1, k):
        vals = rng.random((b, trials)) * potential[:, None]
        cand = _searchsorted_rows(np.cumsum(closest, axis=1), vals)
        points = np.swapaxes(np.take_along_axis(xt, cand[:, None, :], axis=2), 1, 2)  # (B, trials, d)
        dist = _sq_dist(xt, xx, points)
        np.minimum(dist, closest[:, None, :], out=dist)
        pots = dist.sum(axis=2)
        best = np.argmin(pots, axis=1)  # the first of equal potentials, as scikit-learn
        centers.append(points[rows, best])
        if j < k - 1:  # the distances are needed for the next centre only
            closest, potential = dist[rows, best], pots[rows, best]
    return np.stack(centers, axis=1)


def assign(xt: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Labels (B, N) of samples laid out as (B, d, N) (each coordinate a contiguous row).

    The nearest centre minimises ||c||**2 - 2 c.x (scikit-learn compares the same quantity); with
    two centres that is one linear form per sample: (c1 - c0).x > (||c1||**2 - ||c0||**2) / 2,
    and the labels are booleans (True: centre 1). The products are batched matrix products (five
    times faster than coordinate-wise arithmetic at d = 2).
    """
    norms = (centers * centers).sum(axis=2)
    if centers.shape[1] == 2:
        proj = np.matmul((centers[:, 1] - centers[:, 0])[:, None, :], xt)[:, 0]
        return proj > 0.5 * (norms[:, 1] - norms[:, 0])[:, None]
    score = np.matmul(centers, xt)  # (B, k, N)
    score *= -2.0
    score += norms[:, :, None]
    labels = np.zeros((xt.shape[0], xt.shape[2]), dtype=np.intp)
    best = score[:, 0]
    for j in range(1, centers.shape[1]):
        labels = np.where(score[:, j] < best, j, labels)  # strict: the first on ties
        best = np.minimum(best, score[:, j])
    return labels


def cluster_sums(
    xt: np.ndarray, labels: np.ndarray, k: int, totals: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Counts (B, k) and sums (B, k, d) of the samples xt (B, d, N) of every cluster (two
    clusters: cluster 0 is the total, ``totals`` (B, d) if at hand, minus cluster 1)."""
    if k == 2:
        c1 = np.count_nonzero(labels, axis=1).astype(float)
        s1 = np.matmul(xt, labels.astype(float)[:, :, None])[:, :, 0]
        s0 = (xt.sum(axis=2) if totals is None else totals) - s1
        return np.stack([xt.shape[2] - c1, c1], axis=1), np.stack([s0, s1], axis=1)
    onehot = (labels[:, None, :] == np.arange(k)[None, :, None]).astype(float)
    return onehot.sum(axis=2), np.matmul(onehot, np.swapaxes(xt, 1, 2))


def _relocate(x, labels, old, counts, sums):
    """scikit-learn's empty-cluster fix, for one chain's samples x (N, d): each empty cluster
    takes the sample farthest from its own centre (labels are left as they are, as there)."""
    empty = np.flatnonzero(counts == 0)
    labels = labels.astype(np.intp)
    dist = ((x - old[labels]) ** 2).sum(axis=1)
    if dist.max() == 0:  # more clusters than distinct samples: nothing to move
        return
    far = np.argsort(-dist, kind="stable")[: empty.size]
    for j, f in zip(empty, far):
        owner = labels[f]
        sums[owner] -= x[f]
        counts[owner] -= 1.0
        sums[j], counts[j] = x[f], 1.0


def _two_step(xt1: np.ndarray, old: np.ndarray, labels: np.ndarray, totals: np.ndarray):
    """One Lloyd assignment with two centres on samples with a row of ones first, xt1 (R, 1 + d,
    N): the label is the sign of one linear form [-threshold, c1 - c0] . [1, x], and one
    matrix-vector product with the labels gives cluster 1's count and sums together (cluster 0 is
    the rest). ``labels`` (R, N) float is written in place (1.0: centre 1)."""
    # (the small arrays are written in place: per-call overheads cost more than their arithmetic)
    r, d = old.shape[0], old.shape[2]
    norms = (old * old).sum(axis=2)
    form = np.empty((r, 1 + d))
    np.multiply(norms[:, 0] - norms[:, 1], 0.5, out=form[:, 0])
    np.subtract(old[:, 1], old[:, 0], out=form[:, 1:])
    np.greater(np.matmul(form[:, None, :], xt1)[:, 0], 0.0, out=labels, casting="unsafe")
    ones = np.matmul(xt1, labels[:, :, None])[:, :, 0]  # (R, 1 + d): count and sums of cluster 1
    counts, sums = np.empty((r, 2)), np.empty((r, 2, d))
    counts[:, 1], sums[:, 1] = ones[:, 0], ones[:, 1:]
    np.subtract(xt1.shape[2], ones[:, 0], out=counts[:, 0])
    np.subtract(totals, ones[:, 1:], out=sums[:, 0])
    return counts, sums


def lloyd(
    xt: np.ndarray,
    centers: np.ndarray,
    tol: np.ndarray,
    max_iter: int = KMEANS_MAX_ITER,
    *,
    xt1: np.ndarray | None = None,
) -> np.ndarray:
    """Lloyd iterations from centres (B, k, d) on samples xt (B, d, N); returns the final centres.

    A chain stops when the summed squared centre shift is <= ``tol`` (B,), or at strict
    convergence (labels unchanged), as in ``sklearn.cluster._kmeans._kmeans_single_lloyd``; the
    second needs no test of its own, since unchanged labels give unchanged centres (shift 0). An
    empty cluster whose relocation is impossible gets the centre 0 (the accumulated sum), as
    there. A chain leaves the working arrays as soon as it stops (:mod:`._gmmnd_rows`). With two
    centres the samples are used with a row of ones first (see :func:`_two_step`): ``xt1``
    (B, 1 + d, N) if at hand (the E-step features begin so), else they are built.
    """
    centers = centers.copy()
    b, k, d = centers.shape
    two = k == 2
    if two and xt1 is None:
        xt1 = np.concatenate([np.ones((b, 1, xt.shape[2])), xt], axis=1)
    work = WorkingRows(xt1 if two else xt)
    rows, totals, old, tol = np.arange(b), xt.sum(axis=2), centers.copy(), np.asarray(tol)
    labels = np.empty((b, xt.shape[2])) if two else None
    for _ in range(max_iter):
        live = work.live
        if two:
            counts, sums = _two_step(live, old, labels[: rows.size], totals)
        else:
            labels = assign(live, old)
            counts, sums = cluster_sums(live, labels, k, totals)
        if counts.all():  # no empty cluster (the usual case: one test instead of three)
            new = sums / counts[..., None]
        else:
            for r in np.flatnonzero((counts == 0).any(axis=1)):
                x = live[r, 1:] if two else live[r]
                _relocate(x.T, labels[r] > 0.5 if two else labels[r], old[r], counts[r], sums[r])
            new = sums / np.where(counts > 0, counts, 1.0)[..., None]
        stop = ~(((new - old) ** 2).sum(axis=(1, 2)) > tol)
        old = new
        if stop.any():
            centers[rows[stop]] = new[stop]
            if stop.all():
                return centers
            order, holes, donors = swap_out(stop)
            work.drop(order, holes, donors)
            rows, totals, old, tol = rows[order], totals[order], old[order], tol[order]
    centers[rows] = old
    return centers


def kmeans_labels(
    xt: np.ndarray,
    k: int,
    rng: np.random.Generator,
    *,
    xt1: np.ndarray | None = None,
    variance: np.ndarray | None = None,
) -> np.ndarray:
    """Labels (B, N) of KMeans(k, n_init=1) on each chain's samples, laid out as xt (B, d, N)
    (centred or not; booleans for k = 2); ``xt1``: see :func:`lloyd`; ``variance`` (B,): the mean
    per-coordinate variance of each chain's samples, if at hand (the tolerance is 1e-4 times it)."""
    tol = KMEANS_TOL * (xt.var(axis=2).mean(axis=1) if variance is None else variance)
    return assign(xt, lloyd(xt, kmeans_plusplus(xt, k, rng), tol, xt1=xt1))
