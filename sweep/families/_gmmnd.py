"""Batches of d-dimensional Gaussian mixtures: checks, sampling, moments, tempering.

A batch of B mixtures of k components in d dimensions is held as weights (B, k), means
(B, k, d) and covariances (B, k, d, d), whatever the covariance type the fit used (a diagonal or
spherical covariance is stored as its full matrix), so that sampling and metrics need one code
path. The true mixture may be given once, as (k,), (k, d) and (k, d, d) arrays shared by every
chain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sweep.families._checks import WEIGHT_SUM_ATOL, as_generator, as_int, fail
from sweep.families._linalg import psd_factor

COVARIANCE_TYPES = ("full", "diag", "spherical")


@dataclass(frozen=True)
class Mixture:
    """B mixtures: weights (B, k), means (B, k, d), covariances (B, k, d, d).

    ``n_iter``, ``converged``, ``lower_bound`` and ``log_likelihood`` (B,) describe the EM fit
    that produced it (scikit-learn's ``n_iter_``, ``converged_``, ``lower_bound_`` and
    ``score(X)``); a mixture that was not fitted (the truth) has 0, True, NaN, NaN.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray
    lower_bound: np.ndarray
    log_likelihood: np.ndarray

    @classmethod
    def given(cls, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray) -> Mixture:
        """A mixture that no fit produced (the truth at generation 0)."""
        b = weights.shape[0]
        return cls(
            weights, means, covariances, np.zeros(b, np.int64), np.ones(b, bool), np.full(b, np.nan), np.full(b, np.nan)
        )

    @property
    def dim(self) -> int:
        return self.means.shape[-1]


def _array(value, func, name, ndim):
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise fail(func, name, "an array of real numbers", type(value).__name__, TypeError) from None
    if a.ndim == ndim - 1:
        a = a[None]
    if a.ndim != ndim:
        raise fail(func, name, f"an array of {ndim} (or {ndim - 1}) dimensions", f"shape {np.shape(value)}")
    if not np.isfinite(a).all():
        raise fail(func, name, "finite", "a non-finite entry")
    return a


def as_mixture_nd(weights, means, covariances, func: str, *, prefix: str = "") -> tuple[np.ndarray, ...]:
    """Validate a batch of d-dimensional mixtures; return float64 (B, k), (B, k, d), (B, k, d, d).

    Arrays without the leading batch axis describe one mixture (B = 1). Weights must be in
    [0, 1] and sum to 1 per chain; covariances must be symmetric with a non-negative diagonal
    (a collapsed component may be singular).
    """
    names = [prefix + n for n in ("weights", "means", "covariances")]
    w = _array(weights, func, names[0], 2)
    m = _array(means, func, names[1], 3)
    c = _array(covariances, func, names[2], 4)
    b, k, d = m.shape
    if w.shape[1] != k or c.shape[1:] != (k, d, d):
        raise fail(
            func,
            names[2],
            f"of shape (B, k, d, d) with k = {k}, d = {d} as {names[1]}, and {names[0]} (B, k)",
            f"shapes {w.shape}, {m.shape}, {c.shape}",
        )
    rows = {w.shape[0], b, c.shape[0]}
    if not rows <= {1, max(rows)}:
        raise fail(func, names[0], "arrays of one batch size B", f"shapes {w.shape}, {m.shape}, {c.shape}")
    if ((w < 0) | (w > 1)).any():
        raise fail(func, names[0], "in [0, 1]", w[(w < 0) | (w > 1)][0])
    total = w.sum(axis=1)
    if (np.abs(total - 1.0) > WEIGHT_SUM_ATOL).any():
        row = int(np.argmax(np.abs(total - 1.0)))
        raise fail(
            func, names[0], f"summing to 1 per chain (atol {WEIGHT_SUM_ATOL:g})", f"sum {total[row]!r} in chain {row}"
        )
    if (np.diagonal(c, axis1=-2, axis2=-1) < 0).any():
        raise fail(func, names[2], "positive semi-definite", "a negative variance")
    scale = np.abs(c).max(initial=1.0)
    if (np.abs(c - np.swapaxes(c, -1, -2)) > 1e-10 * scale).any():
        raise fail(func, names[2], "symmetric", "an asymmetric matrix")
    n = max(rows)
    return (
        np.ascontiguousarray(np.broadcast_to(w, (n, k))),
        np.ascontiguousarray(np.broadcast_to(m, (n, k, d))),
        np.ascontiguousarray(np.broadcast_to(c, (n, k, d, d))),
    )


