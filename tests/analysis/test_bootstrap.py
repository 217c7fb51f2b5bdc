from __future__ import annotations

import numpy as np

from analysis._bootstrap import chain_time_counts, km_medians, loglog_fit, resample_weights
from analysis._survival import fit_km


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


def test_resample_weights_draw_every_chain_count_once_per_resample():
    """Each resample draws exactly as many chains as there are, and a fixed seed repeats the draw."""
    weights = resample_weights(25, 50, np.random.default_rng(0))
    assert weights.shape == (50, 25) and (weights.sum(axis=1) == 25).all()
    assert (weights == resample_weights(25, 50, np.random.default_rng(0))).all()


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
