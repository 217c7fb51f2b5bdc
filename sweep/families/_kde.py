"""Gaussian kernel density estimates of batches of 1-D chains (B chains, N training points).

The fitted model of a chain with training points x_1..x_N and bandwidth h is the mixture
(1/N) sum_i Normal(x_i, h**2). Sampling from it picks training points uniformly with
replacement and adds Normal(0, h**2) noise. Metrics compare that mixture with a true Gaussian
mixture given as (k,) or (B, k) arrays of weights, means and variances.
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy import fft, special

from sweep.families._checks import as_batch, as_generator, as_int, as_mixture, fail
from sweep.families._gmm1d import true_tails
from sweep.families._quantiles1d import CHUNK_LEVELS, GRID_SDS, mixture_pieces, quantile_pieces, w2_from_pieces

RULES = ("scott", "silverman")
# W2 grid: spacing at most h / 16 (linear binning adds at most step**2 / 4 to the kernel
# variance: <0.05% of h on the kernel sd), with between these many points.
_GRID_PER_H = 16
_GRID_MIN, _GRID_MAX = 512, 1 << 15
# grid points processed at once (rows x points), to bound memory
_CHUNK = 1 << 20


def bandwidth(x, rule="scott") -> np.ndarray:
    """Kernel standard deviation h (B,) of each chain, as scipy.stats.gaussian_kde in 1-D.

    Parameters
    ----------
    x : array_like (B, N), N >= 2
    rule : {"scott", "silverman"} or float
        "scott": h = N**(-1/5) * std(x, ddof=1); "silverman": h = (3 N / 4)**(-1/5) *
        std(x, ddof=1); a float > 0: that fixed h for every chain.
    """
    func = "bandwidth"
    x = as_batch(x, func, min_cols=2)
    b, n = x.shape
    if isinstance(rule, str):
        if rule not in RULES:
            raise fail(func, "rule", f"a str among {set(RULES)} or a float in (0, inf)", rule)
        factor = n**-0.2 if rule == "scott" else (n * 0.75) ** -0.2
        return factor * x.std(axis=1, ddof=1)
    if isinstance(rule, (bool, np.bool_)) or not isinstance(rule, numbers.Real):
        raise fail(func, "rule", f"a str among {set(RULES)} or a float in (0, inf)", rule, TypeError)
    if not np.isfinite(rule) or rule <= 0:
        raise fail(func, "rule", "a float in (0, inf) (a fixed bandwidth)", rule)
    return np.full(b, float(rule))


def _check_h(h, b, func):
    """Bandwidths as (B,) float64 >= 0 (0 is the limit of a collapsed chain: no smoothing)."""
    try:
        a = np.broadcast_to(np.asarray(h, dtype=np.float64), (b,))
    except (TypeError, ValueError):
        raise fail(func, "h", f"a float or an array of shape ({b},)", np.shape(h)) from None
    bad = ~np.isfinite(a) | (a < 0)
    if bad.any():
        raise fail(func, "h", "finite and >= 0", f"{a[bad][0]!r}")
    return a


def sample_kde(x, h, n, *, rng) -> np.ndarray:
    """Draw n samples (B, n) from each chain's KDE: a uniformly chosen training point (with
    replacement) plus Normal(0, h**2) noise. ``h`` is a float or (B,) array, >= 0."""
    func = "sample_kde"
    x = as_batch(x, func)
    b, m = x.shape
    h = _check_h(h, b, func)
    n = as_int(n, func, "n", 1)
    rng = as_generator(rng, func)
    idx = rng.integers(0, m, size=(b, n))
    idx += (np.arange(b) * m)[:, None]
    out = rng.standard_normal((b, n))
    out *= h[:, None]
    out += x.ravel().take(idx)
    return out


def kde_mean_var(x, h) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance (B,) of each fitted KDE.

    The KDE is the mixture (1/N) sum_i Normal(x_i, h**2), so its mean is the sample mean and
    its variance is exactly the sample variance with ddof=0 plus h**2.
    """
    func = "kde_mean_var"
    x = as_batch(x, func)
    h = _check_h(h, x.shape[0], func)
    return x.mean(axis=1), x.var(axis=1) + h * h


def kde_tail_mass(x, h, true_weights, true_means, true_variances) -> np.ndarray:
    """KDE probability (B,) below the true 1% quantile plus above the true 99% quantile."""
    func = "kde_tail_mass"
    x = as_batch(x, func)
    h = _check_h(h, x.shape[0], func)[:, None]
    q = true_tails(true_weights, true_means, true_variances, func)
    with np.errstate(divide="ignore", invalid="ignore"):
        lo = np.where(h > 0, special.ndtr((q[:, :1] - x) / h), (x < q[:, :1]) * 1.0)
        hi = np.where(h > 0, special.ndtr((x - q[:, 1:]) / h), (x > q[:, 1:]) * 1.0)
    return (lo + hi).mean(axis=1)


