"""The compiled EM of gmm1d (kernel: numba) against the numpy kernel and scikit-learn, and the
family's kernel field."""

from __future__ import annotations

import numpy as np
import pytest

import sweep._numba
from sweep.families._em1d import em_fit
from sweep.families._gmm1d import sample_gmm
from sweep.spec import parse_spec
from tests.families.test_em1d import _problem, _sklearn_fit

# the kernel-field tests without numba run everywhere; the others need it
needs_numba = pytest.mark.skipif(not sweep._numba.available(), reason="numba is not installed")

# The numba fit's parameters against the numpy fit's (weights absolute, means and sds in units of
# the data's sd), and its log-likelihoods and lower bounds against scikit-learn's. Measured, on
# the 60 default datasets and the 500 of the slow parity suite: parameters at most 4.4e-15 and
# 2.8e-14 from numpy's; likelihoods at most 6.4e-15 and 2.2e-13, lower bounds 8.7e-15 and
# 8.9e-13 from scikit-learn's (the numpy kernel's: 2.2e-13 too). The kernels only round
# differently.
PARAM_TOL = 1e-12
SCORE_TOL = 1e-11
PARAMS = ("weights", "means", "variances")


def _batches(counts, seed):
    """The parity datasets of tests/families/test_em1d.py: (x, k, init) per size and k."""
    rng = np.random.default_rng(seed)
    for n, count in zip((100, 1000, 10000), counts):
        problems = [_problem(rng, n) for _ in range(count)]
        for k in (2, 3):
            batch = [p for p in problems if len(p[1][0]) == k]
            if batch:
                x = np.stack([p[0] for p in batch])
                yield x, k, tuple(np.stack([p[1][i] for p in batch]) for i in range(3))


def _gap(a, b, x, rows=slice(None)):
    """Largest parameter difference of two fits over ``rows``, in units of the data's sd."""
    sd = x[rows].std(axis=1)[:, None]
    return max(
        np.abs(a.weights[rows] - b.weights[rows]).max(),
        (np.abs(a.means[rows] - b.means[rows]) / sd).max(),
        (np.abs(np.sqrt(a.variances[rows]) - np.sqrt(b.variances[rows])) / sd).max(),
    )


def _check_parity(counts, seed):
    for x, k, init in _batches(counts, seed):
        for start, rng in ((init, None), ("kmeans", 5)):
            kw = dict(init=start) if rng is None else dict(rng=np.random.default_rng(rng))
            ref = em_fit(x, k, **kw)
            kw = dict(init=start) if rng is None else dict(rng=np.random.default_rng(rng))
            got = em_fit(x, k, kernel="numba", **kw)
            assert _gap(got, ref, x) <= PARAM_TOL
            np.testing.assert_array_equal(got.n_iter, ref.n_iter)
            np.testing.assert_array_equal(got.converged, ref.converged)
            np.testing.assert_allclose(got.lower_bound, ref.lower_bound, rtol=0, atol=SCORE_TOL)
            assert not np.array_equal(got.means, ref.means)  # it really is another kernel
        for b, xb in enumerate(x):
            w0, m0, v0 = (a[b] for a in init)
            sk = _sklearn_fit(xb, k, weights_init=w0, means_init=m0[:, None], precisions_init=(1.0 / v0)[:, None, None])
            got = em_fit(xb[None], k, init=(w0, m0, v0), kernel="numba")
            assert abs(got.log_likelihood[0] - sk.score(xb[:, None])) <= SCORE_TOL
            assert abs(got.lower_bound[0] - sk.lower_bound_) <= SCORE_TOL
            assert got.n_iter[0] == sk.n_iter_ and got.converged[0] == sk.converged_


@needs_numba
def test_numba_fit_matches_numpy_and_sklearn():
    """On the 60 parity datasets (N = 100, 1000, 10000; k = 2, 3), from the same initial
    parameters and from the same k-means start, the numba fit's parameters are the numpy fit's
    within PARAM_TOL with identical iteration counts and converged flags, and its likelihoods
    and iteration counts are scikit-learn's."""
    _check_parity((20, 20, 20), seed=1)


@needs_numba
@pytest.mark.slow
def test_numba_fit_matches_numpy_and_sklearn_500_datasets():
    """Same on the 500 datasets of the slow parity suite."""
    _check_parity((200, 200, 100), seed=2)


