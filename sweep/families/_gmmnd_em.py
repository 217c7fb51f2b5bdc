"""Batched EM for d-dimensional Gaussian mixtures, reproducing scikit-learn's GaussianMixture.

For every chain of a (B, N, d) batch, :func:`em_fit` runs the algorithm of
``sklearn.mixture.GaussianMixture(k, covariance_type, tol, reg_covar, max_iter, n_init,
init_params)`` for ``covariance_type`` in full, diag and spherical: the same objective (mean
log-likelihood per sample), E-step then M-step, ``reg_covar`` added to every variance, 10 * eps
added to every component's responsibility sum, convergence when the change of the lower bound is
below ``tol``, ``n_iter`` counted the same way, the best of ``n_init`` initialisations by lower
bound, and a final E-step with the returned parameters (``score``). Converged chains stop being
updated; the working set is compacted as they finish.

How it is fast: each chain's centred samples are expanded once into the features
phi(x) = (1, x, the quadratic monomials the covariance type needs) (F of them: 1 + d + d(d+1)/2
for full, 1 + 2d for diag, 2 + d for spherical). A component's log-density log(w N(x; m, C)) is
then a linear form theta . phi(x), so the E-step of all k components is one batched matrix
product (k x F) @ (F x N), and the M-step's sufficient statistics (responsibility sums, first
and second moments) are another, R (k x N) @ phi^T (N x F). Centring keeps the expanded
quadratics accurate: their rounding is ~1e-16 |m|^2 / sd^2, and ``reg_covar`` bounds sd below.
"""
from __future__ import annotations

import numpy as np

from sweep.families._checks import as_float, as_generator, as_int, fail
from sweep.families._gmmnd import COVARIANCE_TYPES, Mixture, as_mixture_nd, as_points, restrict, sort_components
from sweep.families._gmmnd_kmeans import kmeans_labels

INITS = ("kmeans", "random_from_data")
LOG_2PI = float(np.log(2.0 * np.pi))
# scikit-learn adds 10 * eps to every component's responsibility sum (nk).
NK_EPS = 10.0 * np.finfo(np.float64).eps
# samples per block of rows in the E/M-steps: the temporaries stay in a 1 MiB cache (measured at N
# = 1000, d = 2: 17 us per chain and iteration, 22 us with blocks of 2**16 samples)
_BLOCK_SAMPLES = 1 << 13


