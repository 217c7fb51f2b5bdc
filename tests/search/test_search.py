"""sweep search end to end, on real Ray and real Parquet: the boundary it finds against an exact
answer computed here, trials as ordinary sweep cells, and resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import analysis
from analysis.theory import collapse_time_cdf
from sweep.replay import compare_with_stored, replay_chain
from sweep.search import parse_search_spec, run_search

HORIZON, RATIO, TARGET = 100, 0.5, 0.05

#: The unbiased 1-D Gaussian under replace: the n at which P(sigma_t / sigma_0 < 0.5 by T = 100)
#: is 5% (about 470, where the exact law of analysis.theory puts it).
N_SEARCH = {
    "name": "n_boundary",
    "seed": 11,
    "generations": HORIZON,
    "family": {"name": "gaussian", "estimator": "unbiased", "path": "exact"},
    "grid": {"n": [100], "policy": ["replace"]},
    "events": {"spread_below": [RATIO]},
    "record": {"every": 50},
    "search": {
        "parameters": {"n": {"low": 50, "high": 5000, "log": True}},
        "objectives": {"collapse_probability": {"event": "spread_below", "threshold": RATIO, "target": TARGET}},
        "trials": 14,
        "replicates": 400,
        "parallel": 2,
        # 99%: a single seeded run of a correct search misses the answer 1 time in 100, not 5
        "level": 0.99,
    },
}


def exact_probability(n: int) -> float:
    return float(collapse_time_cdf(n, RATIO, HORIZON)[-1])


def exact_boundary() -> tuple[int, int]:
    """The consecutive integers n0, n0 + 1 with P(n0) >= 5% > P(n0 + 1), by bisection on the exact law."""
    low, high = 50, 5000  # P(50) > 5% > P(5000)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if exact_probability(middle) >= TARGET else (low, middle)
    return low, high


@pytest.fixture(scope="module")
def n_search(ray_session, tmp_path_factory):
    out = tmp_path_factory.mktemp("search")
    report = run_search(parse_search_spec(N_SEARCH), str(out), progress=False)
    return report


def test_boundary_interval_contains_the_exact_answer(n_search):
    """The 99% interval for the n where the collapse probability is 5% contains the exact answer
    (the lattice law of analysis.theory, independent of the engine), and is narrow enough to say
    something: within a factor 1.5, where the searched range spans a factor 100."""
    n0, n1 = exact_boundary()
    boundary = n_search.summary["boundary"]
    assert boundary["parameter"] == "n" and boundary["scale"] == "log"
    assert not boundary["low_open"] and not boundary["high_open"]
    assert boundary["low"] <= n1 and boundary["high"] >= n0, (boundary, n0)
    assert boundary["high"] / boundary["low"] < 1.5
    # a negative control: the exact probability at either end of the interval is far from 5%
    # when the interval is taken a factor 1.5 wider on each side
    assert exact_probability(int(boundary["low"] / 1.5)) > 2 * TARGET
    assert exact_probability(int(boundary["high"] * 1.5)) < TARGET / 2


def test_trials_are_cells_of_an_ordinary_sweep_folder(n_search):
    """Every trial's chains are stored like a grid cell's, with a 'trial' column; analysis.load and
    replay read them; search.json lists the trials with their measures."""
    location = n_search.location
    summary = json.loads(Path(location, "search.json").read_text())
    assert summary["trials_done"] == N_SEARCH["search"]["trials"]
    events = analysis.load_events(location)
    per_cell = (
        events[events["event"] == "spread_below"]
        .groupby("cell")
        .agg(trial=("trial", "first"), n=("n", "first"), chains=("replicate", "nunique"), count=("observed", "sum"))
    )
    trials = {t["cell"]: t for t in summary["trials"] if t["state"] == "COMPLETE"}
    assert set(per_cell.index) == set(trials) and (per_cell["chains"] == 400).all()
    for cell, row in per_cell.iterrows():
        first = min(t["trial"] for t in summary["trials"] if t["cell"] == cell)
        assert row["trial"] == first and row["n"] == trials[cell]["coordinates"]["n"]
        assert row["count"] == trials[cell]["counts"]["collapse_probability"]["count"]
    cell = int(per_cell.index[-1])
    assert compare_with_stored(location, cell, 7, replay_chain(location, cell, 7)) == []
    assert summary["chains"] == 400 * len(per_cell)