@needs_numba
def test_a_chains_fit_is_the_same_alone_and_in_a_block():
    """Each chain's numba fit (parameters, n_iter, lower bound, likelihood) is bit for bit the
    same alone and inside a block of other chains: calm ones, one with components 100 sd apart
    (the max-shifted path), and different k-means starts beside it."""
    rng = np.random.default_rng(8)
    calm = [_problem(rng, 700)[0] for _ in range(5)]
    far = np.concatenate([rng.normal(-50.0, 1.0, 500), rng.normal(50.0, 0.01, 200)])
    x = np.stack(calm[:2] + [far] + calm[2:])
    init = (np.full((6, 2), 0.5), np.tile([-1.0, 1.0], (6, 1)), np.ones((6, 2)))
    init[1][2], init[2][2] = [-50.0, 50.0], [1.0, 1e-4]
    block = em_fit(x, 2, init=init, kernel="numba")
    for b in range(len(x)):
        alone = em_fit(x[b : b + 1], 2, init=tuple(a[b : b + 1] for a in init), kernel="numba")
        for name in PARAMS + ("n_iter", "converged", "lower_bound", "log_likelihood"):
            assert getattr(alone, name)[0].tolist() == getattr(block, name)[b].tolist(), (b, name)
    w0, m0, v0 = (a[2] for a in init)
    sk = _sklearn_fit(far, 2, weights_init=w0, means_init=m0[:, None], precisions_init=(1.0 / v0)[:, None, None])
    # the narrow component's variance from expanded sums loses ~1e-9 (both kernels; test_em1d)
    assert abs(block.log_likelihood[2] - sk.score(far[:, None])) < 1e-9 and block.n_iter[2] == sk.n_iter_


@needs_numba
def test_diverged_chains_stop_as_in_the_numpy_kernel():
    """With reg_covar 0, 4000 chains of 10 samples: a chain's fit turns non-finite with the numba
    kernel exactly where it does with numpy's, except where numpy's variance is rounding noise
    (a component on one point: below 1e-13, where the sign of the rounding decides); n_init=3
    keeps the best finite fit as the numpy kernel does; live chains agree within PARAM_TOL."""
    b = 4000
    x = sample_gmm(
        np.full((b, 2), 0.5), np.tile([-2.0, 2.0], (b, 1)), np.ones((b, 2)), 10, rng=np.random.default_rng(0)
    )
    for n_init in (1, 3):
        fits = [
            em_fit(x, 2, init="kmeans", rng=np.random.default_rng(1), reg_covar=0.0, n_init=n_init, kernel=kernel)
            for kernel in ("numpy", "numba")
        ]
        live = [np.isfinite(f.variances).all(axis=1) & (f.variances > 0).all(axis=1) for f in fits]
        assert 20 < (~live[1]).sum() < 200
        differ = live[0] != live[1]
        assert differ.sum() <= 0.005 * b
        assert (fits[0].variances[differ].min(axis=1) < 1e-13).all()
        # fits with a component on one point (variance rounding noise), and with n_init the
        # choice among starts that such a fit took part in, can differ; nothing else
        clean = live[0] & live[1] & (fits[0].variances.min(axis=1) > 1e-13)
        assert (~clean & live[0]).sum() <= 0.005 * b
        np.testing.assert_array_equal(fits[0].n_iter[clean], fits[1].n_iter[clean])
        assert _gap(*fits, x, clean) <= PARAM_TOL


@needs_numba
def test_family_fit_keeps_nan_chains_nan_with_numba():
    """The gmm1d family with kernel numba leaves chains with NaN data or a NaN previous fit NaN,
    and fits the others as alone."""
    family = parse_spec(_spec(kernel="numba", init="previous", reg_covar=0.0)).family
    rng = np.random.default_rng(3)
    data = rng.normal(size=(3, 40)) + np.where(np.arange(40) < 20, -2.0, 2.0)
    data[1, 4] = np.nan
    previous = family.truth(3)
    previous.weights[2] = np.nan
    fit = family.fit(data, previous=previous, rng=rng)
    assert np.isnan(fit.means[1:]).all() and not fit.converged[1:].any()
    alone = family.fit(data[:1], previous=family.truth(1), rng=rng)
    assert fit.means[0].tolist() == alone.means[0].tolist()


