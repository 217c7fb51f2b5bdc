from __future__ import annotations

import numpy as np
import pytest

from analysis import theory

CHAINS = 20000


def _log_var(n, t, estimator, seed):
    """Monte Carlo ln(var_t / var_0) by the exact recursion var' = var * chi2_{n-1} / (n-1 or n)."""
    rng = np.random.default_rng(seed)
    steps = np.log(rng.chisquare(n - 1, (CHAINS, t)) / ((n - 1) if estimator == "unbiased" else n))
    return steps.sum(axis=1)


def _variance_se(x):
    """Standard error of the sample variance, from the fourth central moment."""
    c = x - x.mean()
    return np.sqrt((np.mean(c**4) - np.mean(c**2) ** 2) / len(x))


@pytest.mark.parametrize("estimator", ["unbiased", "ml"])
def test_log_variance_moments_match_the_chi2_recursion(estimator):
    """Mean and variance of ln(var_t/var_0) from simulation lie within 5 s.e. of t*drift and t*psi'."""
    n, t = 10, 20
    x = _log_var(n, t, estimator, seed=1)
    mean, var = theory.log_var_moments(n, t, estimator)
    assert abs(x.mean() - mean) < 5 * x.std() / np.sqrt(CHAINS)
    assert abs(x.var() - var) < 5 * _variance_se(x)


def test_median_spread_ratio_matches_simulation_for_large_n():
    """The median of sigma_t/sigma_0 is exp(drift t/2) within 5 s.e. of a sample median (n = 50, skew negligible)."""
    n, t = 50, 40
    x = _log_var(n, t, "unbiased", seed=2) / 2
    se = 1.2533 * x.std() / np.sqrt(CHAINS)  # s.e. of a normal sample median
    assert abs(np.median(x) - np.log(theory.median_spread_ratio(n, t))) < 5 * se


@pytest.mark.parametrize("estimator", ["unbiased", "ml"])
def test_mean_spread_and_variance_ratios_match_simulation(estimator):
    """E[sigma_t/sigma_0] = alpha^t and E[var_t/var_0] (1 or ((n-1)/n)^t) hold within 5 s.e. at small t."""
    n, t = 8, 5
    x = _log_var(n, t, estimator, seed=3)
    sigma, var = np.exp(x / 2), np.exp(x)
    assert abs(sigma.mean() - theory.mean_spread_ratio(n, t, estimator)) < 5 * sigma.std() / np.sqrt(CHAINS)
    assert abs(var.mean() - theory.mean_var_ratio(n, t, estimator)) < 5 * var.std() / np.sqrt(CHAINS)


def test_heterozygosity_decays_by_one_minus_one_over_n():
    """Wright-Fisher refits keep E[H_t]/H_0 = (1 - 1/n)^t within 5 s.e. (counted from the truth at t = 0)."""
    rng = np.random.default_rng(4)
    n, t, probs = 20, 10, np.array([0.5, 0.3, 0.15, 0.05])
    p = np.tile(probs, (CHAINS, 1))
    for _ in range(t):
        p = rng.multinomial(n, p) / n
    ratio = (1 - (p**2).sum(axis=1)) / (1 - (probs**2).sum())
    assert abs(ratio.mean() - theory.heterozygosity_ratio(n, t)) < 5 * ratio.std() / np.sqrt(CHAINS)


def test_suresh_bound_holds_and_dominates_alpha():
    """alpha <= exp(-1/(4n-1)) for n = 2..5000, and the simulated Pr(sigma_t > eps) stays below the bound."""
    n = np.arange(2, 5001)
    assert np.all(theory.mean_spread_ratio(n, 1) <= np.exp(-1 / (4 * n - 1)))
    x = _log_var(5, 10, "unbiased", seed=5)
    frequency = np.mean(np.exp(x / 2) > 0.7)
    assert frequency - 5 * np.sqrt(frequency * (1 - frequency) / CHAINS) <= theory.spread_exceedance_bound(5, 10, 0.7)


