"""d-dimensional Gaussian KDE kernels: bandwidths, sampling, moments, tabulated projections, sliced metrics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from sweep.families._generators import Shape
from sweep.families._kdend import (
    kde_moments,
    kernel_covariance,
    quantile_at,
    shape_truth,
    sliced_tail_kde,
    sliced_w2_kde,
    tabulate,
)
from sweep.families._quantiles1d import quantile_pieces
from sweep.families._sliced import TAIL_LEVELS, SlicedTruth, directions


@pytest.mark.parametrize("rule", ["scott", "silverman"])
@pytest.mark.parametrize("d", [2, 3])
def test_kernel_covariance_is_scipys(rule, d):
    """A rule's kernel covariance equals scipy.stats.gaussian_kde's covariance; a number h gives h**2 I."""
    x = np.random.default_rng(d).normal(size=(3, 57, d)) @ np.triu(np.ones((d, d)))
    expect = [stats.gaussian_kde(row.T, rule).covariance for row in x]
    np.testing.assert_allclose(kernel_covariance(x, rule), expect, rtol=1e-12)
    np.testing.assert_array_equal(kernel_covariance(x, 0.5), np.broadcast_to(0.25 * np.eye(d), (3, d, d)))


def test_sample_kde_moments():
    """KDE samples have the KDE's mean and covariance (the data's, ddof 0, plus H) within 5 standard errors."""
    from sweep.families._kdend import sample_kde

    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 40, 2))
    kernel = kernel_covariance(x, "silverman") * np.array([1.0, 4.0, 0.01])[:, None, None]
    y = sample_kde(x, kernel, 40000, rng=rng)
    mean, cov = kde_moments(x, kernel)
    n = y.shape[1]
    assert (np.abs(y.mean(axis=1) - mean) <= 5 * np.sqrt(np.diagonal(cov, axis1=1, axis2=2) / n)).all()
    c = y - y.mean(axis=1, keepdims=True)
    products = c[..., :, None] * c[..., None, :]
    assert (np.abs(products.mean(axis=1) - cov) <= 5 * products.std(axis=1) / np.sqrt(n)).all()


def test_tabulated_cdf_of_gaussian_and_boxed_kernels():
    """The binned-and-convolved CDF equals the exact one within 2e-4: weighted points with a Gaussian
    kernel, and one point with a Gaussian kernel convolved with a uniform on [0, 3]."""
    rng = np.random.default_rng(2)
    pts, w = rng.normal(size=(1, 50)), rng.dirichlet(np.ones(50))[None]
    sd = np.array([0.3])
    lo, hi = np.array([pts.min() - 3.0]), np.array([pts.max() + 3.0])
    grid, cdf, _ = tabulate(pts, w, sd, lo, hi, 600)
    exact = (w[0] * special.ndtr((grid[0][:, None] - pts[0]) / sd[0])).sum(axis=1)
    assert np.abs(cdf[0] - exact).max() < 2e-4
    grid, cdf, pdf = tabulate(np.zeros((1, 1)), None, sd, np.array([-3.0]), np.array([6.0]), 800, box=np.array([3.0]))
    t = grid[0]
    psi = lambda z: z * special.ndtr(z) + np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)
    exact = sd[0] / 3.0 * (psi(t / sd[0]) - psi((t - 3.0) / sd[0]))
    assert np.abs(cdf[0] - exact).max() < 2e-4
    assert abs(pdf[0, np.argmin(np.abs(t - 1.5))] - 1.0 / 3.0) < 1e-3


def test_generator_truth_tails_match_monte_carlo():
    """The tabulated projections of the moons truth have the 1% and 99% quantiles of 400000 samples
    (within 5 Monte Carlo standard errors, from the order statistics' binomial law)."""
    shape = Shape("moons", 0.1)
    u = directions(2, 4)
    truth = shape_truth(shape, u)
    x = shape.sample(1, 400_000, rng=np.random.default_rng(3))[0]
    for i, direction in enumerate(u):
        p = np.sort(x @ direction)
        for level, q in zip(TAIL_LEVELS, truth.tails[i]):
            # the empirical CDF at the tabulated quantile: Binomial(n, level) / n
            got = np.searchsorted(p, q) / p.size
            assert abs(got - level) <= 5 * np.sqrt(level * (1 - level) / p.size), (direction, level)


def test_one_point_kde_is_a_gaussian():
    """A KDE of one point is a Gaussian: its sliced W2 to a Gaussian truth is the Gaussians' (from
    the mixture path) within 1e-3, and its sliced tail mass the Gaussian's within 1e-6."""
    from sweep.families._sliced import sliced_tail_mixture, sliced_w2_mixture

    u = directions(2, 16)
    cov0 = np.array([[1.0, 0.4], [0.4, 0.7]])
    truth = SlicedTruth.of_mixture([1.0], [[0.0, 0.0]], [cov0], u)
    point, kernel = np.array([[[0.3, -0.2]]]), np.array([[[0.5, 0.1], [0.1, 2.0]]])
    kde = sliced_w2_kde(truth, point, kernel)[0]
    gauss = sliced_w2_mixture(truth, np.ones((1, 1)), point, kernel[:, None])[0]
    assert abs(kde - gauss) < 1e-3
    assert (
        abs(
            sliced_tail_kde(truth, point, kernel)[0]
            - sliced_tail_mixture(truth, np.ones((1, 1)), point, kernel[:, None])[0]
        )
        < 1e-6
    )


def test_kde_of_a_large_sample_is_close_to_its_generator_and_far_from_another():
    """A KDE (h = 0.02) of 20000 moons samples is within 0.02 (sliced W2) of the moons truth, and a
    KDE of circles samples is 10x farther (a negative control for the tabulated truth)."""
    moons = Shape("moons", 0.1)
    truth = shape_truth(moons, directions(2, 16))
    rng = np.random.default_rng(4)
    x = np.concatenate([moons.sample(1, 20000, rng=rng), Shape("circles", 0.1).sample(1, 20000, rng=rng)])
    w2 = sliced_w2_kde(truth, x, kernel_covariance(x, 0.02))
    assert w2[0] < 0.02 and w2[1] > 10 * w2[0], w2
    tails = sliced_tail_kde(truth, x[:1], kernel_covariance(x[:1], 0.02))
    assert abs(tails[0] - 0.02) < 0.003


def test_quantile_at_inverts_the_cdf():
    """quantile_at evaluates the piecewise cubic quantile function: N(0, 1)'s quantiles within 1e-5."""
    grid = np.linspace(-9.0, 9.0, 2000)[None]
    planes = quantile_pieces(grid, special.ndtr(grid), np.exp(-0.5 * grid**2) / np.sqrt(2 * np.pi))
    levels = np.array([0.01, 0.3, 0.5, 0.99])
    np.testing.assert_allclose(quantile_at(planes, levels), special.ndtri(levels), atol=1e-5)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: kernel_covariance(np.ones((2, 5, 2)), 0.0), "'rule'"),
        (lambda: kernel_covariance(np.ones((2, 5, 2)), "normal_reference"), "'rule'"),
        (lambda: kernel_covariance(np.ones((2, 1, 2)), "scott"), "'x'"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(call, name):
    """A bandwidth <= 0, an unknown rule or too few points raise a one-line ValueError naming them."""
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert name in message and "must be" in message and "\n" not in message
