"""Batched d-dimensional EM and k-means against scikit-learn's GaussianMixture and KMeans."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from sweep.families import _gmmnd_em
from sweep.families._gmmnd import Mixture, mixture_moments, restrict, sample_mixture
from sweep.families._gmmnd_em import em_fit, mean_log_likelihood
from sweep.families._gmmnd_kmeans import kmeans_labels

TYPES = ["full", "diag", "spherical"]


@pytest.fixture(autouse=True)
def one_thread():
    """scikit-learn's KMeans on OpenMP threads spins for minutes on a loaded machine: one thread."""
    with threadpool_limits(1):
        yield


def _problem(rng, n, d, k):
    """A random k-component mixture in d dimensions, n samples of it, and perturbed initial parameters."""
    w = rng.dirichlet(2.0 * np.ones(k))
    m = rng.normal(0.0, 3.0, (k, d))
    a = rng.normal(size=(k, d, d)) * 0.6
    c = a @ np.swapaxes(a, 1, 2) + 0.2 * np.eye(d)
    x = sample_mixture(w, m, c, n, rng=rng)[0]
    init = (rng.dirichlet(5.0 * np.ones(k)), m + rng.normal(0.0, 0.5, (k, d)), c * rng.uniform(0.5, 2.0, (k, 1, 1)))
    return x, init


