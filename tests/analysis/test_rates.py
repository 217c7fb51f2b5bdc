from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import analysis
from analysis import theory
from tests.analysis.synthetic import categorical_frames, gaussian_frames

NS = (10, 20, 40, 80)
RATIO = 0.3
# Four cells: 4-sigma intervals keep a false alarm among them below 1e-3.
Z = 4.0


def _se(lower, upper):
    """Standard error implied by a 95% interval."""
    return (upper - lower) / (2 * 1.96)


@pytest.fixture(scope="module")
def gaussian():
    """Exact replace chains for four n, long enough that every median collapse time is seen."""
    return gaussian_frames(ns=NS, replicates=150, generations=250, ratios=(RATIO,), eps=(), seed=21)


@pytest.fixture(scope="module")
def collapse():
    """Collapse times of 1000 exact replace chains per n (events only: cheap to generate)."""
    _, events = gaussian_frames(ns=NS, replicates=1000, generations=250, ratios=(RATIO,), eps=(), seed=23,
                                trajectories=False)
    return analysis.collapse_times(events)


@pytest.fixture(scope="module")
def categorical():
    return categorical_frames(ns=(100,), replicates=150, generations=120, eps=(), seed=22)


def test_median_collapse_times_sit_at_the_level_of_the_generating_law(collapse):
    """Each cell's KM median has the exact first-passage median of the chi2 walk that generated the
    chains inside its 4-sigma CI; the ML law's median (collapse ~1.7x sooner) is outside every one."""
    summary = analysis.survival(collapse, confidence=1 - 2 * stats.norm.sf(Z))
    exact = theory.exact_median_collapse_time(summary["n"].to_numpy(), RATIO, "unbiased")
    wrong = theory.exact_median_collapse_time(summary["n"].to_numpy(), RATIO, "ml")
    assert ((summary["median_lower"] <= exact) & (exact <= summary["median_upper"])).all(), (summary, exact)
    assert ((wrong < summary["median_lower"]) | (wrong > summary["median_upper"])).all(), (summary, wrong)


def test_collapse_time_line_agrees_with_the_generating_law(collapse):
    """Slope and intercept of ln(median) on ln n lie within 4 bootstrap s.e. (slope: about +-0.09) of the
    line through the exact medians; the ML law's intercept lies outside that tolerance."""
    fit = analysis.rates(collapse, n_boot=300, seed=1).iloc[0]
    assert (fit["policy"], fit["cells_used"], fit["excluded_n"]) == ("replace", 4, "")
    assert fit["slope_lower"] < fit["slope"] < fit["slope_upper"]
    slope, intercept = np.polyfit(np.log(NS), np.log(theory.exact_median_collapse_time(NS, RATIO)), 1)
    slope_se, intercept_se = _se(fit["slope_lower"], fit["slope_upper"]), _se(fit["intercept_lower"], fit["intercept_upper"])
    assert slope_se < 0.03  # what 1000 chains per cell support
    assert abs(fit["slope"] - slope) < Z * slope_se, (fit["slope"], slope, slope_se)
    assert abs(fit["intercept"] - intercept) < Z * intercept_se, (fit["intercept"], intercept, intercept_se)
    ml_intercept = np.polyfit(np.log(NS), np.log(theory.exact_median_collapse_time(NS, RATIO, "ml")), 1)[1]
    assert abs(fit["intercept"] - ml_intercept) > Z * intercept_se


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
