from __future__ import annotations

import numpy as np
import pytest

import analysis
from tests.analysis.synthetic import categorical_frames


@pytest.fixture(scope="module")
def categorical():
    """Wright-Fisher chains, n = 100, seven symbols, 150 chains, T = 120."""
    return categorical_frames(ns=(100,), replicates=150, generations=120, eps=(), seed=22)


def test_forgetting_slope_is_near_one(categorical):
    """Median forgetting time grows like the initial count: slope within 5 bootstrap s.e. of 1, bins with median > T named."""
    fit = analysis.forgetting_rates(categorical[1], n_boot=200, seed=2).iloc[0]
    se = (fit["slope_upper"] - fit["slope_lower"]) / (2 * 1.96)
    assert fit["bins_used"] >= 3
    assert abs(fit["slope"] - 1) < 5 * se
    table = analysis.forgetting_times(categorical[1])
    never = table[np.isinf(table["median"])]
    assert len(never) == fit["bins"] - fit["bins_used"]
    assert (never["count"] > table.loc[np.isfinite(table["median"]), "count"].max()).all()


def test_forgetting_times_bins_counts_and_skips_zero(categorical):
    """Explicit bins group initial counts as [e_i, e_i+1); count 0 (lost at generation 1) is never binned."""
    events = categorical[1]
    table = analysis.forgetting_times(events, bins=[1, 4, 16, 64])
    assert table["bin_low"].tolist() == [1.0, 4.0, 16.0]
    lost = events[events["event"] == "symbol_lost"]
    counts = lost["initial_count"].astype(float)
    assert table["symbols"].tolist() == [int(((counts >= a) & (counts < b)).sum()) for a, b in [(1, 4), (4, 16), (16, 64)]]
    with pytest.raises(ValueError, match="bins must be increasing"):
        analysis.forgetting_times(events, bins=[4, 2])