def n_features(d: int, covariance_type: str) -> int:
    """F, the number of features of d-dimensional samples for a covariance type."""
    return 1 + d + {"full": d * (d + 1) // 2, "diag": d, "spherical": 1}[covariance_type]


def features(xt: np.ndarray, covariance_type: str) -> np.ndarray:
    """phi (B, F, N) of centred samples laid out as (B, d, N): 1, x_1..x_d, then x_r x_s (r <= s,
    row-major upper triangle) for full, x_r**2 for diag, |x|**2 for spherical."""
    b, d, n = xt.shape
    phi = np.empty((b, n_features(d, covariance_type), n))
    phi[:, 0] = 1.0
    phi[:, 1:1 + d] = xt
    row = 1 + d
    if covariance_type == "spherical":
        np.multiply(xt[:, 0], xt[:, 0], out=phi[:, row])
        for r in range(1, d):
            phi[:, row] += xt[:, r] * xt[:, r]
        return phi
    for r in range(d):
        for c in range(r, d) if covariance_type == "full" else (r,):
            np.multiply(xt[:, r], xt[:, c], out=phi[:, row])
            row += 1
    return phi


def _precisions(cov: np.ndarray, covariance_type: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision matrices, log-determinants of the covariances, and which components are
    positive definite (a singular one, possible only with reg_covar = 0, stops its chain)."""
    d = cov.shape[-1]
    if covariance_type != "full":
        var = np.diagonal(cov, axis1=-2, axis2=-1)
        ok = (var > 0).all(axis=-1)
        with np.errstate(divide="ignore"):
            prec = np.where(var > 0, 1.0 / np.where(var > 0, var, 1.0), 0.0)
            return prec[..., :, None] * np.eye(d), np.log(np.where(ok[..., None], var, 1.0)).sum(axis=-1), ok
    if d == 2:  # closed forms: LAPACK's per-matrix overhead cost more than the E-step's algebra
        a, b, c = cov[..., 0, 0], cov[..., 0, 1], cov[..., 1, 1]
        det = a * c - b * b
        ok = (a > 0) & (det > 0)
        inv_det = 1.0 / np.where(ok, det, 1.0)
        prec = np.stack([np.stack([c, -b], axis=-1), np.stack([-b, a], axis=-1)], axis=-2) * inv_det[..., None, None]
        return prec, np.log(np.where(ok, det, 1.0)), ok
    ok = np.ones(cov.shape[:-2], dtype=bool)
    try:
        chol = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        ok = np.linalg.eigvalsh(cov)[..., 0] > 0
        chol = np.linalg.cholesky(np.where(ok[..., None, None], cov, np.eye(d)))
    inv = np.linalg.inv(chol)
    logdet = 2.0 * np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)
    return np.swapaxes(inv, -1, -2) @ inv, logdet, ok


def coefficients(w, m, cov, covariance_type):
    """theta (B, k, F) with theta . phi(x) = log(w N(x; m, cov)), and which chains are usable."""
    b, k, d = m.shape
    prec, logdet, ok = _precisions(cov, covariance_type)
    pm = np.einsum("bkij,bkj->bki", prec, m)
    with np.errstate(divide="ignore"):
        head = np.log(w) - 0.5 * (d * LOG_2PI + logdet + (m * pm).sum(axis=-1))
    if covariance_type == "full":
        r, s = np.triu_indices(d)
        quad = np.where(r == s, -0.5, -1.0) * prec[..., r, s]
    elif covariance_type == "diag":
        quad = -0.5 * np.diagonal(prec, axis1=-2, axis2=-1)
    else:
        quad = -0.5 * prec[..., :1, 0]
    return np.concatenate([head[..., None], pm, quad], axis=-1), ok.all(axis=1)


def e_step(phi: np.ndarray, theta: np.ndarray, *, stats: bool):
    """Mean log-likelihood per sample (B,) and, if ``stats``, the responsibility-weighted sums
    of the features (B, k, F): nk, sum r x and the quadratic sums.

    Rows are processed in blocks whose temporaries stay in cache. (A two-component special case
    with one exponential and one log1p per sample ran no faster: numpy's log1p is not
    vectorised, its exp and log are.)
    """
    b, f, n = phi.shape
    k = theta.shape[1]
    ll = np.empty(b)
    out = np.empty((b, k, f)) if stats else None
    rb = max(1, _BLOCK_SAMPLES // n)
    for r0 in range(0, b, rb):
        sl = slice(r0, r0 + rb)
        z = np.matmul(theta[sl], phi[sl])  # (R, k, N): log(w_j N(x; m_j, C_j))
        top = z[:, 0].copy()
        for j in range(1, k):
            np.maximum(top, z[:, j], out=top)
        z -= top[:, None, :]
        np.exp(z, out=z)
        total = z[:, 0].copy()
        for j in range(1, k):
            total += z[:, j]
        ll[sl] = (top.sum(axis=1) + np.log(total).sum(axis=1)) / n
        if stats:
            z *= (1.0 / total)[:, None, :]  # responsibilities
            out[sl] = np.matmul(z, np.swapaxes(phi[sl], 1, 2))
    return ll, out


def from_stats(s: np.ndarray, d: int, reg_covar: float, covariance_type: str):
    """Component sums nk (B, k, 10 eps added), means and covariances (full matrices) from the
    responsibility-weighted feature sums, as scikit-learn's _estimate_gaussian_parameters."""
    nk = s[..., 0] + NK_EPS
    means = s[..., 1:1 + d] / nk[..., None]
    second = s[..., 1 + d:] / nk[..., None]
    eye = np.eye(d)
    if covariance_type == "full":
        q = np.empty(s.shape[:2] + (d, d))
        r, c = np.triu_indices(d)
        q[..., r, c] = second
        q[..., c, r] = second
        cov = q - means[..., :, None] * means[..., None, :] + reg_covar * eye
    elif covariance_type == "diag":
        cov = (second - means * means + reg_covar)[..., :, None] * eye
    else:
        var = (second[..., 0] - (means * means).sum(axis=-1)) / d + reg_covar
        cov = var[..., None, None] * eye
    return nk, means, cov


def _run(phi, w, m, c, d, covariance_type, tol, max_iter, reg_covar):
    """EM from initial parameters; returns params, n_iter, converged and lower bounds.

    Finished chains are dropped from the working arrays once they are a quarter of them (a copy
    of the features per finished chain costs as much as an iteration); until then their rows are
    computed and not written back.
    """
    b = w.shape[0]
    w, m, c = w.copy(), m.copy(), c.copy()
    n_iter = np.zeros(b, dtype=np.int64)
    converged = np.zeros(b, dtype=bool)
    lower = np.full(b, -np.inf)
    rows, prev, work, live = np.arange(b), np.full(b, -np.inf), phi, np.ones(b, dtype=bool)
    for it in range(1, max_iter + 1):
        theta, ok = coefficients(w[rows], m[rows], c[rows], covariance_type)
        ll, s = e_step(work, theta, stats=True)
        nk, nm, nc = from_stats(s, d, reg_covar, covariance_type)
        write = rows[live]
        w[write], m[write], c[write] = (nk / nk.sum(axis=1, keepdims=True))[live], nm[live], nc[live]
        n_iter[write], lower[write] = it, np.where(ok, ll, np.nan)[live]
        with np.errstate(invalid="ignore"):
            done = np.abs(ll - prev) < tol
        converged[rows[done & ok & live]] = True
        # a chain whose fit turned singular or non-finite (only with reg_covar = 0) stops too
        bad = live & ~(ok & np.isfinite(ll))
        w[rows[bad]], m[rows[bad]], c[rows[bad]] = np.nan, np.nan, np.nan
        live &= ~(done | bad | ~np.isfinite(nc).all(axis=(1, 2, 3)))
        if not live.any():
            break
        prev = ll
        if bad.any() or 4 * np.count_nonzero(~live) >= live.size:  # a bad chain must go: NaN parameters
            work, rows, prev, live = work[live], rows[live], prev[live], live[live]
    return w, m, c, n_iter, converged, lower


def _from_labels(phi, labels, k, d, n, reg_covar, covariance_type):
    # GaussianMixture._initialize: M-step on one-hot responsibilities, weights = nk / N (not
    # renormalised: with "random_from_data" they sum to k / N, as in scikit-learn)
    if k == 2:  # boolean labels: cluster 1's feature sums, and cluster 0's as the rest
        one = np.matmul(phi, labels.astype(float)[:, :, None])[:, :, 0]
        stats = np.stack([phi.sum(axis=2) - one, one], axis=1)
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
        var = restrict((pts * pts / nk[..., None] - means * means + reg_covar)[..., :, None] * np.eye(d), covariance_type)
    return nk / n, means, var


def em_fit(x, k, *, covariance_type="full", init="kmeans", rng=None, tol=1e-3, max_iter=100, reg_covar=1e-6,
           n_init=1, score=True) -> Mixture:
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
    x = as_points(x, func, min_points=2)
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
    # EM is translation-equivariant and does not depend on the order of the samples: centring
    # keeps the expanded quadratics accurate; coordinate rows (B, d, N) keep the arithmetic on
    # contiguous memory
    xt = np.ascontiguousarray(np.swapaxes(x, 1, 2))
    shift = xt.mean(axis=2)
    xt -= shift[:, :, None]
    shift = shift[:, None, :]
    phi = features(xt, covariance_type)
    if isinstance(init, str):
        if init not in INITS:
            raise fail(func, "init", f"a str among {set(INITS)} or (weights, means, covariances)", init)
        rng = as_generator(rng, func)
        if init == "kmeans":
            starts = [lambda: _from_labels(phi, kmeans_labels(xt, k, rng), k, d, n, reg_covar, covariance_type)]
        else:
            starts = [lambda: _random_from_data(xt, k, d, reg_covar, covariance_type, rng)]
        starts *= n_init
    elif isinstance(init, (tuple, list)) and len(init) == 3:
        w0, m0, c0 = as_mixture_nd(*init, func, prefix="init ")
        if m0.shape[1:] != (k, d) or w0.shape[0] not in (1, b):
            raise fail(func, "init", f"parameters of {k} components in {d} dimensions for 1 or {b} chains",
                       f"shapes {w0.shape}, {m0.shape}")
        starts = [lambda: tuple(np.broadcast_to(a, (b,) + a.shape[1:])
                                for a in (w0, m0 - shift, restrict(c0, covariance_type)))]
    else:
        raise fail(func, "init", f"a str among {set(INITS)} or (weights, means, covariances)",
                   type(init).__name__, TypeError)
    best = None
    for start in starts:
        w0, m0, c0 = start()
        if max_iter == 0:
            res = (w0.copy(), m0.copy(), c0.copy(), np.zeros(b, np.int64), np.zeros(b, bool), np.full(b, -np.inf))
        else:
            res = _run(phi, w0, m0, c0, d, covariance_type, tol, max_iter, reg_covar)
        if best is None:
            best = list(res)
        else:  # scikit-learn keeps a later init only if its lower bound is strictly larger
            better = (res[5] > best[5]) | (best[5] == -np.inf)
            for dst, src in zip(best, res):
                dst[better] = src[better]
    w, m, c, n_iter, converged, lower = best
    if score:
        theta, ok = coefficients(w, m, c, covariance_type)
        final = np.where(ok, e_step(phi, theta, stats=False)[0], np.nan)
    else:
        final = np.full(b, np.nan)
    w, m, c = sort_components(w, m + shift, c)
    return Mixture(w, m, c, n_iter, converged, lower, final)


def mean_log_likelihood(x, weights, means, covariances, *, covariance_type="full") -> np.ndarray:
    """Mean log-likelihood per sample (B,) of each chain's data under its mixture
    (scikit-learn's ``GaussianMixture.score``)."""
    func = "mean_log_likelihood"
    x = as_points(x, func)
    w, m, c = as_mixture_nd(weights, means, covariances, func)
    xt = np.ascontiguousarray(np.swapaxes(x, 1, 2))
    shift = xt.mean(axis=2)
    xt -= shift[:, :, None]
    theta, ok = coefficients(np.broadcast_to(w, (x.shape[0],) + w.shape[1:]), m - shift[:, None, :],
                             np.broadcast_to(c, (x.shape[0],) + c.shape[1:]), covariance_type)
    return np.where(ok, e_step(features(xt, covariance_type), theta, stats=False)[0], np.nan)
