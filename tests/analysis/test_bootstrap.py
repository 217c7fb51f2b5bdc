from __future__ import annotations

import numpy as np
from scipy import stats

from analysis._bootstrap import (
    bootstrap_line,
    chain_time_counts,
    draw_counts,
    km_medians,
    loglog_fit,
    percentile_interval,
    stream,
)
from analysis._survival import fit_km


def resample_weights(chains, n_boot, rng):
    """Draw counts of n_boot bootstrap resamples of the chains, as scipy.stats.bootstrap draws them."""
    return draw_counts(rng.integers(0, chains, (n_boot, chains)), chains)


def test_vectorised_km_medians_equal_lifelines_on_every_resample():
    """The matrix KM median of each bootstrap resample equals lifelines' median of the same resampled rows."""
    rng = np.random.default_rng(3)
    chains = 40
    raw = rng.geometric(0.022, chains)  # median near T = 30: some resamples never reach 1/2
    duration, observed = np.minimum(raw, 30), raw <= 30
    counts = chain_time_counts(np.arange(chains), duration, observed)
    weights = resample_weights(chains, 120, rng)
    fast = km_medians(weights, *counts)
    for b in range(len(weights)):
        rows = np.repeat(np.arange(chains), weights[b])
        assert fast[b] == fit_km(duration[rows], observed[rows]).median_survival_time_
    assert np.isinf(fast).any() and np.isfinite(fast).any()  # both branches were exercised


def test_km_medians_with_several_rows_per_chain_equal_lifelines():
    """When a chain owns several rows (symbols), reweighting chains equals repeating all their rows."""
    rng = np.random.default_rng(4)
    chain = np.repeat(np.arange(15), 3)
    raw = rng.geometric(0.1, chain.size)
    duration, observed = np.minimum(raw, 12), raw <= 12
    weights = resample_weights(15, 40, rng)
    fast = km_medians(weights, *chain_time_counts(chain, duration, observed))
    for b in range(len(weights)):
        rows = np.concatenate([np.flatnonzero(chain == c) for c in np.repeat(np.arange(15), weights[b])])
        assert fast[b] == fit_km(duration[rows], observed[rows]).median_survival_time_


def test_draw_counts_count_every_draw_once_per_resample():
    """Each resample's counts sum to the chains drawn and match a per-row bincount."""
    draws = np.random.default_rng(0).integers(0, 25, (50, 25))
    weights = draw_counts(draws, 25)
    assert weights.shape == (50, 25) and (weights.sum(axis=1) == 25).all()
    assert all((weights[b] == np.bincount(draws[b], minlength=25)).all() for b in range(50))


def test_stream_depends_on_seed_and_key_only():
    """A key's stream is fixed by (seed, key), numpy and Python scalars alike; other keys or seeds differ."""
    first = stream(3, ("gaussian", "replace")).integers(0, 2**32, 4)
    assert (first == stream(3, (np.str_("gaussian"), "replace")).integers(0, 2**32, 4)).all()
    assert (stream(3, (np.int64(7),)).integers(0, 2**32, 4) == stream(3, (7,)).integers(0, 2**32, 4)).all()
    assert (first != stream(3, ("gaussian", "accumulate")).integers(0, 2**32, 4)).any()
    assert (first != stream(4, ("gaussian", "replace")).integers(0, 2**32, 4)).any()


def test_bootstrap_line_is_scipy_bootstrap_of_the_km_line():
    """With no median infinite, the percentile interval of the line's slope equals scipy.stats.bootstrap's own
    percentile interval of the same statistic on the same stream, and nothing is dropped."""
    rng = np.random.default_rng(5)
    x = np.array([10.0, 20.0, 40.0])
    cells = []
    for scale in x:
        raw = np.ceil(rng.exponential(scale, 30))
        cells.append(chain_time_counts(np.arange(30), raw, np.ones(30, bool)))
    medians = lambda *w: np.stack([km_medians(wi, *c) for wi, c in zip(w, cells)], axis=1)  # noqa: E731
    _, slopes, dropped = bootstrap_line(x, [30, 30, 30], medians, n_boot=400, rng=stream(1, ("k",)))
    reference = stats.bootstrap(
        [np.arange(30)] * 3,
        lambda *d, axis=-1: loglog_fit(x, medians(*(draw_counts(di, 30) for di in d)))[1],
        n_resamples=400,
        vectorized=True,
        method="percentile",
        rng=stream(1, ("k",)),
    )
    assert dropped == 0
    assert np.allclose(percentile_interval(slopes, 0.95), tuple(reference.confidence_interval))


def test_loglog_fit_matches_polyfit_and_skips_infinite_points():
    """Row-wise log-log least squares equals numpy.polyfit, ignoring inf points and giving NaN below two points."""
    x = np.array([10.0, 20.0, 40.0, 80.0])
    y = np.array([[12.0, 25.0, 47.0, 101.0], [12.0, 25.0, np.inf, 101.0], [12.0, np.inf, np.inf, np.inf]])
    intercept, slope = loglog_fit(x, y)
    b, a = np.polyfit(np.log(x), np.log(y[0]), 1)
    assert np.allclose([slope[0], intercept[0]], [b, a])
    b, a = np.polyfit(np.log(x[[0, 1, 3]]), np.log(y[1, [0, 1, 3]]), 1)
    assert np.allclose([slope[1], intercept[1]], [b, a])
    assert np.isnan(slope[2]) and np.isnan(intercept[2])
