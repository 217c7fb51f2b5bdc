"""E-step kernels of the d-dimensional mixtures: the two-component fast path against the general one."""

from __future__ import annotations

import numpy as np

from sweep.families import _gmmnd_estep
from sweep.families._gmmnd_estep import coefficients, e_step, features


def _two_component_problem(rng, b, n, d):
    """Centred samples (B, d, N) and two-component parameters: rows 0-3 ordinary fits, rows 4-5
    a narrow component inside a wide one (z_1 - z_0 below -745 at the far samples of row 4, where
    exp underflows to 0, and above 709 in row 5, where it overflows), rows 6 and 7 a component
    (0, then 1) of weight 1e-250 (responsibilities ~1e-250: kept in relative terms only without a subtraction from 1)."""
    xt = rng.normal(size=(b, d, n))
    xt -= xt.mean(axis=2, keepdims=True)
    w = rng.dirichlet([3.0, 3.0], size=b)
    m = rng.normal(0.0, 1.0, (b, 2, d))
    a = rng.normal(size=(b, 2, d, d)) * 0.5
    c = a @ np.swapaxes(a, -1, -2) + 0.3 * np.eye(d)
    c[4, 1], m[4, 1], c[4, 0] = 1e-4 * np.eye(d), 0.0, 1e2 * np.eye(d)
    c[5, 0], m[5, 0], c[5, 1] = 1e-4 * np.eye(d), 0.0, 1e2 * np.eye(d)
    w[6], w[7] = [1e-250, 1.0], [1.0, 1e-250]
    theta, ok = coefficients(w, m, c, "full")
    assert ok.all()
    return features(xt, "full"), theta


def test_two_component_e_step_equals_the_general_one_including_overflow_rows():
    """The two-component path gives the general log-sum-exp's log-likelihoods and responsibility
    sums (rtol 1e-12), also on rows where its exponential overflows (redone by the general path)
    where it underflows, and for responsibilities of 1e-250 (relative accuracy); without the redo,
    row 5 is not finite, which the test would catch."""
    rng = np.random.default_rng(21)
    for d, n in ((2, 1000), (3, 70)):
        phi, theta = _two_component_problem(rng, 9, n, d)
        ll, stats = e_step(phi, theta, stats=True)
        ll_any, stats_any = _gmmnd_estep._e_step_any(phi, theta, True)
        np.testing.assert_allclose(ll, ll_any, rtol=1e-12, atol=0)
        np.testing.assert_allclose(stats, stats_any, rtol=1e-12, atol=1e-12 * np.abs(stats_any).max())
        for row, j in ((6, 0), (7, 1)):  # nk of the weight-1e-250 component: not 0, not rounding
            assert 0 < stats[row, j, 0] < 1e-240
            np.testing.assert_allclose(stats[row, j], stats_any[row, j], rtol=1e-12)
        ll_only, none = e_step(phi, theta, stats=False)
        assert none is None and np.array_equal(ll_only, ll)
        ll_sums, _ = e_step(phi, theta, stats=False, sums=phi.sum(axis=2))  # the sums given
        assert np.array_equal(ll_sums, ll)
        # row 5 really overflows the fast path, and the others (rows 6 and 7 included) take it
        head = (phi.sum(axis=2) * theta[:, 0]).sum(axis=1)
        fast = np.empty(9)
        with np.errstate(over="ignore", invalid="ignore"):
            _gmmnd_estep._e_step_two(phi, theta[:, 1] - theta[:, 0], head, fast, None, None)
        np.testing.assert_array_equal(~np.isfinite(fast), np.arange(9) == 5)


def test_e_step_rows_do_not_depend_on_the_block():
    """A chain's E-step is bit for bit the same alone and inside a batch whose blocks split rows
    anywhere (the stream rule: a chain's values do not depend on its block's width)."""
    rng = np.random.default_rng(22)
    phi, theta = _two_component_problem(rng, 9, 1000, 2)
    ll, stats = e_step(phi, theta, stats=True)
    for r in range(9):
        one_ll, one_stats = e_step(phi[r : r + 1], theta[r : r + 1], stats=True)
        assert one_ll[0] == ll[r] and np.array_equal(one_stats[0], stats[r])


def test_centred_features_and_the_square_norm_rows():
    """centred_features is features() of the samples minus their mean, bit for bit, and the
    square-norm rows sum to |x|**2 for every covariance type, so that the feature sums give the
    mean per-coordinate variance KMeans' tolerance needs (a wrong row, e.g. the cross product
    x_1 x_2, fails)."""
    from sweep.families._gmmnd_estep import centred_features, square_norm

    rng = np.random.default_rng(23)
    for d in (1, 2, 3):
        x = rng.normal(2.0, 3.0, (4, 50, d)) * rng.uniform(0.5, 2.0, (4, 1, d))
        xt = np.ascontiguousarray(np.swapaxes(x, 1, 2))
        for covariance_type in ("full", "diag", "spherical"):
            phi, shift = centred_features(x, covariance_type)
            np.testing.assert_array_equal(shift, xt.mean(axis=2))
            np.testing.assert_array_equal(phi, features(xt - shift[:, :, None], covariance_type))
            norm = np.einsum("q,bqn->bn", square_norm(d, covariance_type), phi[:, 1 + d :])
            np.testing.assert_allclose(norm, (phi[:, 1 : 1 + d] ** 2).sum(axis=1), rtol=1e-13)
            var = phi.sum(axis=2)[:, 1 + d :] @ square_norm(d, covariance_type) / (50 * d)
            np.testing.assert_allclose(var, xt.var(axis=2).mean(axis=1), rtol=1e-12)


def test_two_dimensional_full_coefficients_and_m_step_are_the_general_formulas():
    """The entry-by-entry 2x2 paths of coefficients() and from_stats() give the general
    formulas' values bit for bit (precision matrices, their products with the means, the
    quadratic coefficients; the covariances from the feature sums), non-positive-definite
    components flagged."""
    rng = np.random.default_rng(24)
    w = rng.dirichlet([2.0, 2.0, 2.0], size=40)
    m = rng.normal(size=(40, 3, 2))
    a = rng.normal(size=(40, 3, 2, 2))
    cov = a @ np.swapaxes(a, -1, -2) + 0.1 * np.eye(2)
    cov[0, 1] = [[1.0, 2.0], [2.0, 1.0]]  # indefinite
    theta, ok = coefficients(w, m, cov, "full")
    prec, logdet, pd = _gmmnd_estep._precisions(cov, "full")
    pm = np.einsum("bkij,bkj->bki", prec, m)
    head = np.log(w) - 0.5 * (2 * _gmmnd_estep.LOG_2PI + logdet + (m * pm).sum(axis=-1))
    r, s = np.triu_indices(2)
    quad = np.where(r == s, -0.5, -1.0) * prec[..., r, s]
    np.testing.assert_array_equal(theta, np.concatenate([head[..., None], pm, quad], axis=-1))
    np.testing.assert_array_equal(ok, pd.all(axis=1))
    assert not ok[0] and ok[1:].all()

    sums = rng.normal(size=(40, 3, 6))
    sums[..., 0] = np.abs(sums[..., 0]) + 1.0
    nk, means, got = _gmmnd_estep.from_stats(sums, 2, 1e-6, "full")
    second = sums[..., 3:] / nk[..., None]
    q = np.empty((40, 3, 2, 2))
    q[..., r, s], q[..., s, r] = second, second
    np.testing.assert_array_equal(got, q - means[..., :, None] * means[..., None, :] + 1e-6 * np.eye(2))
