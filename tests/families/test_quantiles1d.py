"""Quantile and W2 helpers for batches of 1-D distributions."""

from __future__ import annotations

import numpy as np
from scipy.special import ndtri as special_ndtri

from sweep.families._quantiles1d import (
    mixture_cdf,
    mixture_grid,
    mixture_pdf,
    mixture_quantile,
    quantile_pieces,
    w2_from_pieces,
    w2_mixtures,
)
from tests.families.w2_reference import w2_from_cdfs

ONE_GAUSSIAN = (np.ones((1, 1)), np.zeros((1, 1)), np.ones((1, 1)))  # w, m, sd


def test_mixture_quantile_inverts_the_cdf():
    """The CDF at the computed quantiles equals the levels to 1e-12, tails included."""
    w = np.array([[0.3, 0.7], [0.5, 0.5]])
    m = np.array([[-5.0, 5.0], [0.0, 0.1]])
    v = np.array([[0.01, 4.0], [1.0, 1e-4]])
    p = np.array([1e-9, 0.01, 0.3, 0.5, 0.99, 1 - 1e-9])
    q = mixture_quantile(p, w, m, v)
    np.testing.assert_allclose(mixture_cdf(q, w, m, np.sqrt(v)), np.tile(p, (2, 1)), rtol=1e-10, atol=1e-13)


def test_w2_mixtures_gaussian_closed_form():
    """For two Gaussians, of similar or very different widths, W2 is within 1e-4 of
    sqrt(dm**2 + ds**2) with the cubic pieces, and within 5e-4 with linear interpolation on a
    common grid (the tests' independent reference, w2_from_cdfs)."""
    wa, ma = np.ones((4, 1)), np.array([[0.0], [1.0], [0.0], [0.0]])
    va = np.array([[1.0], [4.0], [0.01], [1e-6]])
    wb, mb = np.ones((4, 1)), np.array([[0.0], [-1.0], [0.2], [0.0]])
    vb = np.array([[2.25], [1.0], [1.0], [1.0]])
    want = np.hypot(ma - mb, np.sqrt(va) - np.sqrt(vb))[:, 0]
    np.testing.assert_allclose(w2_mixtures(wa, ma, va, wb, mb, vb), want, atol=1e-4)
    grid = np.sort(np.concatenate([mixture_grid(wa, ma, va, 257), mixture_grid(wb, mb, vb, 257)], axis=1), axis=1)
    plain = w2_from_cdfs(grid, mixture_cdf(grid, wa, ma, np.sqrt(va)), mixture_cdf(grid, wb, mb, np.sqrt(vb)))
    np.testing.assert_allclose(plain, want, atol=5e-4)


def test_w2_from_pieces_integrates_exactly():
    """Uniforms have linear quantile functions, which the pieces represent exactly: U(0, 1)
    against U(0, 2) gives sqrt(1/3) to rounding, with grids of different sizes on each side."""
    ga, gb = np.linspace(0.0, 1.0, 7)[None], np.linspace(0.0, 2.0, 12)[None]
    pa = quantile_pieces(ga, ga, np.ones_like(ga))
    pb = quantile_pieces(gb, gb / 2.0, np.full_like(gb, 0.5))
    assert abs(np.sqrt(w2_from_pieces(pa, pb))[0] - np.sqrt(1 / 3)) < 1e-13
    assert abs(np.sqrt(w2_from_pieces(pb, pa))[0] - np.sqrt(1 / 3)) < 1e-13


def test_w2_mixtures_shared_side_equals_per_row():
    """A truth given once (one row) gives the same distances as the truth repeated per row,
    and swapping the sides gives the same distances."""
    rng = np.random.default_rng(3)
    w = rng.dirichlet([1.0, 1.0], 50)
    m = np.sort(rng.normal(0.0, 2.0, (50, 2)), axis=1)
    v = np.exp(rng.uniform(-12.0, 2.0, (50, 2)))
    tw, tm, tv = np.array([[0.5, 0.5]]), np.array([[-2.0, 2.0]]), np.array([[1.0, 1.0]])
    shared = w2_mixtures(w, m, v, tw, tm, tv)
    repeated = w2_mixtures(w, m, v, *(np.repeat(a, 50, axis=0) for a in (tw, tm, tv)))
    np.testing.assert_allclose(shared, repeated, rtol=0, atol=1e-12)
    np.testing.assert_allclose(w2_mixtures(tw, tm, tv, w, m, v), shared, rtol=0, atol=1e-12)


def test_w2_mixtures_accuracy_over_collapsed_and_light_components():
    """Against a 32x finer grid, the default is within 2e-4 for mixtures with components from
    sd 1e-4 to 3 and weights down to 1e-4, and within 2e-5 near the truth."""
    rng = np.random.default_rng(1)
    w = rng.dirichlet([1.0, 1.0], 300)
    m = np.sort(rng.normal(0.0, 2.5, (300, 2)), axis=1)
    v = np.exp(rng.uniform(np.log(1e-8), np.log(9.0), (300, 2)))
    w[:100], v[:100] = 0.5, 1.0 + rng.normal(0.0, 0.02, (100, 2))
    m[:100] = [-2.0, 2.0] + rng.normal(0.0, 0.02, (100, 2))
    w[100:200, 0] = rng.uniform(0.0, 1e-3, 100)
    w[100:200, 1] = 1.0 - w[100:200, 0]
    truth = np.array([[0.5, 0.5]]), np.array([[-2.0, 2.0]]), np.array([[1.0, 1.0]])
    error = np.abs(w2_mixtures(w, m, v, *truth) - w2_mixtures(w, m, v, *truth, per_component=2049))
    assert error[:100].max() < 2e-5
    assert error.max() < 2e-4


def test_quantile_pieces_interpolate_to_fourth_order():
    """The cubic pieces of a Gaussian's quantile function are off by O(step**4): halving the
    step divides the worst error in the bulk by about 16."""
    levels = np.linspace(0.001, 0.999, 2001)
    exact = special_ndtri(levels)
    errors = []
    for per in (33, 65):
        grid = np.linspace(-9.0, 9.0, per)[None]
        pieces = quantile_pieces(grid, mixture_cdf(grid, *ONE_GAUSSIAN), mixture_pdf(grid, *ONE_GAUSSIAN))
        piece = np.searchsorted(pieces[1, 0, 1:], levels, side="right")
        x, level, c1, c2, c3 = (plane[0, piece] for plane in pieces)
        t = levels - level
        errors.append(np.abs(x + t * (c1 + t * (c2 + t * c3)) - exact).max())
    assert 10.0 < errors[0] / errors[1] < 24.0


def test_w2_from_cdfs_of_discrete_uniforms():
    """W2 between two distributions with piecewise linear CDFs (uniform on intervals) is exact:
    U(0, 1) against U(0, 2) gives sqrt(1/3)."""
    grid = np.linspace(-1.0, 3.0, 401)[None]
    a = np.clip(grid, 0, 1)
    b = np.clip(grid / 2, 0, 1)
    got = w2_from_cdfs(grid, a, b)
    assert abs(got[0] - np.sqrt(1 / 3)) < 1e-12
