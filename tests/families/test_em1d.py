"""Batched 1-D EM against scikit-learn's GaussianMixture, and its sampling and metrics."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from sweep.families import _em1d
from sweep.families._em1d import (
    EMResult,
    em_fit,
    kl_true_fitted,
    mean_log_likelihood,
    mixture_mean_var,
    sample_gmm,
    tail_mass,
    w2_to_mixture,
)


def _problem(rng, n):
    """A random 2- or 3-component mixture, n samples of it, and perturbed initial parameters."""
    k = int(rng.integers(2, 4))
    w = rng.dirichlet(2.0 * np.ones(k))
    m = np.sort(rng.normal(0.0, 3.0, k))
    sd = rng.uniform(0.3, 1.5, k)
    lab = rng.choice(k, size=n, p=w)
    x = rng.normal(m[lab], sd[lab])
    init = (rng.dirichlet(5.0 * np.ones(k)), m + rng.normal(0.0, 0.5, k), sd**2 * rng.uniform(0.5, 2.0, k))
    return x, init


def _sklearn_fit(x, k, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(k, **kw).fit(x[:, None])


def _parity(n_datasets, seed):
    """Fit every dataset with both implementations from the same initial parameters."""
    rng = np.random.default_rng(seed)
    rows = []
    for n, count in zip((100, 1000, 10000), n_datasets):
        problems = [_problem(rng, n) for _ in range(count)]
        for k in (2, 3):
            batch = [p for p in problems if len(p[1][0]) == k]
            if not batch:
                continue
            x = np.stack([p[0] for p in batch])
            init = tuple(np.stack([p[1][i] for p in batch]) for i in range(3))
            ours = em_fit(x, k, init=init)
            for b, (xb, (w0, m0, v0)) in enumerate(batch):
                sk = _sklearn_fit(
                    xb, k, weights_init=w0, means_init=m0[:, None], precisions_init=(1.0 / v0)[:, None, None]
                )
                rows.append(
                    (
                        ours.log_likelihood[b] - sk.score(xb[:, None]),
                        ours.lower_bound[b] - sk.lower_bound_,
                        ours.n_iter[b],
                        sk.n_iter_,
                        ours.converged[b] == sk.converged_,
                    )
                )
    return np.array(rows, dtype=float)


def _check_parity(rows):
    d_score, d_lb, it_ours, it_sk, same_conv = rows.T
    assert np.mean(np.abs(d_score) <= 1e-6) >= 0.99
    assert np.mean(np.abs(d_lb) <= 1e-6) >= 0.99
    assert d_score.min() >= -1e-3
    assert abs(it_ours.mean() - it_sk.mean()) <= 0.02 * it_sk.mean()
    assert np.mean(it_ours == it_sk) >= 0.95
    assert same_conv.mean() >= 0.99


def test_parity_with_sklearn_from_same_initial_parameters():
    """From the same initial parameters, final log-likelihood, lower bound, iteration counts
    and convergence flags match scikit-learn's on 60 random datasets of N = 100, 1000, 10000."""
    _check_parity(_parity((20, 20, 20), seed=1))


@pytest.mark.slow
def test_parity_with_sklearn_500_datasets():
    """Same as the default parity test on 500 datasets (200, 200 and 100 of each size)."""
    _check_parity(_parity((200, 200, 100), seed=2))


def test_random_from_data_parity(monkeypatch):
    """With the same data points chosen as sklearn's 'random_from_data' (weights 1/N each, so
    summing to k/N, and variances reg_covar), the fits agree to 1e-9 with the same n_iter."""
    rng = np.random.default_rng(3)
    n, k, seeds = 300, 3, range(12)
    x = np.stack([_problem(rng, n)[0] for _ in seeds])

    def same_points(xc, k_, reg_covar, rng_):
        idx = np.stack([np.random.RandomState(s).choice(n, k_, replace=False) for s in seeds])
        pts = np.take_along_axis(xc, idx, axis=1)
        return _em1d._from_hard_labels(np.ones(idx.shape), pts, pts * pts, n, reg_covar)

    monkeypatch.setattr(_em1d, "_init_random_from_data", same_points)
    ours = em_fit(x, k, init="random_from_data", rng=rng)
    for b, s in enumerate(seeds):
        sk = _sklearn_fit(x[b], k, init_params="random_from_data", random_state=s)
        order = np.argsort(sk.means_[:, 0])
        np.testing.assert_allclose(ours.means[b], sk.means_[order, 0], atol=1e-9)
        np.testing.assert_allclose(ours.weights[b], sk.weights_[order], atol=1e-9)
        assert ours.n_iter[b] == sk.n_iter_
        assert abs(ours.log_likelihood[b] - sk.score(x[b][:, None])) < 1e-9


