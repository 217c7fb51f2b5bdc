"""Nested thresholds checked with one comparison per chain (sweep.ladder) give exactly the first
crossing times of comparing every threshold at every generation, for spread-like (below) and
distance-like (above) events, through jumps over several thresholds, NaNs and restores."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from sweep.events import NOT_YET, EventSet
from sweep.families.gaussian import GaussianEvents, GaussianFamily
from sweep.ladder import Ladder
from sweep.spec import parse_spec


def walks(batch: int, generations: int, seed: int) -> np.ndarray:
    """Log-normal random walks with big steps (several thresholds crossed at once), some NaNs and infs."""
    rng = np.random.default_rng(seed)
    values = np.exp(np.cumsum(rng.normal(-0.05, 0.6, (generations, batch)), axis=0))
    values[rng.random(values.shape) < 0.002] = np.nan
    values[rng.random(values.shape) < 0.002] = np.inf
    return values


def naive(values: np.ndarray, limits: list[float], below: bool) -> np.ndarray:
    """First generation (1-based) each chain meets each threshold, one comparison per threshold."""
    first = np.full((len(limits), values.shape[1]), NOT_YET)
    with np.errstate(invalid="ignore"):
        for generation, row in enumerate(values, start=1):
            for k, limit in enumerate(limits):
                holds = row < limit if below else row > limit
                first[k, holds & (first[k] == NOT_YET)] = generation
    return first


@pytest.mark.parametrize("below", [True, False])
def test_ladder_matches_every_threshold_compared(below):
    """Unsorted and repeated thresholds, chains jumping over several at once, NaN and inf values:
    the same first times as the plain comparison, and a ladder restored mid-way (pickled with its
    set) continues exactly."""
    values = walks(300, 400, seed=1 if below else 2)
    limits = [0.5, 0.01, 0.1, 0.1] if below else [2.0, 30.0, 5.0, 2.0]
    expected = naive(values, limits, below)
    # the data must exercise the cases a wrong ladder gets wrong
    crossed_together = np.any((expected[1:] == expected[:-1]) & (expected[1:] != NOT_YET))
    assert crossed_together and (expected == NOT_YET).any() and (expected != NOT_YET).any()

    events = EventSet(values.shape[1], values.shape[0])
    slots = [events.add("event", limit) for limit in limits]
    ladder = Ladder(events, slots, limits, below=below)
    for generation, row in enumerate(values[:150], start=1):
        ladder.update(generation, row)
    ladder = pickle.loads(pickle.dumps(ladder))
    for generation, row in enumerate(values[150:], start=151):
        ladder.update(generation, row)
    got = ladder.events.columns()["generation"].reshape(-1, len(limits)).T
    observed = ladder.events.columns()["observed"].reshape(-1, len(limits)).T
    np.testing.assert_array_equal(np.where(observed, got, NOT_YET), expected)


def test_ladder_built_on_a_filled_set_continues_from_it():
    """A ladder made over a set that already holds first times (a tracker pickled by an earlier
    version, rebuilt on load) starts from the thresholds those chains have crossed."""
    values = walks(200, 300, seed=3)
    limits = [0.5, 0.1, 0.01]
    expected = naive(values, limits, True)
    events = EventSet(values.shape[1], values.shape[0])
    slots = [events.add("spread_below", limit) for limit in limits]
    first = Ladder(events, slots, limits, below=True)
    for generation, row in enumerate(values[:100], start=1):
        first.update(generation, row)
    second = Ladder(events, slots, limits, below=True)
    for generation, row in enumerate(values[100:], start=101):
        second.update(generation, row)
    observed = events.columns()["observed"].reshape(-1, 3).T
    got = np.where(observed, events.columns()["generation"].reshape(-1, 3).T, NOT_YET)
    np.testing.assert_array_equal(got, expected)


def gaussian(dim: int, distance: list[float]) -> tuple[GaussianFamily, object]:
    spec = parse_spec(
        {
            "name": "ladder",
            "seed": 1,
            "generations": 10,
            "replicates": 2,
            "family": {"name": "gaussian", "dim": dim, "cov": 2.0},
            "grid": {"n": [10], "policy": ["replace"]},
            "events": {"spread_below": [0.1, 0.5, 0.01], "distance_above": distance},
        }
    )
    return spec.family, spec.events


@pytest.mark.parametrize("dim", [1, 2])
def test_gaussian_events_equal_the_per_threshold_checks(dim):
    """spread_below (variance, or log det ratio in d > 1), distance_above (w2) and diverged of the
    Gaussian tracker equal one comparison per threshold; a tracker pickled in the form earlier
    versions wrote (no ladders) continues exactly once loaded."""
    from sweep.families.gaussian import Params

    family, events_spec = gaussian(dim, [0.5, 3.0])
    values = walks(250, 200, seed=4 + dim)
    mean = np.log1p(np.nan_to_num(values, posinf=1e3)) * 0.7
    with np.errstate(invalid="ignore"):
        params = [
            Params(mean[g], 2.0 * values[g])
            if dim == 1
            else Params(np.stack([mean[g], -mean[g]], axis=1), 2.0 * values[g][:, None, None] * np.eye(2))
            for g in range(values.shape[0])
        ]
    tracker = GaussianEvents(family, values.shape[1], values.shape[0], events_spec)
    for generation, p in enumerate(params[:90], start=1):
        tracker.update(generation, p, None)
    state = dict(tracker.__dict__)
    del state["spread_ladder"], state["distance_ladder"]  # as an earlier version pickled it
    old = GaussianEvents.__new__(GaussianEvents)
    old.__dict__.update(state)
    tracker = pickle.loads(pickle.dumps(old))
    for generation, p in enumerate(params[90:], start=91):
        tracker.update(generation, p, None)

    with np.errstate(all="ignore"):
        spread = np.stack([np.exp(family._log_spread(p)) for p in params])
        w2 = np.stack([family._w2(p) for p in params])
        variance = np.stack([p.cov if dim == 1 else np.trace(p.cov, axis1=1, axis2=2) for p in params])
    expected = np.concatenate(
        [
            naive(np.log(spread), list(np.log(events_spec.spread_below)), True),
            naive(w2, [0.5, 3.0], False),
            naive(np.where(np.isfinite(variance), 0.0, 1.0), [0.5], False),
        ]
    )
    assert (expected[:3] != NOT_YET).any() and (expected[3:5] != NOT_YET).any() and (expected[5] != NOT_YET).any()
    columns = tracker.set.columns()
    got = np.where(columns["observed"], columns["generation"], NOT_YET).reshape(-1, 6).T
    np.testing.assert_array_equal(got, expected)
