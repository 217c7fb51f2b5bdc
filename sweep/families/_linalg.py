"""Batched linear algebra for the d-dimensional Gaussian family (arrays of shape (B, d, d))."""

from __future__ import annotations

import numpy as np


def psd_factor(cov: np.ndarray) -> np.ndarray:
    """A matrix A per chain with A A^T = cov.

    Cholesky where every matrix in the batch allows it; otherwise (a chain whose covariance has
    become singular) the symmetric square root through the eigendecomposition, with negative
    round-off eigenvalues clipped, so one degenerate chain does not stop the batch.
    """
    try:
        return np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        return sqrtm_psd(cov)


def sqrtm_psd(cov: np.ndarray) -> np.ndarray:
    """Symmetric square root of symmetric positive semi-definite matrices (batched or single)."""
    values, vectors = np.linalg.eigh(cov)
    root = np.sqrt(np.clip(values, 0.0, None))
    return (vectors * root[..., None, :]) @ np.swapaxes(vectors, -1, -2)


def standard_wishart(df: int, d: int, batch: int, *, rng: np.random.Generator) -> np.ndarray:
    """Draw ``batch`` matrices from Wishart(df, I_d).

    For df >= d, Bartlett's decomposition: W = A A^T with A lower triangular, A_ii^2 ~ chi2(df - i)
    and A_ij ~ N(0, 1) below the diagonal. For df < d (a singular Wishart) the sum of df outer
    products of standard normal vectors, which is its definition.
    """
    if df <= 0:
        return np.zeros((batch, d, d))
    if df < d:
        z = rng.standard_normal((batch, df, d))
        return np.matmul(np.swapaxes(z, 1, 2), z)
    a = np.zeros((batch, d, d))
    rows, cols = np.tril_indices(d, -1)
    a[:, rows, cols] = rng.standard_normal((batch, rows.size))
    shapes = (df - np.arange(d)) / 2.0
    a[:, np.arange(d), np.arange(d)] = np.sqrt(2.0 * rng.standard_gamma(shapes, (batch, d)))
    return a @ np.swapaxes(a, 1, 2)


def logdet(cov: np.ndarray) -> np.ndarray:
    """log-determinant per chain (-inf for singular matrices)."""
    sign, value = np.linalg.slogdet(cov)
    return np.where(sign > 0, value, -np.inf)


def gaussian_w2(
    mean: np.ndarray, cov: np.ndarray, mean0: np.ndarray, cov0: np.ndarray, root0: np.ndarray
) -> np.ndarray:
    """2-Wasserstein distance between N(mean, cov) per chain and N(mean0, cov0).

    W2^2 = |m - m0|^2 + tr(S) + tr(S0) - 2 tr((S0^1/2 S S0^1/2)^1/2); ``root0`` is S0^1/2.
    """
    inner = root0 @ cov @ root0
    eig = np.linalg.eigvalsh(inner)
    cross = np.sqrt(np.clip(eig, 0.0, None)).sum(axis=-1)
    dm = mean - mean0
    w2sq = (dm * dm).sum(axis=-1) + np.trace(cov, axis1=-2, axis2=-1) + np.trace(cov0) - 2.0 * cross
    return np.sqrt(np.clip(w2sq, 0.0, None))
