"""Working sets of chains that stop at different iterations: swap-removes keep the live rows a prefix."""

from __future__ import annotations

import numpy as np

from sweep.families._gmmnd_em import em_fit
from sweep.families._gmmnd_rows import WorkingRows, swap_out


def test_swap_out_moves_leave_exactly_the_live_rows_as_the_prefix():
    """For random stop masks, the moves turn a[:R'] into a[order], order holds every live row
    once, and only finished rows of the prefix are overwritten (one move per such row)."""
    rng = np.random.default_rng(1)
    for _ in range(200):
        r = int(rng.integers(1, 40))
        stop = rng.random(r) < rng.random()
        a = np.arange(r) * 10
        order, holes, donors = swap_out(stop)
        b = a.copy()
        b[holes] = b[donors]
        np.testing.assert_array_equal(b[: order.size], a[order])
        np.testing.assert_array_equal(np.sort(order), np.flatnonzero(~stop))
        assert holes.size == np.count_nonzero(stop[: order.size]) and stop[holes].all()


def test_working_rows_copy_once_and_never_write_the_callers_array():
    """The first departure gathers the live rows into an array of its own; later ones move rows
    within it; the caller's array is unchanged and the live view always equals the live rows."""
    data = np.arange(8 * 3, dtype=float).reshape(8, 3)
    before = data.copy()
    rows, alive = WorkingRows(data), np.arange(8)
    for stop_at in ([1, 6], [0], [2, 3]):
        stop = np.isin(alive, stop_at)
        order, holes, donors = swap_out(stop)
        rows.drop(order, holes, donors)
        alive = alive[order]
        np.testing.assert_array_equal(rows.live, before[alive])
        assert rows.owned and not np.shares_memory(rows.data, data)
    np.testing.assert_array_equal(data, before)


def test_fits_do_not_depend_on_which_chains_share_the_batch():
    """A chain's fit is bit for bit the same alone and in a batch where the other chains stop at
    other iterations (swap-removes move it to other rows): warm-started chains one at a time,
    and kmeans-initialised ones as the first 4 chains of 12 (the init's draws are chain-leading)."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(12, 300, 2)) * rng.uniform(0.5, 2.0, (12, 1, 2))
    x[::3, :150] += 3.0  # two clusters in some chains: EM and Lloyd stop at other iterations
    names = ("weights", "means", "covariances", "n_iter", "lower_bound")
    start = em_fit(x, 2, rng=np.random.default_rng(3), max_iter=2)
    batch = em_fit(x, 2, init=start)
    assert np.unique(batch.n_iter).size > 2
    for b in range(12):
        init = (start.weights[b : b + 1], start.means[b : b + 1], start.covariances[b : b + 1])
        alone = em_fit(x[b : b + 1], 2, init=init)
        for name in names:
            np.testing.assert_array_equal(getattr(alone, name)[0], getattr(batch, name)[b], err_msg=name)
    wide, narrow = (em_fit(x[:size], 2, rng=np.random.default_rng(4)) for size in (12, 4))
    for name in names:
        np.testing.assert_array_equal(getattr(narrow, name), getattr(wide, name)[:4], err_msg=name)


def test_lloyd_rows_do_not_depend_on_the_batch():
    """Lloyd's final centres of a chain are bit for bit the same alone and in a batch of chains
    of very different scales (so tolerances) and iteration counts, for two and three centres."""
    from sweep.families._gmmnd_kmeans import KMEANS_TOL, kmeans_plusplus, lloyd

    rng = np.random.default_rng(5)
    xt = rng.normal(size=(16, 2, 200)) * 10.0 ** rng.uniform(-2, 2, (16, 1, 1))
    xt[::2, 0, :100] += 4.0 * xt[::2].std(axis=2)[:, :1]
    tol = KMEANS_TOL * xt.var(axis=2).mean(axis=1)
    for k in (2, 3):
        start = kmeans_plusplus(xt, k, rng)
        batch = lloyd(xt, start, tol)
        for b in range(16):
            np.testing.assert_array_equal(lloyd(xt[b : b + 1], start[b : b + 1], tol[b : b + 1])[0], batch[b])


def test_reordering_the_features_in_place_changes_no_fit():
    """With score=False the last start reorders the fit's own features in place; the parameters
    are bit for bit those of score=True (which keeps them in order for the final E-step), for
    one and for three starts (a reordering before the last start would change the later ones),
    and the final log-likelihood is the data's under the returned mixture."""
    from sweep.families._gmmnd_em import mean_log_likelihood

    rng = np.random.default_rng(6)
    x = rng.normal(size=(10, 200, 2))
    x[::2, :100] += 2.5
    for n_init in (1, 3):
        fits = [em_fit(x, 2, rng=np.random.default_rng(7), n_init=n_init, score=score) for score in (False, True)]
        for name in ("weights", "means", "covariances", "n_iter", "lower_bound"):
            np.testing.assert_array_equal(getattr(fits[0], name), getattr(fits[1], name), err_msg=name)
        want = mean_log_likelihood(x, fits[1].weights, fits[1].means, fits[1].covariances)
        np.testing.assert_allclose(fits[1].log_likelihood, want, rtol=1e-12)


