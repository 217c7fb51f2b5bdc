from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import analysis
from tests.analysis.synthetic import gaussian_frames


def test_wilson_interval_matches_scipy_and_known_values():
    """Wilson bounds equal scipy.stats.binomtest(k, n).proportion_ci(method='wilson') at several levels
    and the textbook 3/10 interval, and pin k = 0 and k = n exactly to the edges at every level."""
    assert analysis.wilson_interval(3, 10) == pytest.approx((0.1078, 0.6032), abs=1e-4)
    k, n = np.array([0, 1, 7, 19, 50, 3]), np.array([20, 20, 20, 20, 50, 1000])
    for confidence in (0.5, 0.9, 0.95, 0.999):
        lower, upper = analysis.wilson_interval(k, n, confidence=confidence)
        ci = [
            stats.binomtest(int(a), int(b)).proportion_ci(confidence_level=confidence, method="wilson")
            for a, b in zip(k, n)
        ]
        assert lower == pytest.approx([c.low for c in ci], abs=1e-12)
        assert upper == pytest.approx([c.high for c in ci], abs=1e-12)
        assert lower[0] == 0 and upper[4] == 1  # exactly, not up to round-off
    assert np.isnan(analysis.wilson_interval(0, 0)[0])
    with pytest.raises(ValueError, match="0 <= k <= n"):
        analysis.wilson_interval(5, 3)


def test_divergence_probability_at_generation_one_matches_the_chi2_law():
    """P(spread ratio < r at generation 1) across chains is within 5 s.e. of chi2_{n-1}.cdf((n-1) r^2)."""
    n, r, chains = 10, 0.8, 1500
    traj, _ = gaussian_frames(ns=(n,), replicates=chains, generations=1, seed=11)
    row = analysis.divergence_probability(traj, r, [1], "spread_ratio", direction="below").iloc[0]
    p = stats.chi2.cdf((n - 1) * r**2, n - 1)
    assert row["chains"] == chains and row["generation"] == 1
    assert abs(row["probability"] - p) < 5 * np.sqrt(p * (1 - p) / chains)
    assert row["lower"] < row["probability"] < row["upper"]


def test_divergence_probability_counts_a_known_share_and_sets_nan_aside():
    """With w2 uniform on (0, 1) the share above 0.3 is near 0.7; NaN metrics are counted as missing, not as chains."""
    rng = np.random.default_rng(5)
    chains = 1000
    frame = pd.DataFrame(
        {
            "family": "gaussian",
            "cell": 0,
            "n": 10,
            "policy": "replace",
            "replicate": np.arange(chains),
            "generation": 5,
            "w2": rng.uniform(0, 1, chains),
        }
    )
    frame.loc[:9, "w2"] = np.nan
    row = analysis.divergence_probability(frame, 0.3).iloc[0]
    assert (row["chains"], row["missing"]) == (chains - 10, 10)
    assert abs(row["probability"] - 0.7) < 5 * np.sqrt(0.21 / row["chains"])
    with pytest.raises(ValueError, match="no metric column 'tv'"):
        analysis.divergence_probability(frame, 0.3, metric="tv")
    with pytest.raises(ValueError, match=r"generations \[7\] are not recorded"):
        analysis.divergence_probability(frame, 0.3, [7])


def test_collapsed_by_agrees_with_the_chi2_law_and_never_decreases():
    """P(collapsed by 1) matches the chi2 law, the curve is non-decreasing, and t > T is refused."""
    n, r, chains = 10, 0.8, 1500
    _, events = gaussian_frames(ns=(n,), replicates=chains, generations=20, ratios=(r,), seed=12)
    table = analysis.collapsed_by(events)
    assert table["generation"].tolist() == list(range(1, 21))
    p = stats.chi2.cdf((n - 1) * r**2, n - 1)
    assert abs(table["probability"].iloc[0] - p) < 5 * np.sqrt(p * (1 - p) / chains)
    assert (np.diff(table["count"]) >= 0).all()
    with pytest.raises(ValueError, match="horizon is T=20"):
        analysis.collapsed_by(events, generations=[25])