def test_random_from_data_picks_distinct_uniform_points():
    """The 'random_from_data' initial means are k distinct data points, each point equally
    likely (chi-square over 4000 draws)."""
    n, k, b = 10, 3, 4000
    x = np.tile(np.arange(n, dtype=float), (b, 1))
    w, m, v = _em1d._init_random_from_data(x, k, 1e-6, np.random.default_rng(4))
    idx = np.rint(m * (1 + 10 * np.finfo(float).eps)).astype(int)
    assert (np.sort(idx, axis=1)[:, 1:] > np.sort(idx, axis=1)[:, :-1]).all()
    assert stats.chisquare(np.bincount(idx.ravel(), minlength=n)).pvalue > 1e-3
    np.testing.assert_allclose(w.sum(axis=1), k / n * (1 + 10 * np.finfo(float).eps))


def _kmeans_fits(x, k, n_fits, seed):
    ours = em_fit(np.tile(x, (n_fits, 1)), k, init="kmeans", rng=np.random.default_rng(seed))
    sk = [_sklearn_fit(x, k, random_state=s) for s in range(n_fits)]
    sk_means = np.array([np.sort(g.means_[:, 0]) for g in sk])
    sk_ll = np.array([g.score(x[:, None]) for g in sk])
    return ours, sk_means, sk_ll


def test_kmeans_init_matches_sklearn_in_law_on_one_dataset():
    """On one dataset with several EM optima, the optima reached from 160 kmeans inits occur
    with the same frequencies as from sklearn's (chi-square on the optima, p > 1e-3)."""
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(-1.5, 1.0, 60), rng.normal(0.5, 0.6, 40), rng.normal(2.0, 1.0, 50)])
    ours, _, sk_ll = _kmeans_fits(x, 4, 160, seed=6)
    # optima are atoms (equal up to rounding): identify them by their rounded log-likelihood
    a, b = np.round(ours.log_likelihood, 6), np.round(sk_ll, 6)
    optima = np.unique(np.concatenate([a, b]))
    table = np.array([[np.sum(a == o), np.sum(b == o)] for o in optima])
    assert len(optima) > 3  # the test needs init-dependent optima
    rare = table.sum(axis=1) < 10
    table = np.vstack([table[~rare], table[rare].sum(axis=0)])
    assert stats.chi2_contingency(table[table.sum(axis=1) > 0]).pvalue > 1e-3


def _kmeans_law_across_datasets(n_datasets, n, seed):
    rng = np.random.default_rng(seed)
    data = np.stack([_problem(rng, n)[0] for _ in range(n_datasets)])
    ours = em_fit(data, 3, init="kmeans", rng=np.random.default_rng(seed + 1))
    sk = [_sklearn_fit(xb, 3, random_state=i) for i, xb in enumerate(data)]
    order = [np.argsort(g.means_[:, 0]) for g in sk]
    ref = {
        "means": np.array([g.means_[o, 0] for g, o in zip(sk, order)]),
        "weights": np.array([g.weights_[o] for g, o in zip(sk, order)]),
        "variances": np.array([g.covariances_[o, 0, 0] for g, o in zip(sk, order)]),
    }
    for name, arr in ref.items():
        for j in range(3):
            p = stats.ks_2samp(getattr(ours, name)[:, j], arr[:, j], method="asymp").pvalue
            assert p > 1e-3, name
    # iteration counts are discrete: compare their means, within 4 standard errors
    sk_iter = np.array([g.n_iter_ for g in sk], dtype=float)
    se = np.sqrt((ours.n_iter.var(ddof=1) + sk_iter.var(ddof=1)) / n_datasets)
    assert abs(ours.n_iter.mean() - sk_iter.mean()) <= 4 * se


def test_kmeans_init_matches_sklearn_in_law_across_datasets():
    """Across 120 datasets, fitted parameters after one kmeans-initialised fit have the same
    distribution as sklearn's (KS on every sorted mean, weight, variance, p > 1e-3) and the
    same mean iteration count (within 4 standard errors)."""
    _kmeans_law_across_datasets(120, 100, seed=7)


@pytest.mark.slow
def test_kmeans_init_matches_sklearn_in_law_across_400_datasets():
    """Same as the default test on 400 datasets of 150 samples."""
    _kmeans_law_across_datasets(400, 150, seed=17)


