"""Quantile and W2 helpers for batches of 1-D distributions."""
from __future__ import annotations

import numpy as np

from sweep.families._quantiles1d import (mixture_cdf, mixture_grid, mixture_quantile,
                                         w2_from_cdfs, w2_mixtures)


def test_mixture_quantile_inverts_the_cdf():
    """The CDF at the computed quantiles equals the levels to 1e-12, tails included."""
    w = np.array([[0.3, 0.7], [0.5, 0.5]])
    m = np.array([[-5.0, 5.0], [0.0, 0.1]])
    v = np.array([[0.01, 4.0], [1.0, 1e-4]])
    p = np.array([1e-9, 0.01, 0.3, 0.5, 0.99, 1 - 1e-9])
    q = mixture_quantile(p, w, m, v)
    np.testing.assert_allclose(mixture_cdf(q, w, m, np.sqrt(v)), np.tile(p, (2, 1)),
                               rtol=1e-10, atol=1e-13)


def test_w2_mixtures_gaussian_closed_form():
    """For two Gaussians, of similar or very different widths, W2 is within 1e-4 of
    sqrt(dm**2 + ds**2), and the grid alone (no extrapolation) within 5e-4."""
    wa, ma = np.ones((4, 1)), np.array([[0.0], [1.0], [0.0], [0.0]])
    va = np.array([[1.0], [4.0], [0.01], [1e-6]])
    wb, mb = np.ones((4, 1)), np.array([[0.0], [-1.0], [0.2], [0.0]])
    vb = np.array([[2.25], [1.0], [1.0], [1.0]])
    want = np.hypot(ma - mb, np.sqrt(va) - np.sqrt(vb))[:, 0]
    np.testing.assert_allclose(w2_mixtures(wa, ma, va, wb, mb, vb), want, atol=1e-4)
    grid, _ = mixture_grid(wa, ma, va, wb, mb, vb, 257)
    plain = w2_from_cdfs(grid, mixture_cdf(grid, wa, ma, np.sqrt(va)),
                         mixture_cdf(grid, wb, mb, np.sqrt(vb)))
    np.testing.assert_allclose(plain, want, atol=5e-4)


def test_w2_from_cdfs_of_discrete_uniforms():
    """W2 between two distributions with piecewise linear CDFs (uniform on intervals) is exact:
    U(0, 1) against U(0, 2) gives sqrt(1/3)."""
    grid = np.linspace(-1.0, 3.0, 401)[None]
    a = np.clip(grid, 0, 1)
    b = np.clip(grid / 2, 0, 1)
    got = w2_from_cdfs(grid, a, b)
    assert abs(got[0] - np.sqrt(1 / 3)) < 1e-12
