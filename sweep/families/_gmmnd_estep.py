"""E-step and M-step kernels of batched d-dimensional Gaussian-mixture EM.

Each chain's centred samples are expanded once into the features phi(x) = (1, x, the quadratic
monomials the covariance type needs): F of them, 1 + d + d(d+1)/2 for full, 1 + 2d for diag, 2 + d
for spherical. A component's log-density log(w N(x; m, C)) is then a linear form theta . phi(x),
so the E-step of all k components is one batched matrix product (k x F) @ (F x N), and the
M-step's sufficient statistics (responsibility sums, first and second moments) are another,
R (k x N) @ phi^T (N x F). Centring keeps the expanded quadratics accurate: their rounding is
~1e-16 |m|^2 / sd^2, and ``reg_covar`` bounds sd below.
"""

from __future__ import annotations

import numpy as np

LOG_2PI = float(np.log(2.0 * np.pi))
# scikit-learn adds 10 * eps to every component's responsibility sum (nk).
NK_EPS = 10.0 * np.finfo(np.float64).eps
# samples per block of rows in the E/M-steps: the temporaries stay in a 1 MiB cache (measured at N
# = 1000, d = 2: 17 us per chain and iteration, 22 us with blocks of 2**16 samples)
_BLOCK_SAMPLES = 1 << 13