def _kde_on_grid(x, h, lo, step, m):
    """CDF and density (R, m) each of each KDE at lo + i * step, i < m: linear binning of the
    points on the grid, then FFT convolutions with the increments of the Gaussian CDF over one
    grid step and with the Gaussian density (one transform of the binned counts serves both)."""
    b, n = x.shape
    pos = (x - lo[:, None]) / step[:, None]
    i0 = np.clip(np.floor(pos).astype(np.intp), 0, m - 2)
    t = pos - i0
    flat = (np.arange(b) * m)[:, None] + i0
    counts = (
        np.bincount(flat.ravel(), (1.0 - t).ravel(), b * m) + np.bincount((flat + 1).ravel(), t.ravel(), b * m)
    ).reshape(b, m) / n
    # a point mass at node 0 contributes Phi((l * step) / h) to node l: increments over l
    half = int(np.ceil(GRID_SDS * np.max(h / step, initial=0.0))) + 2
    lags = np.arange(-half, half + 2)
    hs = np.maximum(h, 1e-300)[:, None]
    z = lags * step[:, None] / hs
    kern_cdf = np.diff(special.ndtr(z), axis=1)  # lags -half+1 .. half+1
    kern_pdf = np.exp(-0.5 * z[:, 1:] ** 2) / (np.sqrt(2.0 * np.pi) * hs)  # the same lags
    size = fft.next_fast_len(m + kern_cdf.shape[1])
    spectrum = fft.rfft(counts, size, axis=1)
    inc = fft.irfft(spectrum * fft.rfft(kern_cdf, size, axis=1), size, axis=1)
    pdf = fft.irfft(spectrum * fft.rfft(kern_pdf, size, axis=1), size, axis=1)
    # output index i + half - 1 is node i (the kernels start at lag -half + 1); the density's
    # round-off (~1e-17 of its peak) must not make a quantile slope negative
    window = slice(half - 1, half - 1 + m)
    return np.cumsum(inc[:, window], axis=1), np.maximum(pdf[:, window], 0.0)


def kde_w2_to_mixture(x, h, true_weights, true_means, true_variances, *, n_grid=None) -> np.ndarray:
    """2-Wasserstein distance (B,) from each KDE to the true mixture.

    The KDE's CDF and density are tabulated on a per-chain grid (spacing <= h / 16, between
    512 and 32768 points, or ``n_grid`` points) spanning the data +- 9 h, by linear binning and
    FFT convolutions; the truth is tabulated once on its own components' grids. Both quantile
    functions are monotone cubic interpolants and W2 between them is integrated exactly
    (:func:`sweep.families._quantiles1d.w2_from_pieces`). The error, ~2e-4, comes from the
    binning, which widens each kernel by at most step**2 / 4 in variance (with tiny h the grid
    limit makes it ~ the spacing).
    """
    func = "kde_w2_to_mixture"
    x = as_batch(x, func)
    b = x.shape[0]
    h = _check_h(h, b, func)
    tw, tm, tv = as_mixture(true_weights, true_means, true_variances, func, prefix="true_")
    if tw.shape[0] not in (1, b):
        raise fail(func, "true_weights", f"of shape (k,) or ({b}, k)", tw.shape)
    if n_grid is not None:
        n_grid = as_int(n_grid, func, "n_grid", 16)
    truth = mixture_pieces(tw, tm, tv) if tw.shape[0] == 1 else None
    lo = x.min(axis=1) - GRID_SDS * h
    hi = x.max(axis=1) + GRID_SDS * h
    hi = np.maximum(hi, lo + 1e-9 * (1.0 + np.abs(lo)))  # h = 0 and one distinct point
    with np.errstate(divide="ignore", invalid="ignore"):
        need = np.nan_to_num((hi - lo) / h * _GRID_PER_H, nan=_GRID_MAX, posinf=_GRID_MAX)
    m_row = np.clip(need, _GRID_MIN, _GRID_MAX).astype(int) if n_grid is None else np.full(b, n_grid)
    out = np.empty(b)
    # chains in groups of similar grid sizes, each group's (rows, M) arrays ~ _CHUNK samples:
    # bounded memory even when a collapsed chain (tiny h) needs the largest grid
    order = np.argsort(m_row, kind="stable")
    start = 0
    while start < b:
        m = int(m_row[order[start]])
        rows = order[start : start + max(1, _CHUNK // m)]
        m = int(m_row[rows].max())
        rows = rows[: max(1, _CHUNK // m)]
        step = (hi[rows] - lo[rows]) / (m - 1)
        grid = lo[rows, None] + step[:, None] * np.arange(m)
        cdf, pdf = _kde_on_grid(x[rows], h[rows], lo[rows], step, m)
        per_call = max(1, CHUNK_LEVELS // m)
        for r0 in range(0, len(rows), per_call):
            sl = slice(r0, r0 + per_call)
            target = truth if truth is not None else mixture_pieces(tw[rows[sl]], tm[rows[sl]], tv[rows[sl]])
            w2sq = w2_from_pieces(quantile_pieces(grid[sl], cdf[sl], pdf[sl]), target)
            out[rows[sl]] = np.sqrt(np.maximum(w2sq, 0.0))
        start += len(rows)
    return out
