"""analysis.theory_collapse: the closed forms checked against independent computations (fast) and
against simulated sweeps at 5 standard errors, with the nearest wrong law rejected (slow)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

import analysis
from analysis import theory_collapse as theory
from sweep.runner import run_sweep
from sweep.spec import parse_spec

SIGMAS = 5.0


def _checked(report):
    """A run's report, after checking that every task succeeded (final states included: they are
    pickled for extensions, so an unpicklable tracker fails the task after its parts are written)."""
    assert not report.failures, report.failures
    return report


# -- closed forms against independent computations -------------------------------------------------
def test_declared_overlays_exist():
    """Every theory overlay the three families declare names a function of analysis.theory_collapse."""
    from sweep.families import REGISTRY

    for name in ("bernoulli", "poisson", "linear_regression"):
        declared = REGISTRY[name].theory_overlays
        assert declared and all(callable(theory.OVERLAYS.get(overlay)) for overlay in declared), name
        assert all(getattr(theory, overlay) is theory.OVERLAYS[overlay] for overlay in declared)


def test_bernoulli_first_generation_and_fixation():
    """At t = 1 the collapse law is (1 - p)^n at 0 and p^n at 1; under replace the chain ends at 1
    with probability p (and the iteration reaches it)."""
    zero, one = theory.bernoulli_absorption(0.3, 10, 3000)
    assert zero[0] == one[0] == 0.0
    assert math.isclose(zero[1], 0.7**10, rel_tol=1e-12) and math.isclose(one[1], 0.3**10, rel_tol=1e-12)
    assert math.isclose(one[-1], 0.3, rel_tol=1e-9) and math.isclose(zero[-1] + one[-1], 1.0, rel_tol=1e-12)
    assert (np.diff(zero) >= -1e-15).all() and (np.diff(one) >= -1e-15).all()


def test_bernoulli_fresh_real_law_against_a_direct_sum():
    """The fresh_real first-passage law equals a direct enumeration of the chain's paths (n = 5, r = 2)."""
    n, r, p, horizon = 5, 2, 0.35, 6
    moves = np.zeros((n + 1, n + 1))
    for i in range(1, n):
        for a in range(n - r + 1):
            for b in range(r + 1):
                moves[i, a + b] += stats.binom.pmf(a, n - r, i / n) * stats.binom.pmf(b, r, p)
    moves[0, 0] = moves[n, n] = 1.0
    law = stats.binom.pmf(np.arange(n + 1), n, p)
    expected = [0.0, law[0] + law[n]]
    for _ in range(2, horizon + 1):
        law = law @ moves
        expected.append(law[0] + law[n])
    got = theory.bernoulli_collapse_probability(p, n, np.arange(horizon + 1), policy="fresh_real", real=r)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)


def test_bernoulli_mse_and_bound():
    """Replace's MSE solves to p(1-p)(1-(1-1/n)^t); accumulate's stays below p(1-p)(pi^2/6)/n; the
    Markov bound lies above the exact non-collapsed probability."""
    p, n, t = 0.2, 15, np.arange(200)
    np.testing.assert_allclose(theory.bernoulli_mse(p, n, t), p * (1 - p) * (1 - (1 - 1 / n) ** t), rtol=1e-12)
    accumulate = theory.bernoulli_mse(p, n, t, policy="accumulate")
    assert (np.diff(accumulate) > 0).all() and accumulate[-1] < p * (1 - p) * math.pi**2 / 6 / n
    np.testing.assert_array_equal(
        theory.bernoulli_mse(p, n, t, policy="fresh_real", real=0), theory.bernoulli_mse(p, n, t)
    )
    survival = 1.0 - theory.bernoulli_collapse_probability(p, n, t)
    assert (theory.bernoulli_survival_bound(p, n, t) >= survival - 1e-12).all()
    assert abs(theory.bernoulli_mean_collapse_time(0.5, 200) - 400 * math.log(2)) < 1e-9


def test_poisson_collapse_against_a_truncated_chain():
    """exp(n lambda (q_{t-1} - 1)) equals P(S_t = 0) of the chain S_{t+1} ~ Poisson(S_t) computed on
    states 0..400 from S_1 ~ Poisson(n lambda)."""
    lam, n, horizon = 0.7, 20, 60
    states = np.arange(401)
    moves = stats.poisson.pmf(states[None, :], states[:, None])
    moves[0, 0] = 1.0
    law = stats.poisson.pmf(states, n * lam)
    expected = [0.0, law[0]]
    for _ in range(2, horizon + 1):
        law = law @ moves
        expected.append(law[0])
    np.testing.assert_allclose(
        theory.poisson_collapse_probability(lam, n, np.arange(horizon + 1)), expected, rtol=1e-10
    )
    assert theory.poisson_collapse_probability(lam, n, [0, 1, 50], policy="accumulate").tolist() == [
        0.0,
        math.exp(-14),
        math.exp(-14),
    ]


