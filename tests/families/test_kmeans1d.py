"""Batched 1-D k-means (k-means++ seeding and Lloyd) against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.cluster import kmeans_plusplus as sk_kmeans_plusplus

from sweep.families import _kmeans1d as kmeans1d
from sweep.families._kmeans1d import (
    KMEANS_TOL,
    SortedRows,
    _d2_sample,
    _potential,
    kmeans_plusplus,
    lloyd,
    searchsorted_rows,
)


def _data(b, n, seed):
    rng = np.random.default_rng(seed)
    x = np.where(rng.random((b, n)) < 0.5, rng.normal(-1, 1, (b, n)), rng.normal(1.5, 0.5, (b, n)))
    return np.sort(x - x.mean(axis=1, keepdims=True), axis=1)


def test_searchsorted_rows_matches_numpy():
    """Row-wise bisection gives np.searchsorted(side='left') on every row."""
    xs = _data(5, 37, 0)
    v = np.random.default_rng(1).normal(size=(5, 9))
    v[:, 0] = xs[:, 3]  # exact ties count as not below
    got = searchsorted_rows(xs, v, np.arange(5))
    np.testing.assert_array_equal(got, [np.searchsorted(r, q) for r, q in zip(xs, v)])


def test_prefix_sums():
    """Block prefix sums of x and x**2 equal cumulative sums at arbitrary indices."""
    xs = _data(3, 1000, 2)
    data = SortedRows(xs)
    idx = np.random.default_rng(3).integers(0, 1001, size=(3, 50))
    rows = np.arange(3)
    cum1 = np.concatenate([np.zeros((3, 1)), np.cumsum(xs, axis=1)], axis=1)
    cum2 = np.concatenate([np.zeros((3, 1)), np.cumsum(xs * xs, axis=1)], axis=1)
    np.testing.assert_allclose(data.prefix1(idx, rows), np.take_along_axis(cum1, idx, 1))
    np.testing.assert_allclose(data.prefix2(idx, rows), np.take_along_axis(cum2, idx, 1), rtol=1e-12, atol=1e-9)


def test_d2_sampling_is_searchsorted_of_cumulative_d2():
    """The D**2 draw picks exactly np.searchsorted(cumsum(D**2), u * potential)."""
    rng = np.random.default_rng(4)
    for n in (40, 700):
        xs = np.sort(rng.normal(size=n))
        b = 300
        data = SortedRows(np.tile(xs, (b, 1)))
        rows = np.arange(b)
        centers = np.sort(rng.choice(xs, size=(b, 3)), axis=1)
        bnd = data.bounds(centers, rows)
        cum = np.cumsum(_potential(*data.cells(bnd, rows), centers), axis=1)
        vals = rng.random((b, 3)) * cum[:, -1:]
        got = _d2_sample(data, rows, bnd, centers, cum, vals)
        d2 = np.min((xs[None, :, None] - centers[:, None, :]) ** 2, axis=2)
        want = [np.minimum(np.searchsorted(np.cumsum(d), v), n - 1) for d, v in zip(d2, vals)]
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dense_max_n", [0, 10_000])
def test_kmeans_plusplus_equals_reference_algorithm(monkeypatch, dense_max_n):
    """The batched seeding, through prefix sums or explicit D**2 arrays, is draw for draw
    scikit-learn's greedy k-means++ algorithm run on the same uniform numbers (reference
    written with explicit D**2 arrays and per-chain searchsorted)."""
    monkeypatch.setattr(kmeans1d, "DENSE_SEEDING_MAX_N", dense_max_n)
    xs = _data(1, 150, 5)[0]
    b, k, n = 500, 4, 150
    got = kmeans_plusplus(SortedRows(np.tile(xs, (b, 1))), k, np.random.default_rng(6))
    g = np.random.default_rng(6)
    first = g.integers(0, n, size=b)
    centers, closest = [xs[first]], (xs[None, :] - xs[first][:, None]) ** 2
    rows = np.arange(b)
    for _ in range(1, k):
        vals = g.random((b, 2 + int(np.log(k)))) * closest.sum(axis=1, keepdims=True)
        cand = np.minimum([np.searchsorted(np.cumsum(c), v) for c, v in zip(closest, vals)], n - 1)
        dist = np.minimum(closest[:, None, :], (xs[None, None, :] - xs[cand][:, :, None]) ** 2)
        best = dist.sum(axis=2).argmin(axis=1)
        closest = dist[rows, best]
        centers.append(xs[cand[rows, best]])
    np.testing.assert_allclose(got, np.sort(np.stack(centers, axis=1), axis=1))


def test_sklearn_kmeans_plusplus_is_the_same_algorithm():
    """scikit-learn's kmeans_plusplus, replayed with its RandomState draws, is that reference
    algorithm (so the batched seeding has its law)."""
    xs = _data(1, 80, 7)[0]
    for seed in range(20):
        rs = np.random.RandomState(seed)
        c = [xs[rs.choice(80, p=np.full(80, 1 / 80))]]
        closest = (xs - c[0]) ** 2
        for _ in range(2):
            cand = np.minimum(np.searchsorted(np.cumsum(closest), rs.uniform(size=3) * closest.sum()), 79)
            dist = np.minimum(closest[None], (xs[None] - xs[cand][:, None]) ** 2)
            best = dist.sum(axis=1).argmin()
            closest = dist[best]
            c.append(xs[cand[best]])
        np.testing.assert_allclose(c, sk_kmeans_plusplus(xs[:, None], 3, random_state=seed)[0][:, 0])


def test_lloyd_matches_sklearn_from_the_same_centres():
    """From the same initial centres (duplicates included, which forces sklearn's empty-cluster
    relocation), Lloyd gives sklearn's final centres and cluster sizes."""
    xs = _data(60, 200, 8)
    rng = np.random.default_rng(9)
    init = np.sort(xs[np.arange(60)[:, None], rng.integers(0, 200, (60, 3))], axis=1)
    init[:5, 1] = init[:5, 0]  # duplicated centres
    centers, bnd = lloyd(SortedRows(xs), init, KMEANS_TOL * xs.var(axis=1))
    for b in range(60):
        km = KMeans(3, init=init[b][:, None], n_init=1).fit(xs[b][:, None])
        order = np.argsort(km.cluster_centers_[:, 0])
        np.testing.assert_allclose(centers[b], km.cluster_centers_[order, 0], atol=1e-10)
        np.testing.assert_array_equal(np.diff(bnd[b]), np.bincount(km.labels_, minlength=3)[order])