def _spec(**family):
    return {
        "name": "em-kernel",
        "seed": 3,
        "generations": 4,
        "replicates": 6,
        "family": {"name": "gmm1d", "weights": [0.5, 0.5], "means": [-2.0, 2.0], "sigmas": [1.0, 1.0], **family},
        "grid": {"n": [60], "policy": ["replace"]},
    }


@needs_numba
@pytest.mark.parametrize(
    "fields, kernel",
    [({}, "numba"), ({"kernel": "auto"}, "numba"), ({"kernel": "numpy"}, "numpy"), ({"precision": "float32"}, "numpy")],
)
def test_kernel_field_resolves_and_is_written_only_when_numba(fields, kernel):
    """kernel defaults to auto, which is numba when installed (numpy with precision float32,
    which has no compiled path); to_raw writes it only when numba, so folders written before the
    field resume."""
    spec = parse_spec(_spec(**fields))
    assert spec.family_spec.kernel == kernel
    assert spec.to_raw()["family"].get("kernel") == ("numba" if kernel == "numba" else None)


def test_auto_is_numpy_without_numba(monkeypatch):
    """Where numba is missing, kernel auto resolves to numpy."""
    monkeypatch.setattr(sweep._numba, "available", lambda: False)
    assert parse_spec(_spec()).family_spec.kernel == "numpy"
    assert parse_spec(_spec(kernel="auto")).family_spec.kernel == "numpy"


@pytest.mark.parametrize(
    "fields, message",
    [
        (
            {"kernel": "numba"},
            "error: spec field 'family.kernel': expected numpy, or numba installed (pip install "
            "'collapse-sweep[fast]'), got numba, which is not installed\n",
        ),
        (
            {"kernel": "fortran"},
            "error: spec field 'family.kernel': expected one of auto, numpy, numba, got 'fortran'\n",
        ),
    ],
)
def test_bad_kernel_is_a_one_line_spec_error(cli, write_spec, tmp_path, monkeypatch, fields, message):
    """kernel numba without numba, or an unknown kernel, is a one-line spec error through
    `sweep run`: exit 2, nothing written."""
    monkeypatch.setattr(sweep._numba, "available", lambda: False)
    status, _, err = cli("run", write_spec(_spec(**fields)), "--out", tmp_path / "results")
    assert (status, err) == (2, message)
    assert not (tmp_path / "results").exists()


@needs_numba
def test_numba_with_float32_is_a_spec_error(cli, write_spec, tmp_path):
    """The compiled EM is float64 only: kernel numba with precision float32 is refused."""
    status, _, err = cli("run", write_spec(_spec(kernel="numba", precision="float32")), "--out", tmp_path / "r")
    assert status == 2 and err.count("\n") == 1 and "'family.kernel'" in err and "float32" in err
    assert not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match="'kernel'"):
        em_fit(np.zeros((1, 10)), 2, rng=np.random.default_rng(), kernel="numba", precision="float32")
    with pytest.raises(ValueError, match="'kernel'"):
        em_fit(np.zeros((1, 10)), 2, rng=np.random.default_rng(), kernel="c")


@needs_numba
def test_compiled_lloyd_is_numpys_bit_for_bit(monkeypatch):
    """The compiled Lloyd iterations return numpy's centres and cell boundaries bit for bit
    (N = 10 to 10000, k = 1 to 5), so both kernels start EM from the same k-means fit; chains
    that meet an empty cell (data rounded to even integers: fewer distinct values than k, so
    equal centres) go to the numpy code, and only those."""
    from sweep.families import _kmeans1d_numba
    from sweep.families._kmeans1d import KMEANS_TOL, SortedRows, kmeans_plusplus, lloyd

    handed = []

    def numpy_lloyd(data, centers, tol, max_iter):
        handed.append(len(centers))
        return lloyd(data, centers, tol, max_iter)

    monkeypatch.setattr(_kmeans1d_numba, "lloyd_numpy", numpy_lloyd)
    for n, b, rounded in ((10, 400, True), (100, 300, True), (100, 300, False), (1000, 60, False), (10000, 8, False)):
        for k in (1, 2, 3, 5):
            rng = np.random.default_rng(n + k)
            x = sample_gmm(np.full((b, 2), 0.5), np.tile([-2.0, 2.0], (b, 1)), np.ones((b, 2)), n, rng=rng)
            x = np.sort(2.0 * np.round(x / 2.0) if rounded else x, axis=1)
            xc = x - x.mean(axis=1, keepdims=True)
            data = SortedRows(xc, xc * xc)
            start = kmeans_plusplus(data, k, rng)
            tol = KMEANS_TOL * xc.var(axis=1)
            ref, got = lloyd(data, start, tol), _kmeans1d_numba.lloyd(data, start, tol)
            assert ref[0].tolist() == got[0].tolist() and ref[1].tolist() == got[1].tolist(), (n, k)
    assert handed and max(handed) < 400  # some chains, not whole batches, took the numpy path