def n_features(d: int, covariance_type: str) -> int:
    """F, the number of features of d-dimensional samples for a covariance type."""
    return 1 + d + {"full": d * (d + 1) // 2, "diag": d, "spherical": 1}[covariance_type]


def features(
    xt: np.ndarray, covariance_type: str, shift: np.ndarray | None = None, *, out: np.ndarray | None = None
) -> np.ndarray:
    """phi (B, F, N) of centred samples laid out as (B, d, N): 1, x_1..x_d, then x_r x_s (r <= s,
    row-major upper triangle) for full, x_r**2 for diag, |x|**2 for spherical. With ``shift``
    (B, d), the samples are centred on the way: x - shift. ``out``: an array to write phi into."""
    b, d, n = xt.shape
    phi = np.empty((b, n_features(d, covariance_type), n)) if out is None else out
    phi[:, 0] = 1.0
    x = phi[:, 1 : 1 + d]
    if shift is None:
        x[...] = xt
    else:
        np.subtract(xt, shift[:, :, None], out=x)
    row = 1 + d
    if covariance_type == "spherical":
        np.multiply(x[:, 0], x[:, 0], out=phi[:, row])
        for r in range(1, d):
            phi[:, row] += x[:, r] * x[:, r]
        return phi
    for r in range(d):
        for c in range(r, d) if covariance_type == "full" else (r,):
            np.multiply(x[:, r], x[:, c], out=phi[:, row])
            row += 1
    return phi


def centred_features(
    x: np.ndarray, covariance_type: str, *, out: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """phi (B, F, N) of samples (B, N, d) centred on each chain's mean, and the means (B, d).

    EM is translation-equivariant and does not depend on the order of the samples: centring keeps
    the expanded quadratics accurate; coordinate rows keep the arithmetic on contiguous memory.
    The centred samples are phi[:, 1 : 1 + d]. ``out``: an array to write phi into.
    """
    xt = np.ascontiguousarray(np.swapaxes(x, 1, 2))  # a strided subtraction costs 4 times as much
    shift = xt.mean(axis=2)
    return features(xt, covariance_type, shift, out=out), shift


def square_norm(d: int, covariance_type: str) -> np.ndarray:
    """q (F - 1 - d,) with q . phi(x)[1 + d:] = |x|**2: which quadratic features are squares."""
    if covariance_type == "full":
        r, c = np.triu_indices(d)
        return (r == c).astype(float)
    return np.ones(d if covariance_type == "diag" else 1)


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


def _coefficients_full2(w, m, cov):
    """:func:`coefficients` of full 2x2 covariances [[a, b], [b, c]], written entry by entry (the
    same arithmetic as the general path: precision = [[c, -b], [-b, a]] / det, its product with
    the mean, the quadratic coefficients), without its stacks, einsum and index arrays: the
    small arrays' per-call overheads cost more than their arithmetic, once per EM iteration."""
    a, b, c = cov[..., 0, 0], cov[..., 0, 1], cov[..., 1, 1]
    det = a * c - b * b
    ok = (a > 0) & (det > 0)
    inv_det = 1.0 / np.where(ok, det, 1.0)
    p00, p01, p11 = c * inv_det, -b * inv_det, a * inv_det
    m0, m1 = m[..., 0], m[..., 1]
    theta = np.empty(m.shape[:2] + (6,))
    pm0 = np.add(p00 * m0, p01 * m1, out=theta[..., 1])
    pm1 = np.add(p01 * m0, p11 * m1, out=theta[..., 2])
    with np.errstate(divide="ignore"):
        np.subtract(
            np.log(w), 0.5 * (2 * LOG_2PI + np.log(np.where(ok, det, 1.0)) + (m0 * pm0 + m1 * pm1)), out=theta[..., 0]
        )
    np.multiply(p00, -0.5, out=theta[..., 3])
    np.multiply(p01, -1.0, out=theta[..., 4])
    np.multiply(p11, -0.5, out=theta[..., 5])
    return theta, ok.all(axis=1)


def coefficients(w, m, cov, covariance_type):
    """theta (B, k, F) with theta . phi(x) = log(w N(x; m, cov)), and which chains are usable."""
    b, k, d = m.shape
    if d == 2 and covariance_type == "full":
        return _coefficients_full2(w, m, cov)
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


def e_step(phi: np.ndarray, theta: np.ndarray, *, stats: bool, sums: np.ndarray | None = None):
    """Mean log-likelihood per sample (B,) and, if ``stats``, the responsibility-weighted sums
    of the features (B, k, F): nk, sum r x and the quadratic sums.

    Rows are processed in blocks whose temporaries stay in cache. Two components take
    :func:`_e_step_two` (one exponential per sample); rows where it overflows are redone by the
    general :func:`_e_step_any`. ``sums``: the features summed over the samples (B, F), if at
    hand.
    """
    b, f, n = phi.shape
    k = theta.shape[1]
    ll = np.empty(b)
    out = np.empty((b, k, f)) if stats else None
    rb = max(1, _BLOCK_SAMPLES // n)
    if k != 2:
        for r0 in range(0, b, rb):
            sl = slice(r0, r0 + rb)
            ll[sl], s = _e_step_any(phi[sl], theta[sl], stats)
            if stats:
                out[sl] = s
        return ll, out
    # sum_n z_0(x_n) = theta_0 . sum_n phi(x_n); z_1 - z_0 is the form theta_1 - theta_0
    head = ((phi.sum(axis=2) if sums is None else sums) * theta[:, 0]).sum(axis=1)
    diff = theta[:, 1] - theta[:, 0]
    scratch = np.empty((min(rb, b), 2, n)) if stats else None
    with np.errstate(over="ignore", invalid="ignore"):  # overflows are found and redone
        for r0 in range(0, b, rb):
            sl = slice(r0, r0 + rb)
            _e_step_two(phi[sl], diff[sl], head[sl], ll[sl], out[sl] if stats else None, scratch)
        redo = np.flatnonzero(~np.isfinite(ll))  # an overflowed E (or non-finite parameters)
        if redo.size:
            ll[redo], s = _e_step_any(phi[redo], theta[redo], stats)
            if stats:
                out[redo] = s
    return ll, out


def _e_step_any(phi: np.ndarray, theta: np.ndarray, stats: bool):
    """:func:`e_step` of one block of rows, any k: log-sum-exp with the per-sample maximum."""
    n = phi.shape[2]
    z = np.matmul(theta, phi)  # (R, k, N): log(w_j N(x; m_j, C_j))
    top = z[:, 0].copy()
    for j in range(1, z.shape[1]):
        np.maximum(top, z[:, j], out=top)
    z -= top[:, None, :]
    np.exp(z, out=z)
    total = z[:, 0].copy()
    for j in range(1, z.shape[1]):
        total += z[:, j]
    ll = (top.sum(axis=1) + np.log(total).sum(axis=1)) / n
    if not stats:
        return ll, None
    z *= (1.0 / total)[:, None, :]  # responsibilities
    return ll, np.matmul(z, np.swapaxes(phi, 1, 2))


def _e_step_two(phi, diff, head, ll, out, scratch) -> None:
    """:func:`e_step` of one block of R rows with two components, written into ``ll`` (R,) and
    ``out`` (R, 2, F) (None: no statistics; ``scratch`` (>= R, 2, N) holds the responsibilities).

    With z_j = log(w_j N(x; m_j, C_j)) and E = exp(z_1 - z_0): log(p(x)) = z_0 + log(1 + E), and
    the responsibilities are 1 / (1 + E) and E / (1 + E), both accurate in relative terms
    however small (no subtraction from 1), for one exponential, one logarithm and one division
    per sample instead of two of each. z_1 - z_0 is one linear form of the features, ``diff``
    (R, F) (one row of matrix product), and the sum of z_0 over the samples is ``head`` (R,). E
    overflows where component 1 is e^709 times likelier than component 0 (narrow components far
    apart, as chains collapse): the row's log-likelihood is then not finite, and the caller
    redoes it.
    """
    n = phi.shape[2]
    e = np.matmul(diff[:, None, :], phi)[:, 0]  # (R, N): z_1 - z_0
    np.exp(e, out=e)
    p = e + 1.0
    if out is not None:
        r = scratch[: phi.shape[0]]
        np.reciprocal(p, out=r[:, 0])
        np.multiply(e, r[:, 0], out=r[:, 1])
        np.matmul(r, np.swapaxes(phi, 1, 2), out=out)
    np.log(p, out=p)
    np.divide(head + p.sum(axis=1), n, out=ll)


def from_stats(s: np.ndarray, d: int, reg_covar: float, covariance_type: str):
    """Component sums nk (B, k, 10 eps added), means and covariances (full matrices) from the
    responsibility-weighted feature sums, as scikit-learn's _estimate_gaussian_parameters."""
    nk = s[..., 0] + NK_EPS
    means = s[..., 1 : 1 + d] / nk[..., None]
    second = s[..., 1 + d :] / nk[..., None]
    eye = np.eye(d)
    if covariance_type == "full" and d == 2:  # entry by entry, the general path's arithmetic
        cov = np.empty(s.shape[:2] + (2, 2))
        m0, m1 = means[..., 0], means[..., 1]
        np.add(second[..., 0] - m0 * m0, reg_covar, out=cov[..., 0, 0])
        np.add(second[..., 1] - m0 * m1, 0.0, out=cov[..., 0, 1])
        np.add(second[..., 1] - m1 * m0, 0.0, out=cov[..., 1, 0])
        np.add(second[..., 2] - m1 * m1, reg_covar, out=cov[..., 1, 1])
    elif covariance_type == "full":
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
