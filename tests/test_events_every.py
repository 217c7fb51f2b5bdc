"""events.every: k checks events every k-th generation on the same streams, so each observed time is
the first multiple of k at which the event's condition holds (interval-censored)."""

from __future__ import annotations

import numpy as np
import pandas as pd

import analysis
from sweep.runner import run_sweep
from sweep.spec import parse_spec

EVERY = 5
HORIZON = 42  # not a multiple of 5: the last check is at 40, where unobserved events are censored
KEYS = ["cell", "replicate", "event", "threshold", "symbol"]


def _events(tmp_path, raw: dict, every: int) -> pd.DataFrame:
    events = {**raw.get("events", {}), **({"every": every} if every != 1 else {})}
    report = run_sweep(parse_spec({**raw, "events": events}), str(tmp_path / f"every{every}"), progress=False)
    return analysis.load_events(report.location)


def _pair(tmp_path, raw: dict) -> pd.DataFrame:
    """Each chain's event rows checked every generation (``_1``) and every 5th (``_5``)."""
    one, five = _events(tmp_path, raw, 1), _events(tmp_path, raw, EVERY)
    assert set(one["checked_every"]) == {1} and set(five["checked_every"]) == {EVERY}
    both = one.merge(five, on=KEYS, suffixes=("_1", "_5"), how="outer", validate="one_to_one")
    assert len(both) == len(one) == len(five)
    return both


def test_absorbing_events_are_the_next_multiple_of_k(ray_session, tmp_path):
    """A lost symbol stays lost under replace: with every 5, each loss is recorded at the first
    multiple of 5 at or after its exact time, censored at 40 when that is beyond it; a time t
    means the loss happened in (t - 5, t]."""
    raw = {
        "name": "every",
        "seed": 21,
        "generations": HORIZON,
        "replicates": 300,
        "family": {"name": "categorical", "k": 12, "probs": {"zipf": 1.2}},
        "grid": {"n": [15], "policy": ["replace"]},
    }
    both = _pair(tmp_path, raw)
    assert both["observed_1"].sum() > 1000  # plenty of losses, most not on a multiple of 5
    assert (both.loc[both["observed_1"], "generation_1"] % EVERY != 0).mean() > 0.5
    next_check = -(-both["generation_1"] // EVERY) * EVERY
    observed = both["observed_1"] & (next_check <= HORIZON - HORIZON % EVERY)
    assert (both["observed_5"] == observed).all()
    assert (both.loc[observed, "generation_5"] == next_check[observed]).all()
    assert (both.loc[~observed, "generation_5"] == HORIZON - HORIZON % EVERY).all()
    happened = both.loc[observed]
    assert (
        (happened["generation_5"] - EVERY < happened["generation_1"])
        & (happened["generation_1"] <= happened["generation_5"])
    ).all()


def test_other_events_are_the_first_multiple_of_k_where_they_hold(ray_session, tmp_path):
    """rate_above of the exponential example can hold and then stop holding: with every 5 its time
    is the first multiple of 5 at which rate_t / rate_0 exceeds the threshold in the chain's own
    trajectory (recorded at every generation), and never before the first generation at which it
    does (the interval (t - 5, t] is a bound only for events that stay)."""
    raw = {
        "name": "every",
        "seed": 22,
        "generations": HORIZON,
        "replicates": 300,
        "family": {"name": "examples.custom_family.exponential:ExponentialFamily"},
        "grid": {"n": [10], "policy": ["replace"]},
        "events": {"rate_above": [1.5], "distance_above": []},
        "record": {"every": 1},
    }
    events = _events(tmp_path, raw, EVERY)
    events = events[events["event"] == "rate_above"].set_index("replicate").sort_index()
    traj = analysis.load(str(tmp_path / f"every{EVERY}" / "every"))
    holds = traj.pivot(index="replicate", columns="generation", values="rate_ratio").sort_index().loc[:, 1:] > 1.5
    checks = holds[np.arange(EVERY, HORIZON + 1, EVERY)].to_numpy()
    seen = checks.any(axis=1)
    np.testing.assert_array_equal(events["observed"].to_numpy(), seen)
    recorded = events["generation"].to_numpy()
    np.testing.assert_array_equal(recorded[seen], EVERY * (checks.argmax(axis=1)[seen] + 1))
    assert (recorded[~seen] == HORIZON - HORIZON % EVERY).all()  # censored at the last check
    exact = holds.to_numpy().argmax(axis=1) + 1  # the first generation at which it held
    assert (recorded[seen] >= exact[seen]).all()
    # the distinction matters here: some chains crossed, fell back, and were first seen later
    assert (recorded[seen] >= exact[seen] + EVERY).any()