def test_first_passage_median_matches_simulated_collapse_times():
    """The first-passage median of spread < r is within 5% (+5 s.e.) of simulation; the drift line is above it."""
    rng = np.random.default_rng(6)
    n, r, chains, horizon = 20, 0.3, 4000, 400
    log_var = np.cumsum(np.log(rng.chisquare(n - 1, (chains, horizon)) / (n - 1)), axis=1)
    first = (log_var < 2 * np.log(r)).argmax(axis=1) + 1
    simulated = np.median(first)
    se = np.sqrt(0.25 / chains) / np.mean(np.abs(first - simulated) <= 2) * 5  # 1/(2 f) sqrt(1/R), f from a histogram
    predicted = theory.median_collapse_time(n, r, method="first_passage")
    assert abs(simulated - predicted) < 0.05 * predicted + 5 * se
    assert theory.median_collapse_time(n, r, method="drift") > simulated


def test_collapse_time_slope_tends_to_one_and_matches_its_derivative():
    """The implied log-log slope equals a numerical derivative, exceeds 1 at small n and tends to 1 at large n."""
    n, h = np.array([10.0, 100.0, 1000.0]), 1e-5
    numeric = (
        np.log(theory.median_collapse_time(n * (1 + h), 0.5)) - np.log(theory.median_collapse_time(n * (1 - h), 0.5))
    ) / (np.log1p(h) - np.log1p(-h))
    assert theory.local_collapse_time_slope(n) == pytest.approx(numeric, rel=1e-6)
    assert theory.collapse_time_slope([10, 20, 40, 80]) > 1
    assert theory.collapse_time_slope([1e5, 2e5, 4e5]) == pytest.approx(1, abs=1e-4)
    ns = np.array([10, 30, 90])
    expected = np.polyfit(np.log(ns), np.log(theory.median_collapse_time(ns, 0.2)), 1)[0]
    assert theory.collapse_time_slope(ns, 0.2) == pytest.approx(expected)
    # Large n: t* ~ 2 n ln(1/r).
    assert theory.median_collapse_time(1e6, 0.5) == pytest.approx(2e6 * np.log(2), rel=1e-5)


def test_forgetting_median_matches_wright_fisher_for_rare_symbols():
    """A symbol seen 10 times among n = 2000 is lost after a median near 2c/ln 2 generations (within 5 s.e. + 1)."""
    rng = np.random.default_rng(8)
    n, count, chains = 2000, 10, 4000
    x, lost = np.full(chains, count), np.full(chains, np.inf)
    for generation in range(2, 200):
        x = rng.binomial(n, x / n)
        lost[(x == 0) & np.isinf(lost)] = generation
    predicted = theory.forgetting_median(count)
    se = np.sqrt(0.25 / chains) / np.mean(np.abs(lost - predicted) <= 2) * 5
    assert abs(np.median(lost) - predicted) < 5 * se + 1


def test_theory_rejects_invalid_arguments():
    """n < 2, an unknown estimator or a ratio outside (0, 1) raise ValueError naming the argument."""
    with pytest.raises(ValueError, match="n \\(samples per generation\\) must be >= 2"):
        theory.log_var_drift(1)
    with pytest.raises(ValueError, match="estimator must be one of"):
        theory.log_var_drift(10, "mle")
    with pytest.raises(ValueError, match="ratio must be in"):
        theory.median_collapse_time(10, 1.5)


def _simulated_collapse_cdf(n, r, horizon, estimator, chains, seed):
    """Direct Monte Carlo of the chi2 random walk: the share of chains collapsed by each t = 0..horizon."""
    rng = np.random.default_rng(seed)
    scale = (n - 1) if estimator == "unbiased" else n
    log_var = np.cumsum(np.log(rng.chisquare(n - 1, (chains, horizon)) / scale), axis=1)
    crossed = log_var < 2 * np.log(r)
    first = np.where(crossed.any(axis=1), crossed.argmax(axis=1) + 1, horizon + 1)
    return np.searchsorted(np.sort(first), np.arange(horizon + 1), side="right") / chains


