"""Batched EM for d-dimensional Gaussian mixtures, reproducing scikit-learn's GaussianMixture.

For every chain of a (B, N, d) batch, :func:`em_fit` runs the algorithm of
``sklearn.mixture.GaussianMixture(k, covariance_type, tol, reg_covar, max_iter, n_init,
init_params)`` for ``covariance_type`` in full, diag and spherical: the same objective (mean
log-likelihood per sample), E-step then M-step, ``reg_covar`` added to every variance, 10 * eps
added to every component's responsibility sum, convergence when the change of the lower bound is
below ``tol``, ``n_iter`` counted the same way, the best of ``n_init`` initialisations by lower
bound, and a final E-step with the returned parameters (``score``). Converged chains stop being
updated; the working set is compacted as they finish.

The kernels (features, E-step, M-step) are in :mod:`sweep.families._gmmnd_estep`, the k-means
initialisation in :mod:`sweep.families._gmmnd_kmeans`.
"""

from __future__ import annotations

import threading

import numpy as np

from sweep.families._checks import as_float, as_generator, as_int, fail
from sweep.families._gmmnd import COVARIANCE_TYPES, Mixture, as_mixture_nd, as_points, restrict, sort_components
from sweep.families._gmmnd_estep import (
    LOG_2PI,
    NK_EPS,
    centred_features,
    coefficients,
    e_step,
    from_stats,
    n_features,
    square_norm,
)
from sweep.families._gmmnd_kmeans import kmeans_labels
from sweep.families._gmmnd_rows import WorkingRows, swap_out

__all__ = ["INITS", "LOG_2PI", "NK_EPS", "em_fit", "mean_log_likelihood", "n_features"]

INITS = ("kmeans", "random_from_data")

_KEPT = threading.local()


def _features_buffer(shape: tuple[int, ...]) -> np.ndarray:
    """A float64 array for the features of :func:`em_fit`, kept for this thread's next fit of
    the same shape. Every fit rewrites it whole and nothing reads it after the fit; a fresh
    array of several MB costs a page fault per 4 kB each time the allocator has returned the
    last one to the system (measured: a quarter of a fit's time at N = 1000, B = 128)."""
    buf = getattr(_KEPT, "phi", None)
    if buf is None or buf.shape != shape:
        buf = _KEPT.phi = np.empty(shape)
    return buf


def _run(phi, sums, w, m, c, d, covariance_type, tol, max_iter, reg_covar, owned=False):
    """EM from initial parameters; returns params, n_iter, converged and lower bounds.

    The live chains' parameters are carried in working order; a chain's results are written
    out when it stops, and it leaves the working features at once (:mod:`._gmmnd_rows`):
    ``owned``: whether ``phi`` may be reordered in place (no one reads it afterwards), which
    saves gathering the live rows into a copy at the first departure.
    """
    b = w.shape[0]
    w, m, c = w.copy(), m.copy(), c.copy()
    n_iter = np.zeros(b, dtype=np.int64)
    converged = np.zeros(b, dtype=bool)
    lower = np.full(b, -np.inf)
    rows, prev, work = np.arange(b), np.full(b, -np.inf), WorkingRows(phi, owned=owned)
    wl, ml, cl = w, m, c
    for it in range(1, max_iter + 1):
        theta, ok = coefficients(wl, ml, cl, covariance_type)
        ll, s = e_step(work.live, theta, stats=True, sums=sums)
        nk, ml, cl = from_stats(s, d, reg_covar, covariance_type)
        wl = nk / nk.sum(axis=1, keepdims=True)
        with np.errstate(invalid="ignore"):
            done = np.abs(ll - prev) < tol
        # a chain whose fit turned singular or non-finite (only with reg_covar = 0) stops too
        bad = ~(ok & np.isfinite(ll))
        stop = done | bad | ~np.isfinite(cl).all(axis=(1, 2, 3))
        if it == max_iter:
            stop[:] = True
        if not stop.any():
            prev = ll
            continue
        out = rows[stop]
        w[out], m[out], c[out], n_iter[out] = wl[stop], ml[stop], cl[stop], it
        lower[out], converged[out] = np.where(ok, ll, np.nan)[stop], (done & ok)[stop]
        if bad.any():
            w[rows[bad]], m[rows[bad]], c[rows[bad]] = np.nan, np.nan, np.nan
        if stop.all():
            break
        order, holes, donors = swap_out(stop)
        work.drop(order, holes, donors)
        rows, prev, wl, ml, cl, sums = rows[order], ll[order], wl[order], ml[order], cl[order], sums[order]
    return w, m, c, n_iter, converged, lower


