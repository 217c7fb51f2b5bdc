from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import analysis
from analysis import theory
from tests.analysis.synthetic import categorical_frames, gaussian_frames

NS = (10, 20, 40, 80)


@pytest.fixture(scope="module")
def gaussian():
    """Exact replace chains for four n, long enough that every median collapse time is seen."""
    return gaussian_frames(ns=NS, replicates=150, generations=250, ratios=(0.3,), eps=(), seed=21)


@pytest.fixture(scope="module")
def categorical():
    return categorical_frames(ns=(100,), replicates=150, generations=120, eps=(), seed=22)


def test_collapse_time_slope_agrees_with_theory(gaussian):
    """The fitted slope of median collapse time on n lies within 5 bootstrap s.e. of the implied theory slope."""
    times = analysis.collapse_times(gaussian[1])
    fit = analysis.rates(times, n_boot=300, seed=1).iloc[0]
    assert (fit["policy"], fit["cells_used"], fit["excluded_n"]) == ("replace", 4, "")
    expected = theory.collapse_time_slope(NS, 0.3, method="first_passage")
    se = (fit["slope_upper"] - fit["slope_lower"]) / (2 * 1.96)
    assert fit["slope_lower"] < fit["slope"] < fit["slope_upper"]
    assert abs(fit["slope"] - expected) < 5 * se


def test_rates_bootstrap_is_reproducible_by_seed(gaussian):
    """The same seed gives the same interval; another seed gives a different one around the same slope."""
    times = analysis.collapse_times(gaussian[1])
    first, again = (analysis.rates(times, n_boot=100, seed=5) for _ in range(2))
    other = analysis.rates(times, n_boot=100, seed=6)
    pd.testing.assert_frame_equal(first, again)
    assert first["slope"].iloc[0] == other["slope"].iloc[0]
    assert first["slope_lower"].iloc[0] != other["slope_lower"].iloc[0]


def test_cells_with_infinite_median_are_left_out_and_named(gaussian):
    """Cutting the horizon so large-n cells never reach one half leaves them out of the fit and lists their n."""
    times = analysis.collapse_times(gaussian[1])
    cut = times.assign(observed=times["observed"] & (times["duration"] <= 40),
                       duration=times["duration"].clip(upper=40), horizon=40)
    fit = analysis.rates(cut, n_boot=50).iloc[0]
    assert fit["excluded_n"] == "40, 80" and fit["cells_used"] == 2
    two = analysis.rates(cut[cut["n"] >= 20], n_boot=10).iloc[0]
    assert np.isnan(two["slope"]) and two["note"].startswith("fewer than two n with a finite median")
    single = analysis.rates(cut[cut["n"] == 10], n_boot=10).iloc[0]
    assert np.isnan(single["slope"]) and single["note"] == "only one n in this line: no slope to fit"


def test_gaussian_decay_rate_matches_the_digamma_drift(gaussian):
    """The per-cell log-variance drift lies within 5 s.e. of psi((n-1)/2) - ln((n-1)/2)."""
    table = analysis.decay_rates(gaussian[0], generation=100)
    se = (table["rate_upper"] - table["rate_lower"]) / (2 * 1.96)
    assert np.allclose(table["theory_rate"], theory.log_var_drift(table["n"].to_numpy()))
    assert (np.abs(table["rate"] - table["theory_rate"]) < 5 * se).all()


def test_categorical_decay_rate_matches_heterozygosity_theory(categorical):
    """ln(mean H_t / H_0) / t lies within 5 s.e. of ln(1 - 1/n) for Wright-Fisher chains."""
    row = analysis.decay_rates(categorical[0], generation=60).iloc[0]
    assert row["quantity"] == "log_heterozygosity"
    se = (row["rate_upper"] - row["rate_lower"]) / (2 * 1.96)
    assert abs(row["rate"] - np.log(1 - 1 / 100)) < 5 * se
