"""Gaussian kernel density estimates of batches of d-dimensional chains, and their sliced metrics.

The fitted model of a chain with training points x_1..x_N (d-dimensional) and kernel covariance H
is the mixture (1/N) sum_i N(x_i, H). As ``scipy.stats.gaussian_kde``, a bandwidth rule sets
H = (the data's covariance, ddof 1) * factor**2 with Scott's factor N^(-1/(d+4)) or Silverman's
(N (d + 2) / 4)^(-1/(d+4)); a fixed bandwidth h sets H = h**2 I.

Sliced metrics (:mod:`sweep.families._sliced`): the projection of a KDE onto a unit direction u is
the 1-D KDE of the points u.x_i with kernel variance u^T H u. A 1-D law of weighted point masses
convolved with a Gaussian (and, for the swiss roll's truth, a uniform) kernel is tabulated on a
grid of spacing <= sd / 16 by linear binning and an FFT convolution with the kernel's CDF
increments and density (as :mod:`sweep.families._kde` does in 1-D); its quantile function is then
the monotone cubic interpolant and W2 between two of them is integrated exactly. The binning
widens a kernel by step**2 / 6 in variance on average, which the kernel is narrowed by. A
generator truth is tabulated once per direction with spacing noise / 4.
"""

from __future__ import annotations

import numbers

import numpy as np
from scipy import fft, special

from sweep.families._checks import as_generator, as_int, fail
from sweep.families._gmmnd import as_points
from sweep.families._linalg import psd_factor
from sweep.families._quantiles1d import CHUNK_LEVELS, GRID_SDS, quantile_pieces, w2_from_pieces
from sweep.families._sliced import TAIL_LEVELS, SlicedTruth

RULES = ("scott", "silverman")
_GRID_PER_SD = 16
_TRUTH_PER_SD = 4
_GRID_MIN, _GRID_MAX = 512, 1 << 15
# grid points per FFT batch (rows x points), to bound memory
_CHUNK = 1 << 20


def kernel_covariance(x, rule="scott") -> np.ndarray:
    """Kernel covariance H (B, d, d) of each chain's KDE (module docstring); ``rule`` is "scott",
    "silverman" or a fixed bandwidth h > 0."""
    func = "kernel_covariance"
    x = as_points(x, func, min_points=2)
    b, n, d = x.shape
    if isinstance(rule, str):
        if rule not in RULES:
            raise fail(func, "rule", f"a str among {set(RULES)} or a float in (0, inf)", rule)
        factor = n ** (-1.0 / (d + 4)) if rule == "scott" else (n * (d + 2) / 4.0) ** (-1.0 / (d + 4))
        centred = x - x.mean(axis=1, keepdims=True)
        return np.matmul(np.swapaxes(centred, 1, 2), centred) * (factor * factor / (n - 1))
    if isinstance(rule, (bool, np.bool_)) or not isinstance(rule, numbers.Real) or not np.isfinite(rule) or rule <= 0:
        raise fail(func, "rule", "a float in (0, inf) (a fixed bandwidth)", rule)
    return np.broadcast_to(float(rule) ** 2 * np.eye(d), (b, d, d)).copy()


def sample_kde(x, kernel, m, *, rng) -> np.ndarray:
    """m samples (B, m, d) of each chain's KDE: a uniformly chosen training point (with
    replacement) plus N(0, H) noise. Two chain-leading draws: indices (B, m), normals (B, m, d)."""
    func = "sample_kde"
    x = as_points(x, func)
    m = as_int(m, func, "m", 1)
    rng = as_generator(rng, func)
    b, n, d = x.shape
    idx = rng.integers(0, n, size=(b, m))
    out = np.take_along_axis(x, idx[:, :, None], axis=1)
    z = rng.standard_normal((b, m, d))
    out += np.matmul(z, np.swapaxes(psd_factor(np.asarray(kernel, dtype=float)), 1, 2))
    return out


def kde_moments(x, kernel) -> tuple[np.ndarray, np.ndarray]:
    """Mean (B, d) and covariance (B, d, d) of each KDE: the data's mean, and the data's
    covariance with ddof 0 plus H (exactly)."""
    x = as_points(x, "kde_moments")
    mean = x.mean(axis=1)
    centred = x - mean[:, None, :]
    return mean, np.matmul(np.swapaxes(centred, 1, 2), centred) / x.shape[1] + kernel


