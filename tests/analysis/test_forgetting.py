from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import analysis
from analysis import theory
from tests.analysis.synthetic import categorical_frames

N, HORIZON = 100, 120
# Five or six bins: 4-sigma intervals keep a false alarm among them below 1e-3.
Z = 4.0


@pytest.fixture(scope="module")
def categorical():
    """Wright-Fisher chains, n = 100, seven symbols, 150 chains, T = 120."""
    return categorical_frames(ns=(N,), replicates=150, generations=HORIZON, eps=(), seed=22)


@pytest.fixture(scope="module")
def many():
    """The same law with 1000 chains, for the level and slope checks."""
    return categorical_frames(ns=(N,), replicates=1000, generations=HORIZON, eps=(), seed=24)[1]


def _exact_medians(events, table):
    """Median loss time of each bin under the generating law: the mean over the bin's symbols of
    the exact Wright-Fisher loss-time law given each one's initial count (theory.symbol_loss_cdf)."""
    law = theory.symbol_loss_cdf(np.arange(N + 1), N, HORIZON)
    counts = events.loc[events["event"] == "symbol_lost", "initial_count"].to_numpy(dtype=np.int64)
    medians = []
    for low, high in zip(table["bin_low"], table["bin_high"]):
        pooled = law[counts[(counts >= low) & (counts < high)]].mean(axis=0)
        medians.append(float(np.argmax(pooled >= 0.5)) if (pooled >= 0.5).any() else np.inf)
    return np.array(medians)


def _inside(table, medians):
    return (table["median_lower"] <= medians) & (medians <= table["median_upper"])


def test_forgetting_medians_sit_at_the_level_of_the_generating_law(many):
    """Each count bin's KM median has the exact Wright-Fisher median of its symbols inside its 4-sigma CI
    (inf when the law stays above one half by T); losses recorded one generation late (an off-by-one
    in the event generation) move the rarest bin's CI off it."""
    level = 1 - 2 * stats.norm.sf(Z)
    table = analysis.forgetting_times(many, confidence=level)
    exact = _exact_medians(many, table)
    assert len(table) >= 5 and np.isfinite(exact).sum() >= 4
    assert _inside(table, exact).all(), (table, exact)
    late = many.copy()
    lost = (late["event"] == "symbol_lost") & late["observed"]
    late.loc[lost, "generation"] += 1
    beyond = (late["event"] == "symbol_lost") & (late["generation"] > HORIZON)
    late.loc[beyond, "generation"], late.loc[beyond, "observed"] = HORIZON, False
    late_table = analysis.forgetting_times(late, confidence=level)
    assert not _inside(late_table, _exact_medians(late, late_table)).iloc[0]


def test_forgetting_line_agrees_with_the_generating_law(many):
    """Slope and intercept of ln(median) on ln(count) lie within 4 bootstrap s.e. (slope: about +-0.13)
    of the line through the exact medians of the same bins (slope ~1.06 at n = 100, Feller's 2c/ln 2
    says 1); bins with median > T are named and hold the largest counts."""
    fit = analysis.forgetting_rates(many, n_boot=300, seed=2).iloc[0]
    table = analysis.forgetting_times(many)
    used = np.isfinite(table["median"]).to_numpy()
    assert fit["bins_used"] == used.sum() >= 4
    slope, intercept = np.polyfit(np.log(table["count"][used]), np.log(_exact_medians(many, table)[used]), 1)
    slope_se = (fit["slope_upper"] - fit["slope_lower"]) / (2 * 1.96)
    intercept_se = (fit["intercept_upper"] - fit["intercept_lower"]) / (2 * 1.96)
    assert slope_se < 0.04  # what 1000 chains support
    assert abs(fit["slope"] - slope) < Z * slope_se, (fit["slope"], slope, slope_se)
    assert abs(fit["intercept"] - intercept) < Z * intercept_se, (fit["intercept"], intercept, intercept_se)
    never = table[~used]
    assert len(never) == fit["bins"] - fit["bins_used"]
    assert (never["count"] > table.loc[used, "count"].max()).all()


def test_forgetting_times_bins_counts_and_skips_zero(categorical):
    """Explicit bins group initial counts as [e_i, e_i+1); count 0 (lost at generation 1) is never binned."""
    events = categorical[1]
    table = analysis.forgetting_times(events, bins=[1, 4, 16, 64])
    assert table["bin_low"].tolist() == [1.0, 4.0, 16.0]
    lost = events[events["event"] == "symbol_lost"]
    counts = lost["initial_count"].astype(float)
    assert table["symbols"].tolist() == [
        int(((counts >= a) & (counts < b)).sum()) for a, b in [(1, 4), (4, 16), (16, 64)]
    ]
    with pytest.raises(ValueError, match="bins must be increasing"):
        analysis.forgetting_times(events, bins=[4, 2])


def test_a_cell_interval_does_not_depend_on_other_cells_in_the_frame():
    """Each cell draws from its own stream: cell 1's row is identical with and without cell 0 in the frame."""
    events = categorical_frames(ns=(60, 100), replicates=60, generations=80, eps=(), seed=25)[1]
    both = analysis.forgetting_rates(events, n_boot=100, seed=3)
    alone = analysis.forgetting_rates(events[events["cell"] == 1], n_boot=100, seed=3)
    pd.testing.assert_series_equal(both[both["cell"] == 1].iloc[0], alone.iloc[0], check_names=False)


def _symbol_lost(symbol, count, generations, observed):
    chains = len(generations)
    return pd.DataFrame(
        {
            "family": "categorical",
            "cell": 0,
            "n": 100,
            "policy": "replace",
            "replicate": np.arange(chains),
            "event": "symbol_lost",
            "threshold": np.nan,
            "symbol": symbol,
            "initial_count": count,
            "generation": generations,
            "observed": np.asarray(observed, dtype=bool),
        }
    )


def test_dropped_resamples_are_reported_and_dropped_whole():
    """A bin whose median is finite only when a resample keeps >= 11 of 21 chains' losses (the rest
    censored) is reported as boot_dropped_share = P(Binomial(21, 11/21) <= 10) within 4.5 s.e., and those
    resamples are dropped whole, not refitted on the other bins."""
    horizon, n_boot = 150, 2000
    events = pd.concat(
        [
            _symbol_lost(0, 1, np.arange(2, 23), True),  # median 12 in every resample
            _symbol_lost(1, 4, np.arange(101, 122), True),  # median 111 in every resample
            _symbol_lost(2, 16, [3] * 11 + [horizon] * 10, [True] * 11 + [False] * 10),
        ],
        ignore_index=True,
    )
    fit = analysis.forgetting_rates(events, n_boot=n_boot, seed=4).iloc[0]
    assert fit["bins_used"] == 3
    expected = stats.binom.cdf(10, 21, 11 / 21)
    assert abs(fit["boot_dropped_share"] - expected) < 4.5 * np.sqrt(expected * (1 - expected) / n_boot)
    two_bin_slope = np.log(111 / 12) / np.log(4)
    assert fit["slope_upper"] < two_bin_slope - 1, (fit["slope_lower"], fit["slope_upper"])