def test_results_are_sorted_by_mean_and_invariant_to_component_order():
    """Fitted components come sorted by mean, and permuting the initial components does not
    change the fit."""
    rng = np.random.default_rng(9)
    x, (w, m, v) = _problem(rng, 500)
    k = len(w)
    a = em_fit(x[None], k, init=(w, m, v))
    perm = rng.permutation(k)[::-1]
    b = em_fit(x[None], k, init=(w[perm], m[perm], v[perm]))
    assert (np.diff(a.means, axis=1) >= 0).all()
    for name in ("weights", "means", "variances"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-10)


def test_converged_chains_are_frozen_and_match_single_chain_fits():
    """In a batch, every chain (converging after 2 or after many iterations) gets exactly the
    fit it gets alone."""
    rng = np.random.default_rng(10)
    problems = [_problem(rng, 400) for _ in range(8)]
    problems = [p for p in problems if len(p[1][0]) == 2][:4] or problems[:1]
    x = np.stack([p[0] for p in problems])
    init = tuple(np.stack([p[1][i] for p in problems]) for i in range(3))
    # chain 0 starts from its own converged fit: it stops at iteration 2
    warm = em_fit(x[:1], 2, init=tuple(a[:1] for a in init))
    init = tuple(np.concatenate([getattr(warm, n), a[1:]]) for n, a in zip(("weights", "means", "variances"), init))
    batch = em_fit(x, 2, init=init)
    assert batch.n_iter[0] == 2 and batch.n_iter.max() > 2
    for b in range(len(x)):
        alone = em_fit(x[b : b + 1], 2, init=tuple(a[b : b + 1] for a in init))
        for name in ("weights", "means", "variances", "n_iter", "lower_bound", "log_likelihood"):
            np.testing.assert_allclose(getattr(batch, name)[b], getattr(alone, name)[0], rtol=1e-12)


def test_max_iter_and_warm_start():
    """max_iter=1 leaves chains unconverged with n_iter 1; an EMResult is a valid warm start
    and a converged fit restarted from itself converges at iteration 2."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(3, 200))
    one = em_fit(x, 2, init="kmeans", rng=rng, max_iter=1)
    assert (one.n_iter == 1).all() and not one.converged.any()
    fit = em_fit(x, 2, init="kmeans", rng=rng)
    again = em_fit(x, 2, init=fit)
    assert (again.n_iter == 2).all() and again.converged.all()


def test_n_init_keeps_the_best_lower_bound():
    """n_init=3 returns, per chain, the best of the three fits that three n_init=1 calls on
    the same random stream produce."""
    rng = np.random.default_rng(12)
    x = np.stack([_problem(rng, 120)[0] for _ in range(30)])
    best = em_fit(x, 3, init="kmeans", rng=np.random.default_rng(13), n_init=3)
    g = np.random.default_rng(13)
    runs = [em_fit(x, 3, init="kmeans", rng=g) for _ in range(3)]
    lb = np.stack([r.lower_bound for r in runs])
    np.testing.assert_allclose(best.lower_bound, lb.max(axis=0), rtol=1e-12)


@pytest.mark.parametrize("init", ["kmeans", "random_from_data", "warm"])
def test_fitted_mixture_keeps_the_sample_mean_and_variance(init):
    """After any M-step the mixture's total mean and variance are the data's mean and ddof=0
    variance plus reg_covar (responsibilities sum to 1 per sample), whatever the data, k or the
    initialisation: an exact identity, so the total variance of a gmm1d chain is the ML
    sample variance of the previous fit's samples."""
    rng = np.random.default_rng(21)
    x = np.concatenate([rng.normal(-2.0, 1.0, (30, 60)), rng.standard_t(3, (30, 60)) * 2.0 + 1.0], axis=1)
    for k in (2, 3):
        start = (
            ("kmeans" if init == "kmeans" else "random_from_data")
            if init != "warm"
            else (np.full((30, k), 1.0 / k), np.linspace(-2.0, 2.0, k) + np.zeros((30, k)), np.ones((30, k)))
        )
        fit = em_fit(x, k, init=start, rng=np.random.default_rng(1), reg_covar=1e-4)
        mean, var = mixture_mean_var(fit.weights, fit.means, fit.variances)
        np.testing.assert_allclose(mean, x.mean(axis=1), rtol=0, atol=1e-12)
        np.testing.assert_allclose(var, x.var(axis=1) + 1e-4, rtol=1e-10)