def as_points(x, func: str, name: str = "x", min_points: int = 1, *, contiguous: bool = True) -> np.ndarray:
    """``x`` as a float64 (B, N, d) array of finite values, C-contiguous unless ``contiguous``
    is False (then as it comes, e.g. a view of coordinate rows from :func:`sample_mixture`)."""
    a = _array(x, func, name, 3) if np.ndim(x) == 3 else None
    if a is None:
        raise fail(func, name, "a 3-D array of shape (B, N, d)", f"shape {np.shape(x)}")
    if a.shape[1] < min_points or a.shape[2] < 1:
        raise fail(func, name, f"of shape (B, N, d) with N >= {min_points} and d >= 1", f"shape {a.shape}")
    return np.ascontiguousarray(a) if contiguous else a


def sample_mixture(weights, means, covariances, n, *, rng, factors=None) -> np.ndarray:
    """Draw n samples (B, n, d) from each chain's mixture.

    Each sample picks its component independently (component counts are Multinomial(n,
    weights)), so the order is exchangeable and any prefix of a row is an i.i.d. sample, which
    mixing policies that keep a fraction rely on. Two draws, chain-leading: one uniform per sample
    for its component, and standard normals (B, d, n) mapped through a factor A (A A^T =
    covariance: Cholesky, or a symmetric root for singular covariances). ``factors`` (B, k, d, d)
    may be given when already known.
    """
    func = "sample_mixture"
    w, m, c = as_mixture_nd(weights, means, covariances, func)
    n = as_int(n, func, "n", 1)
    rng = as_generator(rng, func)
    b, k, d = m.shape
    a = psd_factor(c) if factors is None else factors
    u = rng.random((b, n))
    z = rng.standard_normal((b, d, n))  # coordinate rows: the arithmetic below runs on contiguous rows
    cum = np.cumsum(w, axis=1)
    cum = cum[:, :-1] / cum[:, -1:]  # thresholds scaled by the total, against rounding
    label = np.repeat((np.arange(b) * k)[:, None], n, axis=1)  # flat index into (B, k)
    for j in range(k - 1):
        label += u >= cum[:, j, None]
    flat_m, flat_a = m.reshape(b * k, d), a.reshape(b * k, d, d)
    if _lower(a):
        # z becomes the samples in place, last coordinate first: coordinate r needs z_0..z_r
        for r in range(d - 1, -1, -1):
            row = z[:, r]
            row *= flat_a[:, r, r].take(label)
            for s in range(r):
                row += flat_a[:, r, s].take(label) * z[:, s]
            row += flat_m[:, r].take(label)
        # a (B, n, d) view of the coordinate rows: the fit reads them as they are (no transposing
        # copy on either side); anything else sees an ordinary array
        return np.swapaxes(z, 1, 2)
    out = np.empty((b, n, d))
    for r in range(d):
        row = flat_m[:, r].take(label)
        for s in range(d):
            row += flat_a[:, r, s].take(label) * z[:, s]
        out[..., r] = row
    return out


def _lower(a: np.ndarray) -> bool:
    # Cholesky factors are lower triangular: the upper part need not be gathered
    return not np.triu(a, 1).any()


def mixture_moments(weights, means, covariances) -> tuple[np.ndarray, np.ndarray]:
    """Total mean (B, d) and covariance (B, d, d): sum w m, and sum w (C + (m - mean)(m - mean)^T)."""
    w, m, c = as_mixture_nd(weights, means, covariances, "mixture_moments")
    mean = np.einsum("bk,bkd->bd", w, m)
    dm = m - mean[:, None, :]
    cov = np.einsum("bk,bkij->bij", w, c) + np.einsum("bk,bki,bkj->bij", w, dm, dm)
    return mean, cov


def tempered(weights: np.ndarray, covariances: np.ndarray, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights w^(1/T) renormalised and covariances times T: how the mixture families temper
    (the mixture analogue of p^(1/T), exact for one component)."""
    if temperature == 1.0:
        return weights, covariances
    powered = weights ** (1.0 / temperature)
    return powered / powered.sum(axis=1, keepdims=True), covariances * temperature


def restrict(covariances: np.ndarray, covariance_type: str) -> np.ndarray:
    """Full covariances reduced to a covariance type (diag: the diagonal; spherical: the mean
    variance), still as full matrices."""
    if covariance_type == "full":
        return covariances
    d = covariances.shape[-1]
    diag = np.diagonal(covariances, axis1=-2, axis2=-1)
    if covariance_type == "spherical":
        diag = np.repeat(diag.mean(axis=-1, keepdims=True), d, axis=-1)
    return diag[..., :, None] * np.eye(d)


def sort_components(weights, means, covariances, *rest):
    """Components ordered by their mean's first coordinate, so that label switching makes no
    jumps in the per-component trajectories."""
    key = means[..., 0]
    order = np.argsort(key, axis=1, kind="stable")
    take = lambda a: np.take_along_axis(a, order.reshape(order.shape + (1,) * (a.ndim - 2)), axis=1)
    return (take(weights), take(means), take(covariances)) + tuple(take(r) for r in rest)