def test_poisson_mse_and_median():
    """Replace: t lambda / n; accumulate: (lambda / n) sum 1/k^2; fresh_real tends to
    lambda / (n (1 - a^2)); the median collapse time is close to 2 n lambda / ln 2."""
    lam, n, t = 1.5, 8, np.arange(400)
    np.testing.assert_allclose(theory.poisson_mse(lam, n, t), t * lam / n, rtol=1e-12)
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, 400) ** 2)])
    np.testing.assert_allclose(theory.poisson_mse(lam, n, t, policy="accumulate"), lam / n * harmonic, rtol=1e-12)
    fresh = theory.poisson_mse(lam, n, t, policy="fresh_real", real=2)
    assert math.isclose(fresh[-1], lam / (n * (1 - 0.75**2)), rel_tol=1e-9)
    median = theory.poisson_median_collapse_time(2.0, 50)
    assert abs(median - 200 / math.log(2)) < 0.05 * median
    law = theory.poisson_collapse_probability(2.0, 50, [median - 1, median])
    assert law[0] < 0.5 <= law[1]


def test_suresh_bound_holds_for_the_exact_laws():
    """The survival bound 1 - exp(-count / t) reported for Suresh et al. lies below the exact
    survival of the Poisson chain (count n lambda) and of the Bernoulli chain near 0 (count n p)."""
    t = np.arange(1, 400)
    for lam, n in ((0.5, 10), (3.0, 20)):
        survival = 1 - theory.poisson_collapse_probability(lam, n, t)
        assert (survival >= theory.suresh_survival_lower_bound(n * lam, t) - 1e-12).all()
    zero, _ = theory.bernoulli_absorption(0.02, 200, 399)
    assert ((1 - zero[1:]) >= theory.suresh_survival_lower_bound(4.0, t) - 1e-12).all()


def test_linear_regression_forms():
    """Replace is the same for fixed and fresh designs; accumulate with a fresh design is below the
    fixed-design sum and below pi^2/6 times the first generation's excess; tempering scales the terms
    after the first; n <= d + 1 has an infinite mean."""
    n, d, sigma, t = 12, 4, 0.8, np.arange(50)
    np.testing.assert_allclose(
        theory.linear_regression_test_error(n, d, sigma, t),
        theory.linear_regression_test_error_fixed_design(n, d, sigma, t),
        rtol=1e-12,
    )
    fresh = theory.linear_regression_test_error(n, d, sigma, t, policy="accumulate")
    fixed = theory.linear_regression_test_error_fixed_design(n, d, sigma, t, policy="accumulate")
    first = sigma**2 * d / (n - d - 1)
    assert fresh[1] == fixed[1] == sigma**2 + first
    assert (fresh[2:] < fixed[2:]).all() and fresh[-1] < sigma**2 + math.pi**2 / 6 * first
    tempered = theory.linear_regression_test_error(n, d, sigma, t, temperature=0.5)
    np.testing.assert_allclose(tempered[1:] - sigma**2, first * (1 + 0.5 * (t[1:] - 1)), rtol=1e-12)
    assert np.isinf(theory.linear_regression_test_error(5, 4, 1.0, [2])).all()


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: theory.bernoulli_absorption(1.2, 10, 5), "p must be in (0, 1), got 1.2"),
        (lambda: theory.bernoulli_absorption(0.5, 5000, 5), "n must be <= 2000 for the exact law"),
        (
            lambda: theory.bernoulli_mse(0.5, 10, 5, policy="mix"),
            "policy must be one of ('replace', 'accumulate', 'fresh_real'), got 'mix'",
        ),
        (lambda: theory.poisson_mse(1.0, 10, [-1]), "t (generations) must be integers >= 0, got [-1]"),
        (
            lambda: theory.linear_regression_test_error(10, 2, 1.0, 3, policy="fresh_real"),
            "closed forms for replace and accumulate only",
        ),
    ],
)
def test_bad_arguments(call, message):
    """Arguments outside a form's domain raise a ValueError that says which and why."""
    with pytest.raises(ValueError, match=None) as info:
        call()
    assert message in str(info.value)


# -- simulations at 5 standard errors ---------------------------------------------------------------
def _sweep(tmp_path, name: str, family: dict, n: int, policies: list, generations: int, replicates: int, **top):
    raw = {
        "name": name,
        "seed": 17,
        "generations": generations,
        "replicates": replicates,
        "family": family,
        "grid": {"n": [n], "policy": policies},
        "record": {"every": 1},
    }
    raw.update(top)
    report = _checked(run_sweep(parse_spec(raw), str(tmp_path), progress=False))
    return analysis.load(report.location), analysis.load_events(report.location)


def _collapse_fraction(events, policy: str, times: np.ndarray) -> np.ndarray:
    rows = events[(events["event"] == "collapse") & (events["policy"] == policy)]
    first = np.where(rows["observed"], rows["generation"], np.iinfo(np.int32).max)
    return (first[:, None] <= times[None, :]).mean(axis=0)


def _z(empirical: np.ndarray, probability: np.ndarray, replicates: int) -> np.ndarray:
    se = np.sqrt(np.maximum(probability * (1 - probability), 1e-12) / replicates)
    return np.abs(empirical - probability) / se


