"""Batched Gaussian KDE kernels: bandwidth rules, sampling, fitted-model moments, metrics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from sweep.families._kde import bandwidth, kde_mean_var, kde_tail_mass, kde_w2_to_mixture, sample_kde
from sweep.families._quantiles1d import mixture_cdf
from tests.families.w2_reference import w2_from_cdfs


@pytest.mark.parametrize("rule", ["scott", "silverman"])
def test_bandwidth_rules_match_scipy(rule):
    """The rule bandwidths equal scipy.stats.gaussian_kde's kernel standard deviation."""
    x = np.random.default_rng(0).normal(1.0, 2.0, size=(3, 57))
    expect = [stats.gaussian_kde(row, rule).factor * row.std(ddof=1) for row in x]
    np.testing.assert_allclose(bandwidth(x, rule), expect, rtol=1e-12)
    np.testing.assert_array_equal(bandwidth(x, 0.25), [0.25] * 3)


def test_sample_kde_moments():
    """Samples of a KDE have its mean and variance (sample var ddof=0 + h**2) within 5
    standard errors."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 30))
    h = np.array([0.1, 0.5, 1.0, 0.0])
    y = sample_kde(x, h, 40000, rng=rng)
    mean, var = kde_mean_var(x, h)
    np.testing.assert_allclose(var, x.var(axis=1) + h**2)
    assert (np.abs(y.mean(axis=1) - mean) <= 5 * np.sqrt(var / y.shape[1])).all()
    # variance of the sample variance for n draws: (m4 - var**2) / n, m4 the 4th central moment
    m4 = np.array([np.mean((y_row - mu) ** 4) for y_row, mu in zip(y, mean)])
    assert (np.abs(y.var(axis=1) - var) <= 5 * np.sqrt((m4 - var**2) / y.shape[1])).all()
    # with h = 0 every sample is a training point
    assert np.isin(y[3], x[3]).all()


def test_variance_growth_under_replace_with_fixed_bandwidth():
    """Refitting a fixed-h KDE to its own n samples for T generations gives
    E[V_T] = a**T s0**2 + h**2 (1 - a**T) / (1 - a), a = (n-1)/n, V_t the fitted variance
    (ddof=0 sample variance + h**2), within 4.5 standard errors over 4000 chains."""
    # E[ddof=0 var of n i.i.d. draws] = a * (model variance), so E[V_t+1] = a E[V_t] + h**2.
    rng = np.random.default_rng(2)
    b, n, h, sigma0, gens = 4000, 10, 0.4, 1.5, 8
    x = rng.normal(0.0, sigma0, size=(b, n))  # generation 1's training data
    a = (n - 1) / n
    for t in range(1, gens + 1):
        _, v = kde_mean_var(x, h)
        expect = a**t * sigma0**2 + h**2 * (1 - a**t) / (1 - a)
        assert abs(v.mean() - expect) <= 4.5 * v.std(ddof=1) / np.sqrt(b), t
        x = sample_kde(x, h, n, rng=rng)


def _exact_w2(x, h, tw, tm, tv, m=20000):
    """W2 from the exact KDE CDF (every kernel evaluated) on a very fine grid."""
    lo = np.minimum(x.min(1) - 10 * h, min(tm) - 10 * np.sqrt(max(tv)))
    hi = np.maximum(x.max(1) + 10 * h, max(tm) + 10 * np.sqrt(max(tv)))
    step = (hi - lo) / (m - 1)
    grid = lo[:, None] + step[:, None] * np.arange(m)
    f = special.ndtr((grid[:, :, None] - x[:, None, :]) / h[:, None, None]).mean(axis=2)
    g = mixture_cdf(grid, *(np.tile(a, (len(x), 1)) for a in (tw, tm, np.sqrt(tv))))
    return w2_from_cdfs(grid, f, g)


def test_kde_w2_against_exact_and_closed_form():
    """KDE W2 agrees within 5e-4 with the exact-CDF computation, and for a one-point KDE
    (a Gaussian) with the closed form sqrt(dm**2 + ds**2)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(4, 40))
    h = bandwidth(x, "silverman")
    tw, tm, tv = np.array([0.4, 0.6]), np.array([-1.0, 1.0]), np.array([0.3, 0.6])
    np.testing.assert_allclose(kde_w2_to_mixture(x, h, tw, tm, tv), _exact_w2(x, h, tw, tm, tv), atol=5e-4)
    one = np.array([[0.5], [-2.0], [0.0]])
    h1 = np.array([0.2, 2.0, 1.0])
    np.testing.assert_allclose(
        kde_w2_to_mixture(one, h1, [1.0], [0.0], [1.0]), np.hypot(one[:, 0], h1 - 1.0), atol=5e-4
    )


def test_kde_tail_mass():
    """A one-point KDE has the Gaussian tail mass, and h=0 counts training points."""
    q = stats.norm.ppf([0.01, 0.99])
    expect = stats.norm.cdf(q[0], 0.3, 0.8) + stats.norm.sf(q[1], 0.3, 0.8)
    assert abs(kde_tail_mass([[0.3]], 0.8, [1.0], [0.0], [1.0])[0] - expect) < 1e-12
    x = np.array([[-3.0, 0.0, 0.1, 2.5]])
    assert kde_tail_mass(x, 0.0, [1.0], [0.0], [1.0])[0] == 0.5


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: bandwidth(np.ones((2, 5)), 0.0), "'rule'"),
        (lambda: bandwidth(np.ones((2, 5)), -1.0), "'rule'"),
        (lambda: bandwidth(np.ones((2, 5)), "normal_reference"), "'rule'"),
        (lambda: bandwidth(np.ones((2, 1)), "scott"), "'x'"),
        (lambda: sample_kde(np.ones((2, 5)), -0.1, 3, rng=np.random.default_rng()), "'h'"),
        (lambda: sample_kde(np.ones((2, 5)), 0.1, 0, rng=np.random.default_rng()), "'n'"),
        (lambda: kde_tail_mass(np.ones((2, 5)), 0.1, [0.5, 0.4], [0, 1], [1, 1]), "'true_weights'"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(call, name):
    """A bandwidth <= 0, an unknown rule, too few points, a negative h, n < 1 or weights not
    summing to 1 raise a one-line ValueError naming the argument and the value given."""
    with pytest.raises(ValueError) as info:
        call()
    msg = str(info.value)
    assert name in msg and "must be" in msg and "Got" in msg and "\n" not in msg