def _from_labels(phi, labels, k, d, n, reg_covar, covariance_type, sums):
    # GaussianMixture._initialize: M-step on one-hot responsibilities, weights = nk / N (not
    # renormalised: with "random_from_data" they sum to k / N, as in scikit-learn); sums: phi's
    if k == 2:  # boolean labels: cluster 1's feature sums, and cluster 0's as the rest
        one = np.matmul(phi, labels.astype(float)[:, :, None])[:, :, 0]
        stats = np.stack([sums - one, one], axis=1)
    else:
        onehot = (labels[:, None, :] == np.arange(k)[None, :, None]).astype(float)
        stats = np.matmul(onehot, np.swapaxes(phi, 1, 2))
    nk, means, cov = from_stats(stats, d, reg_covar, covariance_type)
    return nk / n, means, cov


def _random_from_data(xt, k, d, reg_covar, covariance_type, rng):
    # Floyd's algorithm: k distinct indices per chain, uniformly, vectorised over chains
    b, _, n = xt.shape
    picked = np.empty((b, k), dtype=np.intp)
    for j in range(k):
        t = rng.integers(0, n - k + j + 1, size=b)
        seen = (picked[:, :j] == t[:, None]).any(axis=1)
        picked[:, j] = np.where(seen, n - k + j, t)
    pts = np.swapaxes(np.take_along_axis(xt, picked[:, None, :], axis=2), 1, 2)  # (B, k, d)
    nk = np.full((b, k), 1.0 + NK_EPS)
    means = pts / nk[..., None]
    if covariance_type == "full":
        var = np.zeros((b, k, d, d)) + reg_covar * np.eye(d)
    else:  # diag/spherical: avg x**2 - mean**2 + reg, ~1e-15 from reg as in scikit-learn
        var = restrict(
            (pts * pts / nk[..., None] - means * means + reg_covar)[..., :, None] * np.eye(d), covariance_type
        )
    return nk / n, means, var