@pytest.mark.slow
def test_bernoulli_against_simulation(ray_session, tmp_path):
    """Collapse-by-t probabilities (replace, fresh_real, accumulate), the share absorbed at 1 and the
    MSE of p_t match the exact forms within 5 s.e. on 20000 chains; the laws for n + 1 do not."""
    n, p, horizon, chains = 12, 0.25, 60, 20000
    frame, events = _sweep(
        tmp_path,
        "bern-theory",
        {"name": "bernoulli", "p": p},
        n,
        ["replace", {"fresh_real": 0.25}, "accumulate"],
        horizon,
        chains,
    )
    times = np.array([1, 3, 10, 30, 60])
    for policy, kind, real in (
        ("replace", "replace", 0),
        ("fresh_real(0.25)", "fresh_real", 3),
        ("accumulate", "accumulate", 0),
    ):
        empirical = _collapse_fraction(events, policy, times)
        assert (
            _z(empirical, theory.bernoulli_collapse_probability(p, n, times, policy=kind, real=real), chains) < SIGMAS
        ).all(), policy
        if kind != "accumulate":
            wrong = theory.bernoulli_collapse_probability(p, n + 1, times, policy=kind, real=real)
            assert _z(empirical, wrong, chains).max() > SIGMAS, policy
        for t in (5, 60):
            error = (frame.loc[(frame["policy"] == policy) & (frame["generation"] == t), "p"].to_numpy() - p) ** 2
            expected = theory.bernoulli_mse(p, n, t, policy=kind, real=real)
            assert abs(error.mean() - expected) < SIGMAS * error.std() / np.sqrt(chains), (policy, t)
    final = frame.loc[(frame["policy"] == "replace") & (frame["generation"] == horizon), "p"].to_numpy()
    _, one = theory.bernoulli_absorption(p, n, horizon)
    assert _z(np.array([(final == 1.0).mean()]), one[-1:], chains)[0] < SIGMAS


@pytest.mark.slow
def test_poisson_against_simulation(ray_session, tmp_path):
    """Collapse-by-t probabilities (replace, accumulate) and the MSE (replace, accumulate, fresh_real)
    match the exact forms within 5 s.e. on 20000 chains; the replace law for n + 1 does not."""
    n, lam, horizon, chains = 8, 0.5, 40, 20000
    frame, events = _sweep(
        tmp_path,
        "poisson-theory",
        {"name": "poisson", "lambda": lam},
        n,
        ["replace", "accumulate", {"fresh_real": 0.25}],
        horizon,
        chains,
    )
    times = np.array([1, 2, 5, 10, 20, 40])
    for policy in ("replace", "accumulate"):
        empirical = _collapse_fraction(events, policy, times)
        assert (
            _z(empirical, theory.poisson_collapse_probability(lam, n, times, policy=policy), chains) < SIGMAS
        ).all(), policy
    wrong = theory.poisson_collapse_probability(lam, n + 1, times)
    assert _z(_collapse_fraction(events, "replace", times), wrong, chains).max() > SIGMAS
    for policy, kind, real in (
        ("replace", "replace", 0),
        ("accumulate", "accumulate", 0),
        ("fresh_real(0.25)", "fresh_real", 2),
    ):
        for t in (3, 40):
            error = (
                frame.loc[(frame["policy"] == policy) & (frame["generation"] == t), "lambda"].to_numpy() - lam
            ) ** 2
            expected = theory.poisson_mse(lam, n, t, policy=kind, real=real)
            assert abs(error.mean() - expected) < SIGMAS * error.std() / np.sqrt(chains), (policy, t)


@pytest.mark.slow
def test_linear_regression_against_simulation(ray_session, tmp_path):
    """The mean test error at t = 5, 10, 20 matches the exact forms (replace, accumulate, and replace
    at temperature 0.5) within 5 s.e. on 20000 chains; Gerstgrasser et al.'s fixed-design accumulate
    form, which the fresh design does not follow, is rejected at t = 20."""
    n, d, sigma, horizon, chains = 10, 4, 0.7, 20, 20000
    family = {"name": "linear_regression", "dim": d, "noise_sd": sigma}
    grid = [{"n": [n], "policy": ["replace", "accumulate"]}, {"n": [n], "policy": ["replace"], "temperature": [0.5]}]
    frame, _ = _sweep(tmp_path, "ols-theory", family, n, [], horizon, chains, grid=grid, record={"every": 5})
    for (policy, temperature), group in frame.groupby(["policy", "temperature"]):
        for t in (5, 10, 20):
            error = group.loc[group["generation"] == t, "test_error"].to_numpy()
            assert error.size == chains
            expected = theory.linear_regression_test_error(n, d, sigma, t, policy=policy, temperature=temperature)[()]
            se = error.std() / np.sqrt(chains)
            assert abs(error.mean() - expected) < SIGMAS * se, (policy, temperature, t, error.mean(), expected, se)
            if policy == "accumulate" and t == 20:
                wrong = theory.linear_regression_test_error_fixed_design(n, d, sigma, t, policy="accumulate")[()]
                assert abs(error.mean() - wrong) > SIGMAS * se