def _sklearn(x, k, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(k, **kw).fit(x)


def _precisions(c, covariance_type):
    """scikit-learn's precisions_init for full covariance matrices reduced to a type."""
    c = restrict(c, covariance_type)
    if covariance_type == "full":
        return np.linalg.inv(c)
    diag = 1.0 / np.diagonal(c, axis1=-2, axis2=-1)
    return diag if covariance_type == "diag" else diag[:, 0]


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("d, k", [(2, 2), (3, 3)])
def test_parity_with_sklearn_from_same_initial_parameters(covariance_type, d, k):
    """From the same initial parameters, the final log-likelihood, lower bound, iteration count and
    convergence flag equal scikit-learn's (to 1e-9; the same iterations) on 12 datasets each of
    N = 60 and 600."""
    rng = np.random.default_rng(d * 10 + k + len(covariance_type))
    for n in (60, 600):
        problems = [_problem(rng, n, d, k) for _ in range(12)]
        x = np.stack([p[0] for p in problems])
        init = tuple(np.stack([p[1][i] for p in problems]) for i in range(3))
        ours = em_fit(x, k, covariance_type=covariance_type, init=init)
        for b, (xb, (w0, m0, c0)) in enumerate(problems):
            sk = _sklearn(
                xb,
                k,
                covariance_type=covariance_type,
                weights_init=w0,
                means_init=m0,
                precisions_init=_precisions(c0, covariance_type),
            )
            assert abs(ours.log_likelihood[b] - sk.score(xb)) < 1e-9
            assert abs(ours.lower_bound[b] - sk.lower_bound_) < 1e-9
            assert ours.n_iter[b] == sk.n_iter_ and ours.converged[b] == sk.converged_
            order = np.argsort(sk.means_[:, 0], kind="stable")
            np.testing.assert_allclose(ours.means[b], sk.means_[order], atol=1e-7)


def test_random_from_data_parity(monkeypatch):
    """With the same data points as scikit-learn's 'random_from_data' picks (weights 1/N each,
    covariances reg_covar), the fits agree to 1e-9 with the same n_iter, for every covariance type."""
    rng = np.random.default_rng(3)
    n, k, seeds = 200, 3, range(8)
    x = np.stack([_problem(rng, n, 2, 3)[0] for _ in seeds])
    idx = np.stack([np.random.RandomState(s).choice(n, k, replace=False) for s in seeds])
    for covariance_type in TYPES:

        def same_points(xt, k_, d_, reg, ct, rng_):
            pts = np.swapaxes(np.take_along_axis(xt, idx[:, None, :], axis=2), 1, 2)
            nk = np.full((len(seeds), k_), 1.0 + _gmmnd_em.NK_EPS)
            means = pts / nk[..., None]
            var = (
                restrict((pts * pts / nk[..., None] - means * means + reg)[..., :, None] * np.eye(d_), ct)
                if ct != "full"
                else np.zeros((len(seeds), k_, d_, d_)) + reg * np.eye(d_)
            )
            return nk / n, means, var

        monkeypatch.setattr(_gmmnd_em, "_random_from_data", same_points)
        ours = em_fit(x, k, covariance_type=covariance_type, init="random_from_data", rng=rng)
        for b, s in enumerate(seeds):
            sk = _sklearn(x[b], k, covariance_type=covariance_type, init_params="random_from_data", random_state=s)
            assert ours.n_iter[b] == sk.n_iter_
            assert abs(ours.log_likelihood[b] - sk.score(x[b])) < 1e-9


def test_random_from_data_picks_distinct_uniform_points():
    """The 'random_from_data' initial means are k distinct samples, each equally likely
    (chi-square over 3000 draws)."""
    n, k, b = 10, 3, 3000
    xt = np.broadcast_to(np.arange(n, dtype=float), (b, 2, n)).copy()
    _, m, _ = _gmmnd_em._random_from_data(xt, k, 2, 1e-6, "full", np.random.default_rng(4))
    idx = np.rint(m[..., 0]).astype(int)
    assert (np.sort(idx, axis=1)[:, 1:] > np.sort(idx, axis=1)[:, :-1]).all()
    assert stats.chisquare(np.bincount(idx.ravel(), minlength=n)).pvalue > 1e-3


def _law_across_datasets(n_datasets, n, covariance_type, seed):
    rng = np.random.default_rng(seed)
    data = np.stack([_problem(rng, n, 2, 3)[0] for _ in range(n_datasets)])
    ours = em_fit(data, 3, covariance_type=covariance_type, init="kmeans", rng=np.random.default_rng(seed + 1))
    sk = [_sklearn(xb, 3, covariance_type=covariance_type, random_state=i) for i, xb in enumerate(data)]
    order = [np.argsort(g.means_[:, 0], kind="stable") for g in sk]
    sk_w = np.array([g.weights_[o] for g, o in zip(sk, order)])
    sk_m = np.array([g.means_[o] for g, o in zip(sk, order)])
    for j in range(3):
        assert stats.ks_2samp(ours.weights[:, j], sk_w[:, j], method="asymp").pvalue > 1e-3
        for r in range(2):
            assert stats.ks_2samp(ours.means[:, j, r], sk_m[:, j, r], method="asymp").pvalue > 1e-3
    sk_ll = np.array([g.score(xb) for g, xb in zip(sk, data)])
    assert stats.ks_2samp(ours.log_likelihood, sk_ll, method="asymp").pvalue > 1e-3
    sk_iter = np.array([g.n_iter_ for g in sk], dtype=float)
    se = np.sqrt((ours.n_iter.var(ddof=1) + sk_iter.var(ddof=1)) / n_datasets)
    assert abs(ours.n_iter.mean() - sk_iter.mean()) <= 4 * se


@pytest.mark.parametrize("covariance_type", TYPES)
def test_kmeans_init_matches_sklearn_in_law_across_datasets(covariance_type):
    """Across 100 datasets (N = 80, d = 2, k = 3), the fits after one kmeans-initialised EM have
    the distribution of scikit-learn's (KS on every sorted weight, mean coordinate and the final
    log-likelihood, p > 1e-3) and the same mean iteration count (4 standard errors)."""
    _law_across_datasets(100, 80, covariance_type, seed=7)


@pytest.mark.slow
def test_kmeans_init_matches_sklearn_in_law_across_400_datasets():
    """The same on 400 datasets of 150 samples, full covariances."""
    _law_across_datasets(400, 150, "full", seed=17)


def test_kmeans_optima_frequencies_match_sklearn_on_one_dataset():
    """On one dataset with several EM optima, the optima reached from 160 kmeans inits occur with
    the frequencies scikit-learn's reach them (chi-square contingency, p > 1e-3)."""
    rng = np.random.default_rng(5)
    x = np.concatenate(
        [
            rng.normal([-1.5, 0.0], 1.0, (60, 2)),
            rng.normal([0.5, 1.0], 0.6, (40, 2)),
            rng.normal([2.0, -0.5], 1.0, (50, 2)),
        ]
    )
    ours = em_fit(np.tile(x, (160, 1, 1)), 4, init="kmeans", rng=np.random.default_rng(6))
    sk_ll = np.array([_sklearn(x, 4, random_state=s).score(x) for s in range(160)])
    a, b = np.round(ours.log_likelihood, 6), np.round(sk_ll, 6)
    optima = np.unique(np.concatenate([a, b]))
    assert len(optima) > 3  # the test needs init-dependent optima
    table = np.array([[np.sum(a == o), np.sum(b == o)] for o in optima])
    rare = table.sum(axis=1) < 10
    table = np.vstack([table[~rare], table[rare].sum(axis=0)])
    assert stats.chi2_contingency(table[table.sum(axis=1) > 0]).pvalue > 1e-3


def test_kmeans_labels_match_sklearn_kmeans_in_law():
    """KMeans(k, n_init=1) inertias of our labels and scikit-learn's have one distribution over
    120 datasets (KS p > 1e-3), and so do the Lloyd iteration counts' effect: the mean inertia
    agrees within 4 standard errors."""
    rng = np.random.default_rng(8)
    data = np.stack([_problem(rng, 150, 2, 3)[0] for _ in range(120)])
    labels = kmeans_labels(np.ascontiguousarray(np.swapaxes(data, 1, 2)), 3, rng)

    def inertia(x, lab):
        return sum(((x[lab == j] - x[lab == j].mean(axis=0)) ** 2).sum() for j in np.unique(lab))

    ours = np.array([inertia(x, lab) for x, lab in zip(data, labels)])
    sk = np.array([KMeans(3, n_init=1, random_state=i).fit(x).inertia_ for i, x in enumerate(data)])
    assert stats.ks_2samp(ours, sk, method="asymp").pvalue > 1e-3
    assert abs(ours.mean() - sk.mean()) <= 4 * np.sqrt((ours.var() + sk.var()) / len(ours))


def test_kmeans_plusplus_seeding_matches_sklearn_in_law():
    """The potential (sum of squared distances to the nearest seed) of our greedy k-means++ seeds
    and of scikit-learn's kmeans_plusplus have one distribution over 400 seedings of one dataset
    (KS p > 1e-3); a non-greedy seeding (one candidate per seed) fails this test."""
    from sklearn.cluster import kmeans_plusplus as sk_seeds

    from sweep.families._gmmnd_kmeans import kmeans_plusplus

    rng = np.random.default_rng(12)
    x = _problem(rng, 200, 2, 4)[0]

    def potential(centres):
        return ((x[:, None, :] - centres[None]) ** 2).sum(axis=2).min(axis=1).sum()

    ours = kmeans_plusplus(np.ascontiguousarray(np.broadcast_to(x.T, (400, 2, 200))), 4, rng)
    ours = np.array([potential(c) for c in ours])
    sk = np.array([potential(sk_seeds(x, 4, random_state=s)[0]) for s in range(400)])
    assert stats.ks_2samp(ours, sk, method="asymp").pvalue > 1e-3


def test_two_cluster_fast_path_agrees_with_the_general_assignment():
    """The two-centre assignment (one linear form per sample) gives the labels of the general
    nearest-centre rule."""
    from sweep.families._gmmnd_kmeans import assign

    rng = np.random.default_rng(9)
    xt = rng.normal(size=(20, 3, 300))
    centers = rng.normal(size=(20, 2, 3))
    padded = np.concatenate([centers, np.full((20, 1, 3), 1e6)], axis=1)  # a third, unreachable centre
    np.testing.assert_array_equal(assign(xt, centers).astype(int), assign(xt, padded))


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.parametrize("init", ["kmeans", "random_from_data", "warm"])
def test_fitted_mixture_keeps_the_sample_moments(covariance_type, init):
    """After any M-step the mixture's total mean is the data's mean and its total covariance is the
    data's ML covariance plus reg_covar: the whole matrix (full), its diagonal (diag), its trace
    (spherical). An exact identity: under replace the fit's covariance follows the ML covariance of
    the previous fit's samples."""
    rng = np.random.default_rng(21)
    x = np.concatenate([rng.normal(-2.0, 1.0, (20, 50, 2)), rng.standard_t(3, (20, 50, 2)) * 2.0 + 1.0], axis=1)
    for k in (2, 3):
        start = "random_from_data" if init == "random_from_data" else "kmeans"
        if init == "warm":
            start = (np.full(k, 1.0 / k), np.linspace(-2.0, 2.0, k)[:, None] * np.ones(2), np.stack([np.eye(2)] * k))
        fit = em_fit(x, k, covariance_type=covariance_type, init=start, rng=np.random.default_rng(1), reg_covar=1e-4)
        mean, cov = mixture_moments(fit.weights, fit.means, fit.covariances)
        data_cov = np.einsum("bni,bnj->bij", x - x.mean(axis=1, keepdims=True), x - x.mean(axis=1, keepdims=True)) / 100
        np.testing.assert_allclose(mean, x.mean(axis=1), atol=1e-10)
        expect = data_cov + 1e-4 * np.eye(2)
        if covariance_type == "full":
            np.testing.assert_allclose(cov, expect, rtol=1e-9, atol=1e-12)
        elif covariance_type == "diag":
            np.testing.assert_allclose(
                np.diagonal(cov, axis1=1, axis2=2), np.diagonal(expect, axis1=1, axis2=2), rtol=1e-9
            )
        else:
            np.testing.assert_allclose(np.trace(cov, axis1=1, axis2=2), np.trace(expect, axis1=1, axis2=2), rtol=1e-9)


def test_single_component_is_the_sample_mean_and_covariance():
    """k = 1 gives the sample mean and the ML covariance plus reg_covar, converging at iteration 2
    as in scikit-learn."""
    x = np.random.default_rng(14).normal(3.0, 2.0, size=(4, 50, 3))
    fit = em_fit(x, 1, rng=np.random.default_rng(0))
    centred = x - x.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(fit.means[:, 0], x.mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(
        fit.covariances[:, 0], np.einsum("bni,bnj->bij", centred, centred) / 50 + 1e-6 * np.eye(3), rtol=1e-10
    )
    assert (fit.n_iter == _sklearn(x[0], 1).n_iter_).all()


def test_batch_chains_match_single_chain_fits_and_sorting():
    """In a batch every chain gets exactly the fit it gets alone, components come sorted by the
    first coordinate of their means, and permuting the initial components changes nothing."""
    rng = np.random.default_rng(10)
    problems = [_problem(rng, 300, 2, 3) for _ in range(5)]
    x = np.stack([p[0] for p in problems])
    init = tuple(np.stack([p[1][i] for p in problems]) for i in range(3))
    batch = em_fit(x, 3, init=init)
    assert (np.diff(batch.means[..., 0], axis=1) >= 0).all()
    perm = [2, 0, 1]
    permuted = em_fit(x, 3, init=tuple(a[:, perm] for a in init))
    for b in range(5):
        alone = em_fit(x[b : b + 1], 3, init=tuple(a[b : b + 1] for a in init))
        for name in ("weights", "means", "covariances", "n_iter", "lower_bound", "log_likelihood"):
            np.testing.assert_allclose(getattr(batch, name)[b], getattr(alone, name)[0], rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(getattr(permuted, name)[b], getattr(alone, name)[0], rtol=1e-9, atol=1e-12)


def test_max_iter_warm_start_and_n_init():
    """max_iter = 1 leaves chains unconverged at n_iter 1; a Mixture is a valid warm start and a
    converged fit restarted from itself converges at iteration 2; n_init = 3 keeps per chain the
    best lower bound of three n_init = 1 fits on the same stream."""
    rng = np.random.default_rng(11)
    x = np.stack([_problem(rng, 120, 2, 3)[0] for _ in range(20)])
    one = em_fit(x, 2, rng=rng, max_iter=1)
    assert (one.n_iter == 1).all() and not one.converged.any()
    fit = em_fit(x, 2, rng=rng)
    again = em_fit(x, 2, init=fit)
    assert (again.n_iter == 2).all() and again.converged.all()
    best = em_fit(x, 3, rng=np.random.default_rng(13), n_init=3)
    g = np.random.default_rng(13)
    runs = [em_fit(x, 3, rng=g) for _ in range(3)]
    np.testing.assert_allclose(best.lower_bound, np.max([r.lower_bound for r in runs], axis=0), rtol=1e-12)


def test_mean_log_likelihood_is_sklearn_score():
    """mean_log_likelihood equals scikit-learn's score for the same parameters."""
    rng = np.random.default_rng(15)
    x, (w, m, c) = _problem(rng, 300, 2, 2)
    sk = _sklearn(x, 2, weights_init=w, means_init=m, precisions_init=np.linalg.inv(c), max_iter=1)
    ll = mean_log_likelihood(x[None], sk.weights_, sk.means_, sk.covariances_)
    assert abs(ll[0] - sk.score(x)) < 1e-10


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: em_fit(np.zeros((2, 10, 2)), 0, rng=np.random.default_rng()), "'k'"),
        (lambda: em_fit(np.zeros((2, 10, 2)), 11, rng=np.random.default_rng()), "'k'"),
        (
            lambda: em_fit(np.zeros((2, 10, 2)), 2, covariance_type="tied", rng=np.random.default_rng()),
            "'covariance_type'",
        ),
        (lambda: em_fit(np.zeros((2, 10)), 2, rng=np.random.default_rng()), "'x'"),
        (
            lambda: em_fit(np.zeros((1, 10, 2)), 2, init=([0.5, 0.6], np.zeros((2, 2)), np.stack([np.eye(2)] * 2))),
            "'init weights'",
        ),
        (lambda: em_fit(np.zeros((1, 10, 2)), 2, init="kmeans++", rng=np.random.default_rng()), "'init'"),
        (
            lambda: sample_mixture(
                [0.5, 0.4], np.zeros((2, 2)), np.stack([np.eye(2)] * 2), 5, rng=np.random.default_rng()
            ),
            "'weights'",
        ),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(call, name):
    """Bad k, covariance type, data shape, weights or init raise a one-line ValueError naming the
    argument, the expectation and the value given."""
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert name in message and "must be" in message and "Got" in message and "\n" not in message


def test_a_seed_instead_of_a_generator_is_a_type_error():
    """A seed instead of a Generator raises TypeError (scikit-learn's sample pitfall)."""
    with pytest.raises(TypeError, match="'rng'"):
        em_fit(np.zeros((1, 10, 2)), 2, rng=0)
    assert isinstance(em_fit(np.arange(40.0).reshape(1, 20, 2), 2, rng=np.random.default_rng()), Mixture)


def test_fit_of_sampled_coordinate_rows_equals_fit_of_a_contiguous_copy():
    """sample_mixture returns a (B, n, d) view of coordinate rows, which em_fit reads without
    copying; the fit is bit for bit that of a C-contiguous copy, and the view is not written."""
    rng = np.random.default_rng(41)
    x = sample_mixture([0.4, 0.6], [[0.0, 0.0], [2.0, 1.0]], [np.eye(2), 0.5 * np.eye(2)], 300, rng=rng)
    x = np.concatenate([x] * 3)  # a contiguous batch of 3 ...
    rows = sample_mixture(
        np.full((3, 2), 0.5), np.zeros((3, 2, 2)), np.broadcast_to(np.eye(2), (3, 2, 2, 2)), 300, rng=rng
    )
    assert not rows.flags.c_contiguous  # ... and a view of coordinate rows
    before = rows.copy()
    for data in (x, rows):
        a = em_fit(data, 2, rng=np.random.default_rng(1))
        b = em_fit(np.ascontiguousarray(data), 2, rng=np.random.default_rng(1))
        for name in ("weights", "means", "covariances", "n_iter", "log_likelihood"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    np.testing.assert_array_equal(rows, before)


def test_the_kept_features_buffer_carries_nothing_between_fits():
    """Fits of the same shape reuse one features array: a fit between two identical ones (other
    data, in-place reordering, a final E-step) changes nothing in the second, and the returned
    mixtures hold no view of the buffer."""
    rng = np.random.default_rng(42)
    x, y = rng.normal(size=(2, 6, 150, 2))
    y[:, :75] += 3.0
    first = em_fit(x, 2, rng=np.random.default_rng(1), score=False)
    em_fit(y, 2, rng=np.random.default_rng(2), score=True)
    em_fit(y, 2, init=first, score=False)
    again = em_fit(x, 2, rng=np.random.default_rng(1), score=False)
    for name in ("weights", "means", "covariances", "n_iter", "lower_bound"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name), err_msg=name)
        assert not np.shares_memory(getattr(first, name), _gmmnd_em._features_buffer((6, 6, 150)))
