from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import analysis
from analysis.figures import format_time


def _times(durations, observed, horizon, cell=0, n=10):
    """A collapse_times-shaped frame for one cell."""
    return pd.DataFrame(
        {
            "family": "gaussian",
            "cell": cell,
            "n": n,
            "policy": "replace",
            "policy_kind": "replace",
            "replicate": np.arange(len(durations)),
            "event": "spread_below",
            "threshold": 0.5,
            "duration": np.asarray(durations),
            "observed": np.asarray(observed, dtype=bool),
            "horizon": horizon,
        }
    )


def _events(generation, observed, threshold=0.5, event="spread_below", cell=0):
    return pd.DataFrame(
        {
            "family": "gaussian",
            "cell": cell,
            "n": 10,
            "policy": "replace",
            "replicate": np.arange(len(generation)),
            "event": event,
            "threshold": threshold,
            "symbol": None,
            "initial_count": None,
            "generation": np.asarray(generation, dtype=np.int32),
            "observed": np.asarray(observed, dtype=bool),
        }
    )


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
    events = pd.concat(
        [_events([4, 30, 12], [True, False, True]), _events([9, 30, 30], [True, False, False], threshold=0.2)]
    )
    times = analysis.collapse_times(events, threshold=0.5)
    assert times["duration"].tolist() == [4, 30, 12]
    assert times["observed"].tolist() == [True, False, True]
    assert (times["horizon"] == 30).all()
    assert times["lower"].tolist() == [4, 30, 12]  # checked every generation: the interval is the point


def test_collapse_times_carries_the_interval_of_events_checked_every_k():
    """With checked_every = 4 an event seen at t happened in (t - 4, t]: lower = t - 3 for observed rows and
    lower = duration for censored ones; the other columns are those of an every-generation table."""
    events = _events([4, 28, 12, 8], [True, False, True, True]).assign(checked_every=np.int32(4))
    times = analysis.collapse_times(events)
    assert times["lower"].tolist() == [1, 28, 9, 5]
    plain = analysis.collapse_times(events.drop(columns="checked_every"))
    assert list(times.columns) == list(plain.columns)
    pd.testing.assert_frame_equal(times.drop(columns="lower"), plain.drop(columns="lower"))


@pytest.fixture(scope="module")
def checked_runs(ray_session, tmp_path_factory):
    """The same categorical chains (same seed and cells) with events checked every generation and every
    4th, to a horizon T = 42 that is not a multiple of 4 (the last check is at 40)."""
    from sweep.runner import run_sweep
    from sweep.spec import parse_spec

    folders = []
    for every in (1, 4):
        spec = parse_spec(
            {
                "name": f"every-{every}",
                "seed": 11,
                "generations": 42,
                "replicates": 60,
                "family": {"name": "categorical", "k": 3, "probs": "uniform"},
                "grid": {"n": [10, 20]},
                "events": {"symbols": False, "collapse": True, "every": every},
            }
        )
        folders.append(run_sweep(spec, str(tmp_path_factory.mktemp(f"every{every}")), progress=False).location)
    return folders


def test_interval_from_checks_every_k_holds_the_exact_collapse_time(checked_runs):
    """Every chain's exact collapse generation (one symbol left is absorbing) lies in [lower, duration] of the
    run checked every 4th generation, both ends are attained (an interval one generation too narrow or too
    wide fails), chains that collapse after the last check (t = 41, 42) are censored at 40, and the exact
    KM median lies between the medians of the interval ends."""
    exact, checked = (
        analysis.collapse_times(analysis.load_events(f), "collapse").set_index(["cell", "replicate"])
        for f in checked_runs
    )
    assert (checked.loc[checked["observed"], "duration"] % 4 == 0).all()
    assert (checked.loc[~checked["observed"], "duration"] == 40).all()
    seen = checked["observed"]
    assert seen.equals(exact["observed"] & (exact["duration"] <= 40))
    t = exact.loc[seen, "duration"]
    lower, upper = checked.loc[seen, "lower"], checked.loc[seen, "duration"]
    assert ((lower <= t) & (t <= upper)).all() and ((upper - lower) == 3).all()
    assert (t == lower).any() and (t == upper).any()
    median = lambda times: analysis.survival(times.reset_index()).set_index("cell")["median"]  # noqa: E731
    assert (median(checked.assign(duration=checked["lower"])) <= median(exact)).all()
    assert (median(exact) <= median(checked)).all()


def test_report_says_events_checked_every_k_are_interval_censored(checked_runs, tmp_path):
    """The report of the every-4 run names the interval (t - 4, t], gives the median at the intervals'
    starts next to the usual one, and censors at the last check, 40 (the every-generation report of the
    axes test in test_report.py has none of it)."""
    text = analysis.write_report(checked_runs[1], tmp_path / "k4", n_boot=20)[-1].read_text()
    assert "events checked every 4 generations: interval-censored, a time t means (t − 4, t]" in text
    assert "| median collapse time [95% CI] | median, each event at its interval's start |" in text
    assert "censored at generation 40, the last check by T = 42" in text


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
