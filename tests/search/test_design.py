"""The sequential design of a boundary search: where it puts trials, and that concentrating them
there comes close to the narrowest interval any design of as many chains can give (expected counts of a
known logistic law, no engine: fast and deterministic). The comparison with a dense grid of the
real engine is tests/search/test_dense_grid.py (slow)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.special import expit, logit

from analysis._boundary import fit_boundary
from sweep.search.design import OFFSETS, SAMPLER_EVERY, explore, next_value, placed_by_design

TRUE, SLOPE, TARGET = 0.05, -80.0, 0.05
RANGE = SimpleNamespace(low=0.0, high=0.3, log=False, integer=False)
#: Two trials on either side of the target: the fit is trusted.
BRACKETED = ([0.0, 0.3], [40, 0], [100, 100])


def law(x):
    return expit(logit(TARGET) + SLOPE * (np.asarray(x, dtype=float) - TRUE))


def fitted(x, k, m):
    fit = fit_boundary(x, k, m, TARGET, bounds=(RANGE.low, RANGE.high))
    return fit.to_dict("policy.fresh_real"), fit


def test_trials_go_below_above_and_at_the_estimate_in_link_units():
    """With a fit whose slope is b, the design's trials are where the fitted linear predictor is
    logit(target) - 1, + 1 and + 0 in turn (fitted probabilities 1.9%, 12.5%, 5% for a 5% target),
    clipped to the range; a probit fit takes the same offsets in probit units."""
    fit = {"estimate": 0.05, "slope": -80.0, "link": "logit"}
    startup = 4
    values = [next_value(fit, BRACKETED, TARGET, startup + i, startup, RANGE) for i in range(3)]
    eta = [logit(TARGET) + fit["slope"] * (v - fit["estimate"]) for v in values]
    assert eta == pytest.approx([logit(TARGET) + o for o in OFFSETS], abs=1e-12)
    assert sorted(expit(eta)) == pytest.approx([0.0191, 0.05, 0.1251], abs=1e-3)
    probit = next_value({**fit, "link": "probit"}, BRACKETED, TARGET, startup, startup, RANGE)
    assert probit - 0.05 == pytest.approx((values[0] - 0.05) / 1.7)
    assert next_value({"estimate": 0.001, "slope": -80.0}, BRACKETED, TARGET, startup + 1, startup, RANGE) == 0.0
    log_n = SimpleNamespace(low=50, high=5000, log=True, integer=True)
    n = next_value(
        {"estimate": 500.0, "slope": -2.0}, ([50, 5000], [30, 0], [100, 100]), TARGET, startup, startup, log_n
    )
    assert isinstance(n, int) and n == round(500 * math.exp(OFFSETS[0] / -2.0))
    assert next_value({"estimate": None, "slope": None}, BRACKETED, TARGET, startup, startup, RANGE) is None


def test_an_unbracketed_boundary_is_looked_for_beyond_the_trials():
    """While every trial's rate is below the target (a tail where 1 chain in 250 has the event),
    the fit, however confident, is not followed: the trial goes halfway from the trials to the end
    of the range on the side whose trials had more events; with every rate above the target, the
    side with fewer; on ln x for a log-scale parameter."""
    tail = ([0.08, 0.11, 0.12, 0.2], [0, 2, 1, 0], [250] * 4)
    wrong = {"estimate": 0.16, "slope": 66.0, "link": "logit"}  # a tail fit sloping the wrong way
    assert next_value(wrong, tail, TARGET, 10, 4, RANGE) == pytest.approx(0.04)
    assert next_value(None, ([0.1], [0], [250]), TARGET, 10, 4, RANGE) == pytest.approx(0.2)
    head = ([0.0, 0.02], [200, 120], [250, 250])  # every rate above 5%, falling with x
    assert explore(head, TARGET, RANGE) == pytest.approx(0.16)
    assert explore(([0.0, 0.3], [0, 0], [250, 250]), TARGET, RANGE) == pytest.approx(0.15)
    log_n = SimpleNamespace(low=10, high=10_000, log=True, integer=True)
    assert explore(([100, 1000], [100, 40], [250, 250]), TARGET, log_n) == pytest.approx(10**3.5)


def test_the_sampler_keeps_the_start_up_trials_and_a_share_of_the_rest():
    """Start-up trials are the sampler's, then one in SAMPLER_EVERY."""
    placed = [placed_by_design(i, 3) for i in range(3 + 3 * SAMPLER_EVERY)]
    assert not any(placed[:3])
    assert placed[3:].count(False) == 3


def sequential(trials: int, chains: int, placement: str) -> tuple[list[float], object]:
    """A search on expected counts: three fixed start-up trials, then the design's points (or,
    as a negative control, points spread evenly over the range)."""
    x = [0.0, 0.15, 0.3]
    for number in range(len(x), trials):
        value = None
        if placement == "design" and placed_by_design(number, 3):
            k = np.round(chains * law(x))
            m = np.full(len(x), chains)
            value = next_value(fitted(x, k, m)[0], (x, k, m), TARGET, number, 3, RANGE)
        x.append(value if value is not None else RANGE.high * ((number * 0.618034) % 1.0))
    return x, fitted(x, np.round(chains * law(x)), np.full(len(x), chains))[1]


def optimal_width(chains: int, level_z: float = 1.959964) -> float:
    """The narrowest 95% interval any design of ``chains`` chains can give for the crossing, to
    first order: every chain at the boundary itself, the slope known (Fisher information
    b^2 p (1 - p) per chain)."""
    return 2 * level_z / (abs(SLOPE) * math.sqrt(chains * TARGET * (1 - TARGET)))


def test_the_design_is_close_to_the_best_any_design_can_do():
    """Expected counts of a logistic law, 62 trials x 250 chains: the sequential search's interval
    holds the true boundary and is within 30% of the narrowest interval its chains could give
    (all of them at the boundary with the slope known), where the same trials spread over the
    range (no design) are more than twice as wide; most chains went within one logit unit of
    the boundary."""
    x, search = sequential(62, 250, "design")
    best = optimal_width(62 * 250)
    assert search.low <= TRUE <= search.high
    assert search.estimate == pytest.approx(TRUE, abs=1e-4)  # counts rounded to whole chains
    assert best < search.high - search.low < 1.3 * best
    assert np.mean(np.abs(np.array(x) - TRUE) <= 1.1 / abs(SLOPE)) > 0.8
    _, spread = sequential(62, 250, "spread")
    assert spread.low <= TRUE <= spread.high
    assert spread.high - spread.low > 2 * best
