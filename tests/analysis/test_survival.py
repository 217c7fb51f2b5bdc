from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import analysis
from analysis.figures import format_time


def _times(durations, observed, horizon, cell=0, n=10):
    """A collapse_times-shaped frame for one cell."""
    return pd.DataFrame({
        "family": "gaussian", "cell": cell, "n": n, "policy": "replace", "policy_kind": "replace",
        "replicate": np.arange(len(durations)), "event": "spread_below", "threshold": 0.5,
        "duration": np.asarray(durations), "observed": np.asarray(observed, dtype=bool), "horizon": horizon,
    })


def _events(generation, observed, threshold=0.5, event="spread_below", cell=0):
    return pd.DataFrame({
        "family": "gaussian", "cell": cell, "n": 10, "policy": "replace", "replicate": np.arange(len(generation)),
        "event": event, "threshold": threshold, "symbol": None, "initial_count": None,
        "generation": np.asarray(generation, dtype=np.int32), "observed": np.asarray(observed, dtype=bool),
    })


HAND = dict(durations=[2, 3, 3, 5, 6, 8], observed=[1, 1, 0, 1, 0, 1], horizon=10)


def test_km_curve_median_and_rmst_match_hand_computation():
    """On six chains with two censored, KM steps, median, RMST and its s.e. equal values worked out by hand."""
    times = _times(**HAND)
    curve = analysis.survival_curves(times).set_index("generation")["survival"]
    assert curve.loc[[2.0, 3.0, 5.0, 6.0, 8.0]].to_numpy() == pytest.approx([5 / 6, 2 / 3, 4 / 9, 4 / 9, 0.0])
    row = analysis.survival(times).iloc[0]
    assert row["median"] == 5
    # Area under the step curve up to 10: 2*1 + 1*5/6 + 2*2/3 + 3*4/9 + 2*0.
    assert row["rmst"] == pytest.approx(5.5)
    # Klein-Moeschberger: A_j = area after each event time, terms d A^2 / (n (n - d)); t=8 has n = d.
    var = 3.5**2 / (6 * 5) + (8 / 3) ** 2 / (5 * 4) + (4 / 3) ** 2 / (3 * 2)
    assert row["rmst_se"] == pytest.approx(np.sqrt(var))
    assert (row["chains"], row["events"], row["censored_share"]) == (6, 4, pytest.approx(2 / 6))


def test_km_band_is_exponential_greenwood_by_hand():
    """The curve's band and the median's CI follow the log(-log) Greenwood formula computed by hand."""
    times = _times(**HAND)
    curves = analysis.survival_curves(times).set_index("generation")
    s = np.array([5 / 6, 2 / 3, 4 / 9])
    greenwood = np.cumsum([1 / (6 * 5), 1 / (5 * 4), 1 / (3 * 2)])
    z = stats.norm.ppf(0.975)
    theta, se = np.log(-np.log(s)), np.sqrt(greenwood) / np.abs(np.log(s))
    lower, upper = np.exp(-np.exp(theta + z * se)), np.exp(-np.exp(theta - z * se))
    assert curves.loc[[2.0, 3.0, 5.0], "lower"].to_numpy() == pytest.approx(lower)
    assert curves.loc[[2.0, 3.0, 5.0], "upper"].to_numpy() == pytest.approx(upper)
    row = analysis.survival(times).iloc[0]
    band = curves[["lower", "upper"]]
    first_below = lambda col: band.index[band[col] <= 0.5].min() if (band[col] <= 0.5).any() else np.inf  # noqa: E731
    assert (row["median_lower"], row["median_upper"]) == (first_below("lower"), first_below("upper"))


def test_censoring_is_honoured_where_the_naive_mean_is_biased():
    """With 36% of chains censored at T, the naive mean of observed times is far off while KM's RMST and median are not."""
    p, horizon, chains = 0.02, 50, 2000
    rng = np.random.default_rng(7)
    raw = rng.geometric(p, chains)
    times = _times(np.minimum(raw, horizon), raw <= horizon, horizon)
    row = analysis.survival(times).iloc[0]
    true_rmst = (1 - (1 - p) ** horizon) / p  # E[min(D, T)] = sum_{t<T} (1-p)^t
    true_median = np.ceil(np.log(0.5) / np.log(1 - p))
    naive = times.loc[times["observed"], "duration"].mean()
    assert abs(naive - true_rmst) > 10 * row["rmst_se"]
    assert abs(row["rmst"] - true_rmst) < 5 * row["rmst_se"]
    # s.e. of a KM median ~ sqrt(S(1-S)/R) / f(m), with density f(m) ~ p/2; +1 for the integer grid.
    assert abs(row["median"] - true_median) < 5 * np.sqrt(0.25 / chains) / (p / 2) + 1


def test_median_stays_inf_when_fewer_than_half_collapse():
    """A cell where fewer than half the chains collapse by T keeps median = inf, shown as "> T"."""
    times = _times([3, 7, 20, 20, 20, 20], [1, 1, 0, 0, 0, 0], 20)
    row = analysis.survival(times).iloc[0]
    assert np.isinf(row["median"]) and np.isinf(row["median_upper"])
    assert format_time(row["median"], 20) == "> 20"
    assert format_time(row["median"]) == "∞"


def test_collapse_times_reads_events_and_infers_the_horizon():
    """collapse_times keeps one row per chain, duration = generation, and takes T from the censored rows."""
    events = pd.concat([_events([4, 30, 12], [True, False, True]),
                        _events([9, 30, 30], [True, False, False], threshold=0.2)])
    times = analysis.collapse_times(events, threshold=0.5)
    assert times["duration"].tolist() == [4, 30, 12]
    assert times["observed"].tolist() == [True, False, True]
    assert (times["horizon"] == 30).all()


def test_collapse_times_names_what_is_wrong():
    """Ambiguous thresholds, absent events and missing columns raise errors that name the fix."""
    events = pd.concat([_events([4], [True]), _events([9], [True], threshold=0.2)])
    with pytest.raises(ValueError, match=r"several thresholds.*pass threshold="):
        analysis.collapse_times(events)
    with pytest.raises(ValueError, match=r"events present: \['spread_below'\]"):
        analysis.collapse_times(events, "collapse")
    with pytest.raises(ValueError, match="thresholds present"):
        analysis.collapse_times(events, threshold=0.3)
    with pytest.raises(ValueError, match="lacks column"):
        analysis.collapse_times(events.drop(columns="observed"))
