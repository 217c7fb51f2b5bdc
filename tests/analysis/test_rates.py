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
    _, events = gaussian_frames(
        ns=NS, replicates=1000, generations=250, ratios=(RATIO,), eps=(), seed=23, trajectories=False
    )
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
    slope_se, intercept_se = (
        _se(fit["slope_lower"], fit["slope_upper"]),
        _se(fit["intercept_lower"], fit["intercept_upper"]),
    )
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
    cut = times.assign(
        observed=times["observed"] & (times["duration"] <= 40), duration=times["duration"].clip(upper=40), horizon=40
    )
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


def _times(cell, n, durations, observed, horizon):
    """A times frame (as collapse_times returns) for one replace cell."""
    return pd.DataFrame(
        {
            "family": "gaussian",
            "cell": cell,
            "n": n,
            "policy": "replace",
            "policy_kind": "replace",
            "replicate": np.arange(len(durations)),
            "duration": durations,
            "observed": np.asarray(observed, dtype=bool),
            "horizon": horizon,
        }
    )


def test_a_policy_interval_does_not_depend_on_other_policies_in_the_frame(gaussian):
    """Each line draws from its own stream (seed and a stable hash of its key): the replace row is
    identical with and without another policy's cells in the frame."""
    times = analysis.collapse_times(gaussian[1])
    other = times.assign(policy="mix(0.5,0.4,0.1)", policy_kind="mix", cell=times["cell"] + 10)
    alone = analysis.rates(times, n_boot=100, seed=3).set_index("policy").loc["replace"]
    both = analysis.rates(pd.concat([other, times], ignore_index=True), n_boot=100, seed=3)
    pd.testing.assert_series_equal(both.set_index("policy").loc["replace"], alone)


def test_resamples_with_an_infinite_median_are_dropped_whole_and_counted():
    """A cell whose median is finite only when a resample keeps >= 11 of its 21 chains collapsed (at
    t = 3; the rest censored) makes exactly P(Binomial(21, 11/21) <= 10) of the resamples drop out,
    within 4.5 s.e.; those resamples are dropped whole, not refitted on the other cells (which would
    put the two-cell slope, 1.67, into the interval)."""
    horizon, n_boot = 150, 2000
    frame = pd.concat(
        [
            _times(0, 10, np.arange(1, 22), True, horizon),  # median 11 in every resample
            _times(1, 40, np.arange(101, 122), True, horizon),  # median 111 in every resample
            _times(2, 80, [3] * 11 + [horizon] * 10, [True] * 11 + [False] * 10, horizon),
        ],
        ignore_index=True,
    )
    fit = analysis.rates(frame, n_boot=n_boot, seed=4).iloc[0]
    expected = stats.binom.cdf(10, 21, 11 / 21)
    assert abs(fit["boot_dropped_share"] - expected) < 4.5 * np.sqrt(expected * (1 - expected) / n_boot)
    two_cell_slope = np.log(111 / 11) / np.log(4)
    assert fit["slope_upper"] < two_cell_slope - 1, (fit["slope_lower"], fit["slope_upper"])


def test_decay_rate_counts_the_chains_it_leaves_out(gaussian):
    """Chains whose spread ratio at t is 0 (log -inf) or NaN are counted in 'missing' and left out of
    'chains' and of the mean (which is then biased towards 0: the left-out chains are the most collapsed)."""
    traj = gaussian[0]
    at_t = traj.index[(traj["generation"] == 100) & (traj["cell"] == 0)]
    damaged = traj.copy()
    damaged.loc[at_t[:5], "spread_ratio"] = 0.0
    damaged.loc[at_t[5:8], "spread_ratio"] = np.nan
    table = analysis.decay_rates(damaged, generation=100).set_index("cell")
    assert (table.loc[0, "missing"], table.loc[0, "chains"]) == (8, 150 - 8)
    assert (table.loc[1:, "missing"] == 0).all()
    kept = 2 * np.log(traj.loc[at_t[8:], "spread_ratio"].to_numpy()) / 100
    assert table.loc[0, "rate"] == pytest.approx(kept.mean())
