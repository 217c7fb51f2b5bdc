"""Batched least squares for many small regressions at once (arrays of shape (B, d, d) and (B, d)).

numpy's ``linalg`` functions call LAPACK once per matrix, about 2 us each whatever d, which for
d ~ 10 costs more than the arithmetic. Here the loops run over the d rows and columns, each step
one array operation across all B chains, so a block of thousands of 10 x 10 systems costs a few
tens of numpy calls. A matrix that is not numerically positive definite gives NaN (square root of
a negative pivot) for its chain only, never an exception for the whole batch: the engine records it
as a ``diverged`` event.

:func:`draw_statistics` samples the sufficient statistics (X^T X, X^T y, y^T y) of m fresh pairs
x ~ N(0, I_d), y = x . w + sigma e, exactly, in O(d^2) random numbers per chain whatever m is.
"""

from __future__ import annotations

import numpy as np


def cholesky(a: np.ndarray) -> np.ndarray:
    """Lower-triangular L with L L^T = a, per chain (Cholesky-Crout, column by column)."""
    batch, d, _ = a.shape
    low = np.zeros_like(a)
    with np.errstate(invalid="ignore", divide="ignore"):
        for j in range(d):
            row = low[:, j, :j]
            pivot = np.sqrt(a[:, j, j] - np.einsum("bk,bk->b", row, row))
            low[:, j, j] = pivot
            if j + 1 < d:
                below = a[:, j + 1 :, j] - np.einsum("bik,bk->bi", low[:, j + 1 :, :j], row)
                low[:, j + 1 :, j] = below / pivot[:, None]
    return low


def solve_lower(low: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x with L x = b (forward substitution, column by column), per chain."""
    d = low.shape[1]
    x = b.copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        for i in range(d):
            pivot = x[:, i]
            pivot /= low[:, i, i]
            for j in range(i + 1, d):  # one long operation per entry: see solve_lower_transposed
                x[:, j] -= low[:, j, i] * pivot
    return x


def solve_lower_transposed(low: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x with L^T x = y (back substitution, column by column: row i of L is column i of L^T), per chain."""
    d = low.shape[1]
    x = y.copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        for i in range(d - 1, -1, -1):
            pivot = x[:, i]
            pivot /= low[:, i, i]
            # Entry by entry, each an operation across all B chains: a (B, i) block operation runs
            # numpy's inner loop B times over i <= d values, 1.6x slower in all at d = 10. The same
            # products and differences, so the same bits.
            for j in range(i):
                x[:, j] -= low[:, i, j] * pivot
    return x


def draw_statistics(w: np.ndarray, m: int, sigma: float, *, rng: np.random.Generator):
    """Sufficient statistics of m >= d fresh pairs per chain, drawn exactly, in whitened form.

    With X (m x d) of independent N(0, 1) entries and e ~ N(0, I_m), y = X w + sigma e:

    - X^T X ~ Wishart(m, I_d) = F F^T, with F lower triangular by Bartlett's decomposition
      (F_ii^2 ~ chi2(m - i) for i = 0..d-1, F_ij ~ N(0, 1) below the diagonal): F is its Cholesky
      factor.
    - X^T e given X is N(0, X^T X) = F z with z ~ N(0, I_d).
    - e^T e = e^T P e + e^T (I - P) e, P the projection on X's columns: e^T P e = (X^T e)^T
      (X^T X)^{-1} (X^T e) = |z|^2, and e^T (I - P) e ~ chi2(m - d), independent of X and z.

    So with v = F^T w + sigma z: X^T y = F v, and the residual sum of squares of the OLS fit,
    y^T y - |v|^2, is sigma^2 chi2(m - d). Two draws per call (normals, then gammas), whatever the
    data.

    Returns
    -------
    (factor, white, rss) : (B, d, d), (B, d), (B,)
        F, v = F^{-1} X^T y and the residual sum of squares.
    """
    batch, d = w.shape
    strict = d * (d - 1) // 2
    normals = rng.standard_normal((batch, strict + d))
    shapes = (m - np.arange(d + 1)) / 2.0  # chi2(k) = 2 Gamma(k / 2); the last one is chi2(m - d)
    gammas = rng.standard_gamma(shapes, (batch, d + 1))
    factor = np.zeros((batch, d, d))
    offset = 0
    for i in range(1, d):  # row i's i entries left of the diagonal (slices, not fancy indexing)
        factor[:, i, :i] = normals[:, offset : offset + i]
        offset += i
    factor.reshape(batch, d * d)[:, :: d + 1] = np.sqrt(2.0 * gammas[:, :d])
    white = np.einsum("bji,bj->bi", factor, w)
    white += sigma * normals[:, strict:]
    return factor, white, (2.0 * sigma * sigma) * gammas[:, d]