def _kernel_tables(sd, box, step, lags):
    """CDF increments over one grid step and density (R, L) at the lags of the kernel
    N(0, sd**2), convolved with the uniform law on [0, box] where box > 0."""
    z = lags * step[:, None]
    s = np.maximum(sd, 1e-300)[:, None]
    gauss = special.ndtr(z / s), np.exp(-0.5 * (z / s) ** 2) / (np.sqrt(2.0 * np.pi) * s)
    if box is None or not np.any(box > 0):
        cdf, pdf = gauss
    else:
        width = np.maximum(box, 1e-300)[:, None]
        psi = lambda t: t * special.ndtr(t) + np.exp(-0.5 * t * t) / np.sqrt(2.0 * np.pi)  # integral of ndtr
        boxed_cdf = s / width * (psi(z / s) - psi((z - width) / s))
        boxed_pdf = (special.ndtr(z / s) - special.ndtr((z - width) / s)) / width
        use = (box > 0)[:, None]
        cdf, pdf = np.where(use, boxed_cdf, gauss[0]), np.where(use, boxed_pdf, gauss[1])
    return np.diff(cdf, axis=1), pdf[:, 1:]


def tabulate(points, weights, sd, lo, hi, m, box=None, half=None):
    """Grid, CDF and density (R, m) each of 1-D laws sum_i w_i K(x - p_i) on lo + i * step.

    points, weights : (R, M) (weights summing to 1 per row, or None for equal weights); sd : (R,)
    kernel standard deviations; box : (R,) widths of a uniform kernel factor (None: Gaussian);
    half : the kernel table's reach in steps (default: what the widest row needs; a value that
    depends on m alone makes every row's result independent of the other rows).
    Linear binning of the masses on the grid, then FFT convolutions with the kernel's CDF
    increments over one step and with its density (one transform of the binned masses serves both).
    Linear binning spreads a point mass at fraction t of a step over the two nodes: variance
    t (1 - t) step**2, step**2 / 6 on average; the Gaussian kernel is narrowed by that much to
    compensate (down to half its sd at most).
    """
    r, n = points.shape
    step = (hi - lo) / (m - 1)
    sd = np.sqrt(np.maximum(sd * sd - step * step / 6.0, 0.25 * sd * sd))
    pos = (points - lo[:, None]) / step[:, None]
    i0 = np.clip(np.floor(pos).astype(np.intp), 0, m - 2)
    t = pos - i0
    mass = np.full((r, n), 1.0 / n) if weights is None else weights
    flat = (np.arange(r) * m)[:, None] + i0
    binned = (
        np.bincount(flat.ravel(), (mass * (1.0 - t)).ravel(), r * m)
        + np.bincount((flat + 1).ravel(), (mass * t).ravel(), r * m)
    ).reshape(r, m)
    if half is None:
        reach = GRID_SDS * np.max(sd / step, initial=0.0) + (0.0 if box is None else np.max(box / step, initial=0.0))
        half = int(np.ceil(reach)) + 2
    lags = np.arange(-half, half + 2)
    inc, pdf_k = _kernel_tables(sd, box, step, lags)
    size = fft.next_fast_len(m + inc.shape[1])
    spectrum = fft.rfft(binned, size, axis=1)
    inc = fft.irfft(spectrum * fft.rfft(inc, size, axis=1), size, axis=1)
    pdf = fft.irfft(spectrum * fft.rfft(pdf_k, size, axis=1), size, axis=1)
    window = slice(half - 1, half - 1 + m)  # output index i + half - 1 is node i
    grid = lo[:, None] + step[:, None] * np.arange(m)
    return grid, np.cumsum(inc[:, window], axis=1), np.maximum(pdf[:, window], 0.0)


def grid_size(lo, hi, sd, per_sd: int = _GRID_PER_SD) -> np.ndarray:
    """Grid points per row: spacing <= sd / per_sd, between 512 and 32768."""
    with np.errstate(divide="ignore", invalid="ignore"):
        need = np.nan_to_num((hi - lo) / sd * per_sd, nan=_GRID_MAX, posinf=_GRID_MAX)
    return np.clip(need, _GRID_MIN, _GRID_MAX).astype(int)


def quantile_at(planes: np.ndarray, levels) -> np.ndarray:
    """Values of one row's piecewise cubic quantile function (5, 1, M + 1) at levels (P,)."""
    levels = np.asarray(levels, dtype=float)
    x, f, c1, c2, c3 = planes[:, 0]
    piece = np.clip(np.searchsorted(f[1:], levels, side="right"), 0, f.size - 1)
    t = levels - f[piece]
    return x[piece] + t * (c1[piece] + t * (c2[piece] + t * c3[piece]))


