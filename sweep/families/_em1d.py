"""Batched EM for 1-D Gaussian mixtures, reproducing scikit-learn's GaussianMixture.

For every chain of a (B, N) batch, :func:`em_fit` runs the algorithm of
``sklearn.mixture.GaussianMixture(k, covariance_type="full", tol, reg_covar, max_iter,
n_init, init_params)`` on that chain's N samples: same objective (mean log-likelihood per
sample), E-step then M-step, ``reg_covar`` added to every variance, convergence when the
change of the lower bound is below ``tol``, ``n_iter`` counted the same way, best of
``n_init`` initialisations by lower bound, and a final E-step with the returned parameters.
Converged chains stop being updated; the working set of chains is compacted as they finish.

The kernels are in :mod:`sweep.families._estep1d` (E/M-steps) and
:mod:`sweep.families._kmeans1d` (the k-means initialisation); sampling and metrics are in
:mod:`sweep.families._gmm1d` and re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sweep.families._checks import as_batch, as_float, as_generator, as_int, as_mixture, fail
from sweep.families._em1d_numba import fit_block, loglik_block
from sweep.families._estep1d import NK_EPS, block_rows, estep, mstep
from sweep.families._gmm1d import kl_true_fitted, mixture_mean_var, sample_gmm, tail_mass, w2_to_mixture
from sweep.families._kmeans1d import KMEANS_TOL, SortedRows, kmeans_plusplus, lloyd
from sweep.families._kmeans1d_numba import cells as cells_numba
from sweep.families._kmeans1d_numba import kmeans_plusplus as kmeans_plusplus_numba
from sweep.families._kmeans1d_numba import lloyd as lloyd_numba
from sweep.families._kmeans1d_numba import sorted_rows as sorted_rows_numba

__all__ = [
    "EMResult",
    "em_fit",
    "mean_log_likelihood",
    "sample_gmm",
    "w2_to_mixture",
    "kl_true_fitted",
    "tail_mass",
    "mixture_mean_var",
]

INITS = ("kmeans", "random_from_data")


@dataclass(frozen=True)
class EMResult:
    """Fitted mixtures of a batch of B chains; components sorted by mean within each chain.

    Attributes
    ----------
    weights, means, variances : ndarray (B, k)
    n_iter : ndarray (B,) of int
        EM iterations of the returned initialisation (scikit-learn's ``n_iter_``).
    converged : ndarray (B,) of bool
        Whether it stopped on ``abs(change) < tol`` (False after ``max_iter`` iterations, or
        when the fit became non-finite).
    lower_bound : ndarray (B,)
        scikit-learn's ``lower_bound_``: mean log-likelihood per sample at the last E-step,
        i.e. of the parameters *before* the last M-step.
    log_likelihood : ndarray (B,)
        Mean log-likelihood per sample of the returned parameters, from the final E-step
        (scikit-learn's ``score(X)`` after ``fit(X)``).
    """

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray
    lower_bound: np.ndarray
    log_likelihood: np.ndarray


PRECISIONS = ("float64", "float32")
#: The EM loop's implementations: numpy (always there) or one compiled call per block
#: (:mod:`sweep.families._em1d_numba`, float64 only).
KERNELS = ("numpy", "numba")


class _Work:
    """Centred data of all chains with the per-chain sums the E-step needs, and its buffers
    (and, in single precision, the data in float32 and float32 buffers)."""

    def __init__(self, xc: np.ndarray, k: int, *, x2=None, sums=None, is_sorted=False, precision="float64"):
        self.xc = xc
        self.x2 = xc * xc if x2 is None else x2
        self.sx, self.sxx = sums if sums is not None else (xc.sum(axis=1), self.x2.sum(axis=1))
        self.lo, self.hi = (xc[:, 0], xc[:, -1]) if is_sorted else (xc.min(1), xc.max(1))
        rb = min(block_rows(xc.shape[1]), xc.shape[0])
        self.ebuf = np.empty((max(k - 1, 1), rb, xc.shape[1]))
        self.sbuf = np.empty((rb, xc.shape[1]))
        self.x32 = None
        if precision == "float32":
            self.x32 = xc.astype(np.float32)
            self.ebuf32 = np.empty(self.ebuf.shape, dtype=np.float32)
            self.sbuf32 = np.empty(self.sbuf.shape, dtype=np.float32)

    def estep(self, rows, x, x2, w, m, v, *, stats, x32=None):
        """E-step of the chains ``rows`` on their data x, x2 (and x32 in single precision:
        ``self.x32`` when x is ``self.xc``)."""
        single = None
        if self.x32 is not None:
            single = (self.x32 if x is self.xc else x32, self.ebuf32, self.sbuf32)
        return estep(
            x,
            x2,
            self.sx[rows],
            self.sxx[rows],
            self.lo[rows],
            self.hi[rows],
            self.ebuf,
            self.sbuf,
            w,
            m,
            v,
            stats=stats,
            single=single,
        )


def _run(work, w, m, v, tol, max_iter, reg_covar):
    """EM from initial (B, k) parameters; returns params, n_iter, converged, lower_bound."""
    b = w.shape[0]
    w, m, v = w.copy(), m.copy(), v.copy()
    n_iter = np.zeros(b, dtype=np.int64)
    converged = np.zeros(b, dtype=bool)
    lower = np.full(b, -np.inf)
    rows = np.arange(b)
    x, x2, x32 = work.xc, work.x2, work.x32  # replaced by compacted copies once chains finish
    if x32 is not None:
        x2 = None  # float32 E-steps do without x**2
    prev = np.full(b, -np.inf)
    for it in range(1, max_iter + 1):
        ll, st = work.estep(rows, x, x2, w[rows], m[rows], v[rows], stats=True, x32=x32)
        nw, nm, nv = mstep(*st, reg_covar)
        w[rows], m[rows], v[rows] = nw, nm, nv
        n_iter[rows] = it
        lower[rows] = ll
        with np.errstate(invalid="ignore"):
            done = np.abs(ll - prev) < tol
        converged[rows[done]] = True
        # a chain whose fit turned non-finite (only possible with reg_covar=0) stops too
        stop = done | ~np.isfinite(ll) | ~np.isfinite(nv).all(axis=1)
        if stop.all():
            break
        if stop.any():
            keep = ~stop
            x, rows, prev = x[keep], rows[keep], ll[keep]
            x2 = None if x2 is None else x2[keep]
            x32 = None if x32 is None else x32[keep]
        else:
            prev = ll
    return w, m, v, n_iter, converged, lower


def _init_kmeans(data, k, reg_covar, rng, kernel="numpy"):
    # KMeans' tolerance is tol * var(X); the variance comes from the prefix sums
    mean = data.c1[:, -1] / data.n
    tol = KMEANS_TOL * np.maximum(data.c2[:, -1] / data.n - mean * mean, 0.0)
    # the compiled k-means returns numpy's centres and boundaries bit for bit, from the same
    # random numbers: the same start for both kernels
    if kernel == "numba":
        _, bounds = lloyd_numba(data, kmeans_plusplus_numba(data, k, rng), tol)
        n, s1, s2 = cells_numba(data, bounds)
    else:
        _, bounds = lloyd(data, kmeans_plusplus(data, k, rng), tol)
        n, s1, s2 = data.cells(bounds, np.arange(data.xs.shape[0]))
    return _from_hard_labels(n, s1, s2, data.n, reg_covar)


def _from_hard_labels(n, s1, s2, n_samples, reg_covar):
    # GaussianMixture._initialize: M-step on one-hot responsibilities, weights = nk / N
    # (not renormalised: with "random_from_data" they sum to k / N, as in scikit-learn).
    _, means, var = mstep(n, s1, s2, reg_covar)
    return (n + NK_EPS) / n_samples, means, var


def _init_random_from_data(xc, k, reg_covar, rng):
    # Floyd's algorithm: k distinct indices per chain, uniformly, vectorised over chains.
    b, n = xc.shape
    picked = np.empty((b, k), dtype=np.intp)
    for j in range(k):
        t = rng.integers(0, n - k + j + 1, size=b)
        seen = (picked[:, :j] == t[:, None]).any(axis=1)
        picked[:, j] = np.where(seen, n - k + j, t)
    pts = np.take_along_axis(xc, picked, axis=1)
    return _from_hard_labels(np.ones((b, k)), pts, pts * pts, n, reg_covar)


def _sort_by_mean(*arrays_and_means):
    *arrays, means = arrays_and_means
    order = np.argsort(means, axis=1, kind="stable")
    return [np.take_along_axis(a, order, axis=1) for a in arrays + [means]]


def em_fit(
    x,
    k,
    *,
    init="kmeans",
    rng=None,
    tol=1e-3,
    max_iter=100,
    reg_covar=1e-6,
    n_init=1,
    score=True,
    precision="float64",
    kernel="numpy",
) -> EMResult:
    """Fit a k-component 1-D Gaussian mixture to every chain of a batch by EM.

    Parameters
    ----------
    x : array_like (B, N)
        B independent chains of N samples each.
    k : int
        Number of components, 1 <= k <= N.
    init : {"kmeans", "random_from_data"} or tuple (weights, means, variances)
        scikit-learn's ``init_params``, or explicit initial parameters, each (B, k) or (k,)
        (a warm start from the previous generation's fit, e.g. an :class:`EMResult`'s arrays;
        an ``EMResult`` itself is accepted too). Explicit parameters are used as they are,
        without ``reg_covar``, as scikit-learn does with ``weights_init``, ``means_init``,
        ``precisions_init = 1 / variances``.
    rng : numpy.random.Generator
        Randomness of the "kmeans" and "random_from_data" initialisations (unused otherwise).
    tol, max_iter, reg_covar, n_init
        As in scikit-learn. With explicit initial parameters every initialisation would be the
        same, so the fit runs once whatever ``n_init``.
    score : bool
        Whether to compute ``log_likelihood`` (one more E-step, ~5% of a fit at N = 100); NaN
        when False.
    precision : {"float64", "float32"}
        Arithmetic of the E-step's per-sample work. "float64" reproduces scikit-learn to
        rounding; "float32" (responsibilities and log terms in float32, sufficient statistics
        accumulated in float64, chains where float32 is unsafe in float64: see
        :mod:`sweep.families._estep1d`) is about twice as fast at large N, and its fitted
        parameters differ from float64's by a few 1e-7 of the data's scale (typically; tested).
    kernel : {"numpy", "numba"}
        The EM loop (E-steps, M-steps, stopping): batched numpy, or each chain's whole loop in
        one compiled call per batch (numba installed; float64 only). Either starts from the same
        initial parameters, bit for bit: the same random numbers, and a k-means fit compiled
        (:mod:`sweep.families._kmeans1d_numba`) to numpy's bits.

    Returns
    -------
    EMResult
    """
    func = "em_fit"
    x = as_batch(x, func, min_cols=2)
    b, n = x.shape
    k = as_int(k, func, "k", 1, n, " (N, the samples per chain)")
    tol = as_float(tol, func, "tol", nonneg=True)
    reg_covar = as_float(reg_covar, func, "reg_covar", nonneg=True)
    max_iter = as_int(max_iter, func, "max_iter", 0)
    n_init = as_int(n_init, func, "n_init", 1)
    if precision not in PRECISIONS:
        raise fail(func, "precision", f"a str among {set(PRECISIONS)}", precision)
    if kernel not in KERNELS:
        raise fail(func, "kernel", f"a str among {set(KERNELS)}", kernel)
    if kernel == "numba" and precision != "float64":
        raise fail(func, "kernel", "'numpy' with precision='float32' (the compiled kernel is float64)", kernel)
    if isinstance(init, EMResult):
        init = (init.weights, init.means, init.variances)
    if isinstance(init, str):
        if init not in INITS:
            raise fail(func, "init", f"a str among {set(INITS)} or (weights, means, variances)", init)
        rng = as_generator(rng, func)
    elif isinstance(init, (tuple, list)) and len(init) == 3:
        w0, m0, v0 = as_mixture(*init, func, batch=b, prefix="init ")
        if w0.shape != (b, k):
            raise fail(func, "init", f"parameters of shape ({b}, {k}) or ({k},)", w0.shape)
    else:
        raise fail(
            func, "init", f"a str among {set(INITS)} or (weights, means, variances)", type(init).__name__, TypeError
        )
    shift = x.mean(axis=1, keepdims=True)
    # EM is translation-equivariant and does not depend on the order of the samples: centring
    # keeps the expanded quadratics accurate, and the k-means initialisation wants sorted rows
    sort = init == "kmeans" if isinstance(init, str) else False
    if sort:
        xc = np.sort(x, axis=1)
        if kernel == "numba":
            # centred in place, with the k-means prefix sums, in one compiled pass (numpy's bits)
            data, x2 = sorted_rows_numba(xc, shift), None
        else:
            xc -= shift
            x2 = xc * xc  # feeds the prefix sums and the numpy kernel's E-step
            data = SortedRows(xc, x2)
        starts = [lambda: _init_kmeans(data, k, reg_covar, rng, kernel)] * n_init
        sums, is_sorted = (data.c1[:, -1], data.c2[:, -1]), True
    else:
        xc = x - shift
        x2 = None if kernel == "numba" else xc * xc  # the compiled E-step does without x**2
        if isinstance(init, str):
            starts = [lambda: _init_random_from_data(xc, k, reg_covar, rng)] * n_init
        else:  # every explicit initialisation would be the same
            starts = [lambda: (w0, m0 - shift, v0)]
        sums, is_sorted = None, False
    # the numpy kernel's data, sums and buffers (the compiled kernel reads xc alone)
    work = None if kernel == "numba" else _Work(xc, k, x2=x2, sums=sums, is_sorted=is_sorted, precision=precision)
    best = None
    for start in starts:
        w0, m0, v0 = start()
        if max_iter == 0:
            res = (w0, m0, v0, np.zeros(b, np.int64), np.zeros(b, bool), np.full(b, -np.inf))
        elif kernel == "numba":
            res = fit_block(xc, w0, m0, v0, tol=tol, max_iter=max_iter, reg_covar=reg_covar)
        else:
            res = _run(work, w0, m0, v0, tol, max_iter, reg_covar)
        if best is None:
            best = list(res)
        else:  # scikit-learn keeps a later init only if its lower bound is strictly larger;
            # and a finite fit replaces one that turned non-finite (NaN compares False)
            better = (res[5] > best[5]) | (best[5] == -np.inf) | (np.isnan(best[5]) & ~np.isnan(res[5]))
            for dst, src in zip(best, res):
                dst[better] = src[better]
    w, m, v, n_iter, converged, lower = best
    if not score:
        final = np.full(b, np.nan)
    elif kernel == "numba":
        final = loglik_block(xc, w, m, v)
    else:
        final = work.estep(np.arange(b), xc, None, w, m, v, stats=False)[0]
    w, v, m = _sort_by_mean(w, v, m)
    return EMResult(w, m + shift, v, n_iter, converged, lower, final)


def mean_log_likelihood(x, weights, means, variances) -> np.ndarray:
    """Mean log-likelihood per sample of each chain's data under its mixture, shape (B,).

    Equal to scikit-learn's ``GaussianMixture.score`` for one chain.
    """
    func = "mean_log_likelihood"
    x = as_batch(x, func)
    w, m, v = as_mixture(weights, means, variances, func, batch=x.shape[0])
    shift = x.mean(axis=1, keepdims=True)
    work = _Work(x - shift, w.shape[1])
    ll, _ = work.estep(np.arange(x.shape[0]), work.xc, None, w, m - shift, v, stats=False)
    return ll