def test_single_component_is_the_sample_mean_and_variance():
    """k=1 gives the sample mean, the ddof=0 variance plus reg_covar, and converges at
    iteration 2 as in sklearn."""
    x = np.random.default_rng(14).normal(3.0, 2.0, size=(4, 50))
    fit = em_fit(x, 1, init="kmeans", rng=np.random.default_rng(0))
    np.testing.assert_allclose(fit.means[:, 0], x.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(fit.variances[:, 0], x.var(axis=1) + 1e-6, rtol=1e-12)
    assert (fit.n_iter == _sklearn_fit(x[0], 1).n_iter_).all()


def test_mean_log_likelihood_is_sklearn_score():
    """mean_log_likelihood equals sklearn's score for the same parameters."""
    rng = np.random.default_rng(15)
    x, (w, m, v) = _problem(rng, 300)
    sk = _sklearn_fit(
        x, len(w), weights_init=w, means_init=m[:, None], precisions_init=(1 / v)[:, None, None], max_iter=1
    )
    ll = mean_log_likelihood(x[None], sk.weights_, sk.means_[:, 0], sk.covariances_[:, 0, 0])
    assert abs(ll[0] - sk.score(x[:, None])) < 1e-10


def test_far_separated_components_use_the_stable_path():
    """A narrow component far from a wide one (exponents beyond the fast path's range) still
    gives sklearn's fit."""
    rng = np.random.default_rng(16)
    x = np.concatenate([rng.normal(0, 1, 300), rng.normal(60, 0.01, 100)])
    init = (np.array([0.7, 0.3]), np.array([0.5, 59.0]), np.array([2.0, 1e-3]))
    ours = em_fit(x[None], 2, init=init)
    sk = _sklearn_fit(
        x, 2, weights_init=init[0], means_init=init[1][:, None], precisions_init=(1 / init[2])[:, None, None]
    )
    assert abs(ours.log_likelihood[0] - sk.score(x[:, None])) < 1e-9
    assert ours.n_iter[0] == sk.n_iter_


# float32 E-step: fitted weights (absolute), means and sds (in units of the data's sd) within this
# of float64's. Measured on the 500 datasets of the slow parity suite: at most 1.0e-6 (p99 7e-7).
FLOAT32_TOL = 1e-5


def _parameter_gap(a, b, x):
    sd = x.std(axis=1)[:, None]
    return np.max(
        [
            np.abs(a.weights - b.weights),
            np.abs(a.means - b.means) / sd,
            np.abs(np.sqrt(a.variances) - np.sqrt(b.variances)) / sd,
        ],
        axis=(0, 2),
    )


@pytest.mark.parametrize("n", [100, 1000, 10000])
def test_float32_fits_within_tolerance_of_float64(n):
    """precision="float32" gives float64's parameters within FLOAT32_TOL and the same iteration
    counts on the parity datasets, from the same initial parameters and from k-means; and it
    really runs in float32 (the parameters are not bit-identical to float64's)."""
    rng = np.random.default_rng(3)
    problems = [_problem(rng, n) for _ in range(40)]
    for k in (2, 3):
        batch = [p for p in problems if len(p[1][0]) == k]
        x = np.stack([p[0] for p in batch])
        init = tuple(np.stack([p[1][i] for p in batch]) for i in range(3))
        for start in (init, "kmeans"):
            f64, f32 = (
                em_fit(x, k, init=start, rng=np.random.default_rng(4), precision=p) for p in ("float64", "float32")
            )
            gap = _parameter_gap(f32, f64, x)
            same_iter = f32.n_iter == f64.n_iter
            assert same_iter.mean() >= 0.95
            assert gap[same_iter].max() <= FLOAT32_TOL
            assert np.abs(f32.log_likelihood - f64.log_likelihood)[same_iter].max() <= FLOAT32_TOL
            assert np.median(gap) > 1e-10  # not a silent float64 run


@pytest.mark.slow
def test_float32_parity_with_sklearn_500_datasets():
    """On the 500 datasets of the slow parity suite, precision="float32" from scikit-learn's
    initial parameters gives its weights, means and sds within FLOAT32_TOL (measured: at most
    1.0e-6), its final log-likelihood within FLOAT32_TOL and its iteration counts."""
    rng = np.random.default_rng(2)
    gaps, scores, same_iter = [], [], []
    for n, count in zip((100, 1000, 10000), (200, 200, 100)):
        problems = [_problem(rng, n) for _ in range(count)]
        for k in (2, 3):
            batch = [p for p in problems if len(p[1][0]) == k]
            x = np.stack([p[0] for p in batch])
            init = tuple(np.stack([p[1][i] for p in batch]) for i in range(3))
            ours = em_fit(x, k, init=init, precision="float32")
            for b, (xb, (w0, m0, v0)) in enumerate(batch):
                sk = _sklearn_fit(
                    xb, k, weights_init=w0, means_init=m0[:, None], precisions_init=(1.0 / v0)[:, None, None]
                )
                order = np.argsort(sk.means_[:, 0])
                ref = EMResult(
                    sk.weights_[order][None], sk.means_[order, 0][None], sk.covariances_[order, 0, 0][None], *[None] * 4
                )
                one = EMResult(ours.weights[b : b + 1], ours.means[b : b + 1], ours.variances[b : b + 1], *[None] * 4)
                gaps.append(_parameter_gap(one, ref, xb[None])[0])
                scores.append(abs(ours.log_likelihood[b] - sk.score(xb[:, None])))
                same_iter.append(ours.n_iter[b] == sk.n_iter_)
    assert len(gaps) == 500
    assert max(gaps) <= FLOAT32_TOL
    assert max(scores) <= FLOAT32_TOL
    assert np.mean(same_iter) >= 0.99


def test_float32_accumulates_the_statistics_in_float64():
    """One EM step on 2**20 samples: float32 responsibilities with float64 sums give float64's
    parameters to ~5e-8 relative; float32 sums (numpy's pairwise sum, BLAS dot) are ~3e-6 off."""
    rng = np.random.default_rng(5)
    x = sample_gmm([[0.3, 0.7]] * 2, [[-1.0, 2.0]] * 2, [[1.0, 0.25]] * 2, 1 << 20, rng=rng)
    init = (np.array([0.5, 0.5]), np.array([-0.5, 1.5]), np.array([1.5, 1.0]))
    f64, f32 = (em_fit(x, 2, init=init, max_iter=1, precision=p) for p in ("float64", "float32"))
    rel = max(np.abs(getattr(f32, name) / getattr(f64, name) - 1.0).max() for name in ("weights", "means", "variances"))
    assert 0.0 < rel <= 3e-7  # measured: 5e-8; with float32 sums 3e-6


def test_float32_falls_back_to_float64_where_unsafe():
    """Chains where float32 is unsafe are fitted in float64, bit for bit, while their batch
    neighbour runs in float32: components 100 sd apart (exponents overflow float32), and a
    narrow component 3 sd off a wide one (exponents in float32 would put the narrow mean 1e-4
    off)."""
    rng = np.random.default_rng(6)
    near = np.concatenate([rng.normal(-1.0, 1.0, 500), rng.normal(1.0, 1.0, 100)])
    far = np.concatenate([rng.normal(-50.0, 1.0, 500), rng.normal(50.0, 1.0, 100)])
    narrow = np.concatenate([rng.normal(0.0, 10.0, 500), rng.normal(30.0, 1.0, 100)])
    x = np.stack([near, far, narrow])
    init = ([[0.8, 0.2]] * 3, [[-1.0, 1.0], [-50.0, 50.0], [0.0, 30.0]], [[1.0, 1.0], [1.0, 1.0], [100.0, 1.0]])
    for max_iter in (1, 100):
        f64, f32 = (em_fit(x, 2, init=init, max_iter=max_iter, precision=p) for p in ("float64", "float32"))
        for name in ("weights", "means", "variances", "lower_bound", "log_likelihood"):
            assert getattr(f32, name)[1:].tolist() == getattr(f64, name)[1:].tolist(), name
        assert f32.means[0].tolist() != f64.means[0].tolist()


def test_sample_gmm_component_proportions():
    """Per-component counts of sample_gmm are within 5 multinomial standard errors of
    n * weights, also in the first half of each row (the order is exchangeable)."""
    w = np.array([[0.2, 0.5, 0.3], [0.05, 0.05, 0.9]])
    m = np.array([[0.0, 100.0, 200.0]] * 2)
    x = sample_gmm(w, m, np.ones_like(w), 20000, rng=np.random.default_rng(17))
    for part in (x, x[:, :10000]):
        n = part.shape[1]
        counts = np.stack([(np.abs(part - mu) < 50).sum(axis=1) for mu in m[0]], axis=1)
        se = np.sqrt(n * w * (1 - w))
        assert (np.abs(counts - n * w) <= 5 * se).all()
    mean, var = mixture_mean_var(w, m, np.ones_like(w))
    assert (np.abs(x.mean(axis=1) - mean) <= 5 * np.sqrt(var / x.shape[1])).all()


def test_w2_closed_forms():
    """W2 of identical mixtures is 0; between two Gaussians it is sqrt(dm**2 + ds**2) within
    1e-3, for close and for very different pairs."""
    w, m, v = np.array([0.3, 0.7]), np.array([-2.0, 1.0]), np.array([0.5, 2.0])
    assert w2_to_mixture(w, m, v, w, m, v)[0] < 1e-12
    m1 = np.array([[0.0], [0.0], [1.0], [-3.0], [0.1]])
    s1 = np.array([[1.0], [0.3], [2.0], [0.05], [1.0]])
    got = w2_to_mixture(np.ones_like(m1), m1, s1**2, [1.0], [0.5], [1.44])
    np.testing.assert_allclose(got, np.hypot(m1 - 0.5, s1 - 1.2)[:, 0], atol=1e-3)


def test_w2_of_separated_mixtures_against_fine_grid():
    """W2 between well separated mixtures with different weights agrees with a 64x finer grid
    within 1e-4."""
    w = np.array([[0.4, 0.6], [0.45, 0.55], [0.1, 0.9]])
    m = np.array([[-4.0, 4.0], [-4.1, 3.9], [-3.0, 5.0]])
    v = np.array([[0.04, 0.09], [0.05, 0.08], [0.3, 0.1]])
    tw, tm, tv = [0.42, 0.58], [-4.0, 4.0], [0.04, 0.09]
    coarse = w2_to_mixture(w, m, v, tw, tm, tv)
    fine = w2_to_mixture(w, m, v, tw, tm, tv, points_per_component=8193)
    np.testing.assert_allclose(coarse, fine, atol=1e-4)


def test_kl_and_tail_mass():
    """KL(true||true) is 0, KL between Gaussians matches the closed form, and the tail mass of
    the truth is 0.02 while a Gaussian's is its closed form."""
    w, m, v = [0.5, 0.5], [-1.0, 1.5], [0.5, 1.0]
    assert abs(kl_true_fitted(w, m, v, w, m, v)[0]) < 1e-14  # 0 up to rounding
    assert abs(tail_mass(w, m, v, w, m, v)[0] - 0.02) < 1e-10
    kl = kl_true_fitted([1.0], [0.3], [2.0], [1.0], [0.0], [1.0])[0]
    assert abs(kl - (np.log(np.sqrt(2.0)) + (1.0 + 0.09) / 4.0 - 0.5)) < 1e-8
    q = stats.norm.ppf([0.01, 0.99])
    expect = stats.norm.cdf(q[0], 0.5, 2.0) + stats.norm.sf(q[1], 0.5, 2.0)
    assert abs(tail_mass([1.0], [0.5], [4.0], [1.0], [0.0], [1.0])[0] - expect) < 1e-10


def test_score_false_skips_only_the_final_likelihood():
    """score=False leaves the fit itself bit for bit unchanged and reports NaN likelihoods."""
    x = sample_gmm([[0.5, 0.5]] * 20, [[-2.0, 2.0]] * 20, [[1.0, 1.0]] * 20, 200, rng=np.random.default_rng(4))
    full = em_fit(x, 2, rng=np.random.default_rng(5))
    lean = em_fit(x, 2, rng=np.random.default_rng(5), score=False)
    for name in ("weights", "means", "variances", "n_iter", "converged", "lower_bound"):
        np.testing.assert_array_equal(getattr(lean, name), getattr(full, name))
    assert np.isnan(lean.log_likelihood).all() and np.isfinite(full.log_likelihood).all()


def test_kl_equals_the_plain_logsumexp_quadrature():
    """The reorganised sum (widest component's quadratic through the truth's moments, the rest
    through k - 1 exponentials) equals the plain quadrature sum p (log p - log q) dx on the
    same grid, for k = 1, 2, 3 and collapsed components (sd down to 1e-4)."""
    rng = np.random.default_rng(8)
    tw, tm, tv = np.array([0.3, 0.7]), np.array([-2.0, 1.5]), np.array([0.5, 1.5])
    lo, hi = (tm - 12 * np.sqrt(tv)).min(), (tm + 12 * np.sqrt(tv)).max()
    x = np.linspace(lo, hi, 1024)

    def log_mix(w, m, v):
        comp = np.log(w)[:, None] - 0.5 * np.log(2 * np.pi * v)[:, None] - (x - m[:, None]) ** 2 / (2 * v[:, None])
        return np.logaddexp.reduce(comp, axis=0)

    log_p = log_mix(tw, tm, tv)
    for k in (1, 2, 3):
        w = rng.dirichlet(np.ones(k), 40)
        m = np.sort(rng.normal(0.0, 2.0, (40, k)), axis=1)
        v = np.exp(rng.uniform(np.log(1e-8), np.log(4.0), (40, k)))
        plain = [(np.exp(log_p) * (log_p - log_mix(*row))).sum() * (x[1] - x[0]) for row in zip(w, m, v)]
        np.testing.assert_allclose(kl_true_fitted(w, m, v, tw, tm, tv), plain, rtol=1e-9)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: em_fit(np.zeros((2, 10)), 0, init="kmeans", rng=np.random.default_rng()), "'k'"),
        (lambda: em_fit(np.zeros((2, 10)), 11, init="kmeans", rng=np.random.default_rng()), "'k'"),
        (lambda: em_fit(np.zeros((1, 10)), 2, init=([0.5, 0.5], [0, 1], [1, -1])), "'init variances'"),
        (lambda: em_fit(np.zeros((1, 10)), 2, init=([0.5, 0.6], [0, 1], [1, 1])), "'init weights'"),
        (lambda: em_fit(np.zeros((1, 10)), 2, init="kmeans++", rng=np.random.default_rng()), "'init'"),
        (lambda: em_fit(np.zeros((1, 10)), 2, rng=np.random.default_rng(), precision="half"), "'precision'"),
        (lambda: sample_gmm([[0.5, 0.4]], [[0, 1]], [[1, 1]], 5, rng=np.random.default_rng()), "'weights'"),
        (lambda: sample_gmm([[0.5, 0.5]], [[0, 1]], [[1, 0]], 5, rng=np.random.default_rng()), "'variances'"),
        (lambda: w2_to_mixture([1.0], [0.0], [1.0], [1.0], [0.0], [0.0]), "'true_variances'"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(call, name):
    """Bad k, variances, weights or init raise a one-line ValueError naming the argument,
    the expectation and the value given."""
    with pytest.raises(ValueError) as info:
        call()
    msg = str(info.value)
    assert name in msg and "must be" in msg and "Got" in msg and "\n" not in msg


def test_bad_types_raise_type_error():
    """A seed instead of a Generator, or a non-integer k, raises TypeError."""
    with pytest.raises(TypeError, match="'rng'"):
        em_fit(np.zeros((1, 10)), 2, init="kmeans", rng=0)
    with pytest.raises(TypeError, match="'k'"):
        em_fit(np.zeros((1, 10)), 2.0, init="kmeans", rng=np.random.default_rng())
    assert isinstance(em_fit(np.arange(20.0)[None], 2, init="kmeans", rng=np.random.default_rng()), EMResult)


@pytest.mark.parametrize("scale", [2.0**40, 1e152, 1e-150])
def test_w2_to_mixture_is_scale_equivariant_at_any_scale(scale):
    """W2 scales with the data: exactly (bit for bit) for a power-of-two scale, to 1e-13 for
    any other, and stays finite for mixtures at 1e152 (whose cubic integrals overflowed)."""
    rng = np.random.default_rng(5)
    w, m, v = rng.dirichlet([1, 1], 30), np.sort(rng.normal(0, 3, (30, 2)), 1), np.exp(rng.normal(0, 1, (30, 2)))
    truth = np.array([0.3, 0.7]), np.array([-2.0, 3.0]), np.array([1.5, 0.5])
    base = w2_to_mixture(w, m, v, *truth)
    scaled = w2_to_mixture(w, m * scale, v * scale**2, truth[0], truth[1] * scale, truth[2] * scale**2)
    assert np.isfinite(scaled).all()
    if scale == 2.0**40:
        np.testing.assert_array_equal(scaled, base * scale)
    np.testing.assert_allclose(scaled / scale, base, rtol=1e-13)


def test_n_init_prefers_a_finite_fit_over_a_diverged_one():
    """With reg_covar=0 some k-means starts make EM non-finite; a fit with n_init=3 is the best
    of the three single fits drawn from the same stream, and non-finite only where all three
    are (scikit-learn's rule alone would keep a NaN first start: NaN compares False)."""
    rng = np.random.default_rng(0)
    b = 4000
    x = sample_gmm(np.full((b, 2), 0.5), np.tile([-2.0, 2.0], (b, 1)), np.ones((b, 2)), 10, rng=rng)
    kw = dict(init="kmeans", reg_covar=0.0)
    best = em_fit(x, 2, rng=np.random.default_rng(1), n_init=3, **kw)
    stream = np.random.default_rng(1)
    singles = [em_fit(x, 2, rng=stream, n_init=1, **kw) for _ in range(3)]
    finite = np.array([np.isfinite(s.variances).all(axis=1) for s in singles])
    assert 20 < (~finite[0]).sum() < 200  # the case occurs, and not everywhere
    np.testing.assert_array_equal(np.isfinite(best.variances).all(axis=1), finite.any(axis=0))
    lower = np.where(finite, [s.lower_bound for s in singles], -np.inf)
    rows = finite.any(axis=0)
    np.testing.assert_array_equal(best.lower_bound[rows], lower.max(axis=0)[rows])


def test_sample_gmm_gives_nan_for_diverged_chains_and_leaves_the_others():
    """A chain with a non-finite parameter (NaN weights, an infinite variance) gets NaN samples,
    and the other chains' samples are bit for bit those of the same call with finite
    parameters in its place (it draws the same random numbers); live chains are still checked."""
    w = np.array([[0.3, 0.7], [np.nan, np.nan], [0.5, 0.5], [0.5, 0.5]])
    m = np.array([[-1.0, 1.0], [np.nan, np.nan], [0.0, 3.0], [0.0, 3.0]])
    v = np.array([[1.0, 0.5], [np.nan, np.nan], [2.0, 1.0], [np.inf, 1.0]])
    x = sample_gmm(w, m, v, 50, rng=np.random.default_rng(7))
    fine = [w.copy(), m.copy(), v.copy()]
    for a, value in zip(fine, (0.5, 0.0, 1.0)):
        a[1] = value
    fine[2][3, 0] = 1.0
    ref = sample_gmm(*fine, 50, rng=np.random.default_rng(7))
    assert np.isnan(x[[1, 3]]).all()
    np.testing.assert_array_equal(x[[0, 2]], ref[[0, 2]])
    with pytest.raises(ValueError, match="'weights'"):
        sample_gmm([[0.5, 0.4], [np.nan, 0.5]], [[0, 1], [0, 1]], [[1, 1], [1, 1]], 5, rng=np.random.default_rng())


@pytest.mark.parametrize("precision", ["float64", "float32"])
def test_a_chains_estep_does_not_depend_on_the_chains_beside_it(precision):
    """Each chain's E-step bits (log-likelihood and statistics) are the same alone and beside a
    chain whose exponents are large: the product tree's depth and the exp clamp are chosen per
    chain. A depth shared by the batch (the smallest any chain allows) changes the calm chain's
    log-likelihood in its last bits, which can flip a convergence check (checked: the float32
    case fails so)."""
    from sweep.families._em1d import _Work

    rng = np.random.default_rng(3)
    n = 4096
    calm = np.sort(rng.normal(0.0, 1.0, n))
    # a narrow component 6 sd out: exponents up to 17 (depth 4 of 5 in float64, 1 of 4 in
    # float32) and, in float32, below the floor (clamped)
    steep = np.sort(np.concatenate([rng.normal(0.0, 1.0, n - 64), rng.normal(6.0, 0.3, 64)]))
    data = np.stack([calm, steep])
    w = np.array([[0.5, 0.5], [0.98, 0.02]])
    m = np.array([[-0.5, 0.5], [0.0, 6.0]])
    v = np.array([[0.8, 1.2], [1.0, 0.09]])

    def run(rows):
        xc = data[rows] - data[rows].mean(axis=1, keepdims=True)
        shift = data[rows].mean(axis=1, keepdims=True)
        work = _Work(xc, 2, is_sorted=True, precision=precision)
        return work.estep(np.arange(len(rows)), xc, work.x2, w[rows], m[rows] - shift, v[rows], stats=True)

    ll_both, st_both = run([0, 1])
    for i in (0, 1):
        ll_one, st_one = run([i])
        assert ll_one[0] == ll_both[i]
        for a, b in zip(st_one, st_both):
            assert np.array_equal(a[0], b[i])


def test_sum_log_gives_each_row_its_own_tree_whatever_the_width():
    """Rows with different depths, widths that run out before the deepest tree (1, 2, 3, 33
    values): each row equals itself computed alone, and the log of the product within 1e-12."""
    from sweep.families._estep1d import _sum_log

    rng = np.random.default_rng(0)
    for width in (1, 2, 3, 33):
        s = 1.0 + rng.random((4, width))
        levels = np.array([0, 5, 2, 1])
        both = _sum_log(s, levels)
        for i in range(4):
            assert _sum_log(s[i : i + 1], levels[i : i + 1])[0] == both[i]
        assert np.allclose(both, np.log(s).sum(axis=1), rtol=1e-12)