def shape_truth(shape, u: np.ndarray) -> SlicedTruth:
    """A generator's projections onto the directions u (M, d), tabulated once (see
    :meth:`sweep.families._generators.Shape.projection`)."""
    pieces, tails = [], []
    for direction in u:
        pos, w, start, width = shape.projection(direction)
        sd, box = np.array([shape.noise]), np.array([width])
        lo = np.array([pos.min() + start - GRID_SDS * shape.noise])
        hi = np.array([pos.max() + start + width + GRID_SDS * shape.noise])
        # spacing noise / 4: a truth's grid is as long as the shape (8000 points for the swiss roll at
        # noise 0.1 with noise / 16, and merging them dominated W2's cost)
        m = int(grid_size(lo, hi, sd, _TRUTH_PER_SD)[0])
        grid, cdf, pdf = tabulate((pos + start)[None], w[None], sd, lo, hi, m, box if width > 0 else None)
        planes = quantile_pieces(grid, cdf, pdf)
        pieces.append(planes)
        tails.append(quantile_at(planes, TAIL_LEVELS))
    return SlicedTruth.of_pieces(u, pieces, np.array(tails))


def _projected(x, kernel, u):
    return x @ u, np.sqrt(np.maximum(np.einsum("bij,i,j->b", kernel, u, u), 0.0))


def sliced_w2_kde(truth: SlicedTruth, x, kernel) -> np.ndarray:
    """Sliced W2 (B,) from each KDE (points (B, N, d), kernels (B, d, d)) to the truth.

    Chains go in groups of equal grid sizes, each group's arrays ~2**20 values: memory stays
    bounded even when a collapsed chain (a tiny kernel) needs the largest grid. A chain's result
    depends on its own grid size only (the kernel table's reach is the bound (m - 1) / 2 + 3 steps:
    the grid spans the points +- 9 sd, so 9 sd <= (m - 1) / 2 steps), not on the other chains of
    its block: the stream rules' bit-for-bit contract holds for the metrics too.
    """
    b = x.shape[0]
    total = np.zeros(b)
    for i, direction in enumerate(truth.u):
        p, sd = _projected(x, kernel, direction)
        lo, hi = p.min(axis=1) - GRID_SDS * sd, p.max(axis=1) + GRID_SDS * sd
        hi = np.maximum(hi, lo + 1e-9 * (1.0 + np.abs(lo)))  # sd 0 and one distinct point
        sizes = grid_size(lo, hi, sd)
        order, start = np.argsort(sizes, kind="stable"), 0
        while start < b:
            m = int(sizes[order[start]])
            same = int(np.searchsorted(sizes[order[start:]], m, side="right"))
            rows = order[start : start + min(same, max(1, _CHUNK // m))]
            grid, cdf, pdf = tabulate(p[rows], None, sd[rows], lo[rows], hi[rows], m, half=(m - 1) // 2 + 3)
            per = max(1, CHUNK_LEVELS // m)
            for r0 in range(0, len(rows), per):
                sl = slice(r0, r0 + per)
                w2sq = w2_from_pieces(quantile_pieces(grid[sl], cdf[sl], pdf[sl]), truth.pieces[i])
                total[rows[sl]] += np.maximum(w2sq, 0.0)
            start += len(rows)
    return np.sqrt(total / len(truth.u))


def sliced_tail_kde(truth: SlicedTruth, x, kernel) -> np.ndarray:
    """Mean over the directions of each KDE's probability beyond the projected truth's 1% and 99%
    quantiles (B,); a zero kernel counts the training points."""
    total = np.zeros(x.shape[0])
    for i, direction in enumerate(truth.u):
        p, sd = _projected(x, kernel, direction)
        lo_q, hi_q = truth.tails[i]
        s = sd[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            below = np.where(s > 0, special.ndtr((lo_q - p) / s), (p < lo_q) * 1.0)
            above = np.where(s > 0, special.ndtr((p - hi_q) / s), (p > hi_q) * 1.0)
        total += (below + above).mean(axis=1)
    return total / len(truth.u)


__all__ = [
    "RULES",
    "kernel_covariance",
    "sample_kde",
    "kde_moments",
    "tabulate",
    "shape_truth",
    "sliced_w2_kde",
    "sliced_tail_kde",
]
