"""The boundary estimator: levels against the generating law, the interval against the large-sample
theory, its coverage, and the Pareto front."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, logit

from analysis._boundary import fit_boundary, pareto_front

TRUE, SLOPE, TARGET = 0.06, -60.0, 0.05


def law(x):
    return expit(logit(TARGET) + SLOPE * (np.asarray(x) - TRUE))


def test_large_sample_interval_matches_the_delta_method():
    """With 10^5 chains per cell the profile interval is the Wald interval of the crossing
    (delta method on the fitted line) to 2%: a cut-off of chi2(0.95) instead of chi2(0.95) / 2,
    or a slope and intercept mixed up, would be off by 40% or more."""
    x = np.linspace(0.03, 0.09, 7)
    m = np.full(x.size, 100_000)
    k = np.round(m * law(x))  # the expected counts: the fit is the law itself
    fit = fit_boundary(x, k, m, TARGET, bounds=(0.0, 0.3))
    assert fit.estimate == pytest.approx(TRUE, abs=1e-4)
    gradient = np.array([-1.0, -(logit(TARGET) - fit.a) / fit.b]) / fit.b  # d theta / d (a, b)
    half = 1.959964 * np.sqrt(gradient @ fit.cov @ gradient)
    assert fit.high - fit.estimate == pytest.approx(half, rel=0.02)
    assert fit.estimate - fit.low == pytest.approx(half, rel=0.02)
    assert fit.cells_used == 7 and fit.chains_used == 700_000


def test_coverage_on_the_generating_law():
    """Over 150 data sets of 15 cells x 300 chains drawn from a logistic law, the 95% interval
    holds the true boundary in 95% +- 4.5 se of them, and the estimates centre on it."""
    rng = np.random.default_rng(20261130)
    covered, estimates = 0, []
    for _ in range(150):
        x = rng.uniform(0.0, 0.3, 15)
        m = np.full(15, 300)
        fit = fit_boundary(x, rng.binomial(m, law(x)), m, TARGET, bounds=(0.0, 0.3))
        covered += fit.low <= TRUE <= fit.high
        estimates.append(fit.estimate)
    se = np.sqrt(0.95 * 0.05 / 150)
    assert abs(covered / 150 - 0.95) < 4.5 * se
    estimates = np.array(estimates)
    assert abs(np.mean(estimates) - TRUE) < 4.5 * np.std(estimates) / np.sqrt(150)


def test_open_ends_and_degenerate_data():
    """An interval that reaches past the searched range is reported open at that end; data with
    no event at all give no estimate, and say why."""
    x = np.array([0.055, 0.06, 0.065])
    m = np.full(3, 40)
    fit = fit_boundary(x, np.round(m * law(x)), m, TARGET, bounds=(0.05, 0.07))
    assert fit.low_open and fit.high_open and (fit.low, fit.high) == (0.05, 0.07)
    none = fit_boundary(x, np.zeros(3), m, TARGET)
    assert np.isnan(none.estimate) and none.note == "no chain had the event"


def test_pareto_front():
    """Non-dominated rows, each direction respected; NaN rows are never on the front."""
    values = np.array([[0.1, 0.5], [0.2, 0.2], [0.3, 0.1], [0.3, 0.3], [0.05, np.nan], [0.2, 0.25]])
    assert pareto_front(values, ["minimize", "minimize"]).tolist() == [0, 1, 2]
    mixed = np.array([[0.1, 0.2], [0.2, 0.5], [0.3, 0.1], [0.3, 0.3]])
    assert pareto_front(mixed, ["minimize", "maximize"]).tolist() == [0, 1]