@pytest.mark.parametrize("estimator", ["unbiased", "ml"])
def test_exact_collapse_time_law_matches_a_direct_simulation(estimator):
    """The numerical first-passage law P(tau <= t) is within 4.5 binomial s.e. of a direct simulation at
    every t, while the law for n - 1 or n + 1 (an off-by-one) is not."""
    n, r, horizon = 6, 0.3, 40
    simulated = _simulated_collapse_cdf(n, r, horizon, estimator, CHAINS, seed=9)
    law = theory.collapse_time_cdf(n, r, horizon, estimator)
    se = np.sqrt(np.clip(law * (1 - law), 1e-12, None) / CHAINS)
    assert law.shape == (horizon + 1,) and law[0] == 0 and (np.diff(law) >= 0).all()
    assert (np.abs(simulated - law) < 4.5 * se + 1e-12).all()
    for wrong in (n - 1, n + 1):
        other = theory.collapse_time_cdf(wrong, r, horizon, estimator)
        assert (np.abs(simulated - other) > 4.5 * se).any()


def test_exact_median_collapse_time_is_where_the_law_reaches_one_half():
    """The exact median is the first t with P(tau <= t) >= 1/2, does not move when the lattice is halved,
    and the continuous first-passage approximation is within one generation of it."""
    for estimator in ("unbiased", "ml"):
        law = theory.collapse_time_cdf(16, 0.1, 80, estimator)
        median = theory.exact_median_collapse_time([16], 0.1, estimator)[0]
        assert law[int(median)] >= 0.5 > law[int(median) - 1]
        ns = np.array([4, 8, 32])
        exact = theory.exact_median_collapse_time(ns, 0.1, estimator)
        assert (exact[:2] == theory.exact_median_collapse_time(ns[:2], 0.1, estimator, step=5e-4)).all()
        assert (np.abs(exact - theory.median_collapse_time(ns, 0.1, estimator, "first_passage")) < 1.2).all()
    # ML collapses about twice as fast: a swapped estimator is far outside any sampling error.
    assert theory.exact_median_collapse_time(32, 0.1, "unbiased") > 1.7 * theory.exact_median_collapse_time(
        32, 0.1, "ml"
    )


def test_symbol_loss_law_matches_wright_fisher_simulation():
    """P(lost by t | X_1 = c) equals (1 - 1/n)^n for c = 1 at t = 2, is 1 at t = 1 for c = 0, and agrees
    with a direct binomial Wright-Fisher simulation within 4.5 s.e. at every t."""
    n, horizon = 30, 50
    law = theory.symbol_loss_cdf([0, 1, 4], n, horizon)
    assert law.shape == (3, horizon + 1) and (law[:, 0] == 0).all() and (law[0, 1:] == 1).all()
    assert law[1, 2] == pytest.approx((1 - 1 / n) ** n, rel=1e-12)
    rng = np.random.default_rng(10)
    x, lost = np.full(CHAINS, 4), np.full(CHAINS, horizon + 1)
    for generation in range(2, horizon + 1):
        x = rng.binomial(n, x / n)
        lost[(x == 0) & (lost > horizon)] = generation
    simulated = np.searchsorted(np.sort(lost), np.arange(horizon + 1), side="right") / CHAINS
    se = np.sqrt(np.clip(law[2] * (1 - law[2]), 1e-12, None) / CHAINS)
    assert (np.abs(simulated - law[2]) < 4.5 * se + 1e-12).all()
    with pytest.raises(ValueError, match="count must be integers in 0..n=30"):
        theory.symbol_loss_cdf(31, n, 5)