def _reference_lloyd(x, centers, tol):
    """One chain's Lloyd iterations written plainly, with scikit-learn's relocation of empty
    clusters (each takes the sample farthest from its own centre)."""
    old = centers.copy()
    for _ in range(300):
        labels = ((x[:, None, :] - old[None]) ** 2).sum(axis=2).argmin(axis=1)
        counts = np.bincount(labels, minlength=len(old)).astype(float)
        sums = np.array([x[labels == j].sum(axis=0) for j in range(len(old))])
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            far = np.argsort(-((x - old[labels]) ** 2).sum(axis=1), kind="stable")[: empty.size]
            for j, f in zip(empty, far):
                sums[labels[f]] -= x[f]
                counts[labels[f]] -= 1.0
                sums[j], counts[j] = x[f], 1.0
        new = sums / np.where(counts > 0, counts, 1.0)[:, None]
        shift = ((new - old) ** 2).sum()
        old = new
        if shift <= tol:
            break
    return old


def test_lloyd_relocates_empty_clusters_as_scikit_learn():
    """A start with a centre far from every sample (an empty cluster at once) ends where the
    plain reference with scikit-learn's relocation ends, for two centres (the two-centre step)
    and three, in a batch where the other chains have no empty cluster."""
    from sweep.families._gmmnd_kmeans import KMEANS_TOL, lloyd

    rng = np.random.default_rng(8)
    xt = rng.normal(size=(6, 2, 120))
    xt[:, 0, :60] += 3.0
    tol = KMEANS_TOL * xt.var(axis=2).mean(axis=1)
    for k in (2, 3):
        start = np.swapaxes(xt[:, :, :k], 1, 2).copy()
        start[::2, -1] = 50.0  # chains 0, 2, 4: the last centre owns no sample
        got = lloyd(xt, start, tol)
        for b in range(6):
            want = _reference_lloyd(xt[b].T, start[b], tol[b])
            np.testing.assert_allclose(got[b], want, rtol=1e-12, atol=1e-12)
        assert (np.abs(got[::2, -1]) < 10).all()  # the far centres were moved onto samples


def test_kmeans_plusplus_candidates_do_not_depend_on_the_row():
    """The D**2 draw's search is numpy's searchsorted in every row of a 2,000-row block, for
    values just above an entry (within one ulp of the entry at row offsets in the thousands: a
    search over rows concatenated with offsets r merged them with the entry, checked)."""
    from sweep.families._gmmnd_kmeans import _searchsorted_rows

    rng = np.random.default_rng(1)
    b, n = 2000, 50
    cum = np.cumsum(rng.random((b, n)), axis=1)
    at = rng.integers(0, n - 1, size=(b, 3))
    vals = np.take_along_axis(cum, at, axis=1) * (1 + 4e-16)
    got = _searchsorted_rows(cum, vals)
    want = np.stack([np.minimum(np.searchsorted(cum[r], vals[r]), n - 1) for r in range(b)])
    assert np.array_equal(got, want)