@needs_numba
def test_compiled_kmeans_plusplus_is_numpys_bit_for_bit():
    """The compiled k-means++ seeding draws the same random numbers and returns numpy's centres
    bit for bit, for N = 2 to 512 (numpy's explicit D**2 code, whose pairwise sums change shape
    at 8 and 128 values) and N = 513 to 20,000 (its prefix-sum code: blocks of 16 to 64, a short
    last block), k = 1 to 10 (the trial potentials' sum turns pairwise at 8 terms); and leaves
    the generator where numpy's leaves it."""
    from sweep.families import _kmeans1d_numba
    from sweep.families._kmeans1d import SortedRows, kmeans_plusplus

    for n in (2, 7, 8, 100, 129, 300, 512, 513, 1000, 4097, 20000):
        for k in (1, 2, 3, 8, 10):
            if k > n:
                continue
            b = 200 if n <= 1000 else 24
            x = sample_gmm([[0.5, 0.5]] * b, [[-2.0, 2.0]] * b, [[1.0, 1.0]] * b, n, rng=np.random.default_rng(n + k))
            xc = np.sort(x, axis=1) - x.mean(axis=1, keepdims=True)
            data = SortedRows(xc, xc * xc)
            ref_rng, rng = np.random.default_rng(k), np.random.default_rng(k)
            ref, got = kmeans_plusplus(data, k, ref_rng), _kmeans1d_numba.kmeans_plusplus(data, k, rng)
            assert ref.tolist() == got.tolist(), (n, k)
            assert ref_rng.random() == rng.random()


@needs_numba
def test_compiled_sorted_rows_are_numpys_bit_for_bit():
    """The compiled centring pass gives SortedRows' centred rows and block prefix sums bit for
    bit (np.add.reduceat's segment sums are the first value plus numpy's pairwise sum of the
    rest, which a plain pairwise or sequential sum misses in the last bits), for N from 2 to
    33,333 (blocks of 8 to 64, a short last block, pairwise sums of 1 to 63 values)."""
    from sweep.families._kmeans1d import SortedRows
    from sweep.families._kmeans1d_numba import sorted_rows

    for n in (2, 3, 7, 8, 9, 17, 63, 64, 65, 129, 511, 513, 1000, 4097, 10000, 33333):
        x = np.sort(np.random.default_rng(n).standard_normal((7, n)) * 3.0 + 1.0, axis=1)
        shift = x.mean(axis=1, keepdims=True)
        ref, got = SortedRows(x - shift, (x - shift) ** 2), sorted_rows(x.copy(), shift)
        assert (ref.BLOCK, ref.n) == (got.BLOCK, got.n)
        for name in ("xs", "c1", "c2"):
            assert getattr(ref, name).view(np.int64).tolist() == getattr(got, name).view(np.int64).tolist(), (n, name)


@needs_numba
def test_compiled_cell_sums_are_numpys_bit_for_bit():
    """The compiled cell sums (count, sum, sum of squares) that seed EM after k-means are
    SortedRows.cells' bit for bit, boundaries on and off the block starts, empty cells and the
    row's ends included (N = 9 to 10,000)."""
    from sweep.families._kmeans1d import SortedRows
    from sweep.families._kmeans1d_numba import cells

    for n in (9, 100, 1000, 4097, 10000):
        rng = np.random.default_rng(n)
        x = np.sort(rng.standard_normal((20, n)), axis=1)
        data = SortedRows(x, x * x)
        inner = np.sort(rng.integers(0, n + 1, size=(20, 4)), axis=1)
        inner[0] = [0, data.BLOCK, data.BLOCK, n]  # an empty first cell, a block start, an empty one
        bounds = np.concatenate([np.zeros((20, 1), int), inner, np.full((20, 1), n)], axis=1)
        ref, got = data.cells(bounds, np.arange(20)), cells(data, bounds)
        for a, b in zip(ref, got):
            assert a.view(np.int64).tolist() == b.view(np.int64).tolist(), n