def em_fit(
    x,
    k,
    *,
    covariance_type="full",
    init="kmeans",
    rng=None,
    tol=1e-3,
    max_iter=100,
    reg_covar=1e-6,
    n_init=1,
    score=True,
) -> Mixture:
    """Fit a k-component Gaussian mixture to every chain of a batch by EM.

    Parameters
    ----------
    x : array_like (B, N, d)
        B independent chains of N samples in d dimensions.
    k : int
        Number of components, 1 <= k <= N.
    covariance_type : {"full", "diag", "spherical"}
        As in scikit-learn; the returned covariances are full matrices in every case.
    init : {"kmeans", "random_from_data"} or tuple (weights, means, covariances)
        scikit-learn's ``init_params``, or explicit initial parameters (B, k[, d[, d]]) or without
        the batch axis (a warm start, e.g. a :class:`~sweep.families._gmmnd.Mixture`'s arrays; a
        ``Mixture`` is accepted too), used as they are (without ``reg_covar``, reduced to the
        covariance type), as scikit-learn does with ``weights_init``, ``means_init`` and
        ``precisions_init`` = their inverses.
    rng : numpy.random.Generator
        Randomness of the "kmeans" and "random_from_data" initialisations (unused otherwise).
    tol, max_iter, reg_covar, n_init
        As in scikit-learn. Explicit initial parameters run once whatever ``n_init``.
    score : bool
        Whether to compute ``log_likelihood`` (one more E-step); NaN when False.

    Returns
    -------
    Mixture
        Components sorted by the first coordinate of their means.
    """
    func = "em_fit"
    x = as_points(x, func, min_points=2, contiguous=False)  # centred_features reads any layout
    b, n, d = x.shape
    k = as_int(k, func, "k", 1, n, " (N, the samples per chain)")
    if covariance_type not in COVARIANCE_TYPES:
        raise fail(func, "covariance_type", f"a str among {set(COVARIANCE_TYPES)}", covariance_type)
    tol = as_float(tol, func, "tol", nonneg=True)
    reg_covar = as_float(reg_covar, func, "reg_covar", nonneg=True)
    max_iter = as_int(max_iter, func, "max_iter", 0)
    n_init = as_int(n_init, func, "n_init", 1)
    if isinstance(init, Mixture):
        init = (init.weights, init.means, init.covariances)
    phi, shift = centred_features(x, covariance_type, out=_features_buffer((b, n_features(d, covariance_type), n)))
    xt, shift = phi[:, 1 : 1 + d], shift[:, None, :]  # the centred samples (B, d, N)
    # feature sums: the E-step's (two components), KMeans' tolerance, the initial M-step's
    sums = phi.sum(axis=2)
    if isinstance(init, str):
        if init not in INITS:
            raise fail(func, "init", f"a str among {set(INITS)} or (weights, means, covariances)", init)
        rng = as_generator(rng, func)
        if init == "kmeans":
            # the features begin with the row of ones and the coordinates that Lloyd's
            # two-centre step uses
            # (a row-wise sum, not a matrix-vector product, whose order may depend on the row's
            # place in the batch: a chain's values must not depend on its block's width)
            var = (sums[:, 1 + d :] * square_norm(d, covariance_type)).sum(axis=1) / (n * d)
            labels = lambda: kmeans_labels(xt, k, rng, xt1=phi[:, : 1 + d], variance=var)
            starts = [lambda: _from_labels(phi, labels(), k, d, n, reg_covar, covariance_type, sums)]
        else:
            starts = [lambda: _random_from_data(xt, k, d, reg_covar, covariance_type, rng)]
        starts *= n_init
    elif isinstance(init, (tuple, list)) and len(init) == 3:
        w0, m0, c0 = as_mixture_nd(*init, func, prefix="init ")
        if m0.shape[1:] != (k, d) or w0.shape[0] not in (1, b):
            raise fail(
                func,
                "init",
                f"parameters of {k} components in {d} dimensions for 1 or {b} chains",
                f"shapes {w0.shape}, {m0.shape}",
            )
        starts = [
            lambda: tuple(
                np.broadcast_to(a, (b,) + a.shape[1:]) for a in (w0, m0 - shift, restrict(c0, covariance_type))
            )
        ]
    else:
        raise fail(
            func, "init", f"a str among {set(INITS)} or (weights, means, covariances)", type(init).__name__, TypeError
        )
    best = None
    for i, start in enumerate(starts):
        w0, m0, c0 = start()
        if max_iter == 0:
            res = (w0.copy(), m0.copy(), c0.copy(), np.zeros(b, np.int64), np.zeros(b, bool), np.full(b, -np.inf))
        else:
            # the features are read after the last start only by the final E-step (score)
            last = i == len(starts) - 1 and not score
            res = _run(phi, sums, w0, m0, c0, d, covariance_type, tol, max_iter, reg_covar, owned=last)
        if best is None:
            best = list(res)
        else:  # scikit-learn keeps a later init only if its lower bound is strictly larger
            better = (res[5] > best[5]) | (best[5] == -np.inf)
            for dst, src in zip(best, res):
                dst[better] = src[better]
    w, m, c, n_iter, converged, lower = best
    if score:
        theta, ok = coefficients(w, m, c, covariance_type)
        final = np.where(ok, e_step(phi, theta, stats=False, sums=sums)[0], np.nan)
    else:
        final = np.full(b, np.nan)
    w, m, c = sort_components(w, m + shift, c)
    return Mixture(w, m, c, n_iter, converged, lower, final)


def mean_log_likelihood(x, weights, means, covariances, *, covariance_type="full") -> np.ndarray:
    """Mean log-likelihood per sample (B,) of each chain's data under its mixture
    (scikit-learn's ``GaussianMixture.score``)."""
    func = "mean_log_likelihood"
    x = as_points(x, func, contiguous=False)
    w, m, c = as_mixture_nd(weights, means, covariances, func)
    phi, shift = centred_features(x, covariance_type)
    theta, ok = coefficients(
        np.broadcast_to(w, (x.shape[0],) + w.shape[1:]),
        m - shift[:, None, :],
        np.broadcast_to(c, (x.shape[0],) + c.shape[1:]),
        covariance_type,
    )
    return np.where(ok, e_step(phi, theta, stats=False)[0], np.nan)
