"""Sliced distances between batches of d-dimensional distributions and a fixed truth.

The d-dimensional families measure their distance to the truth through one-dimensional
projections: for a unit direction u, the projection of a Gaussian mixture is the 1-D mixture of
weights w, means u.m and variances u^T C u, and that of a Gaussian KDE is the 1-D KDE of the
projected points with kernel variance u^T H u. The sliced 2-Wasserstein distance is

    SW2(p, q) = ( integral over unit directions u of W2(u#p, u#q)**2 du )**(1/2)

(the uniform measure on the sphere; SW2 <= W2, and SW2 = |m - m'| / sqrt(d) for two translates).
Each projected W2 is computed through the quantile functions (:mod:`sweep.families._quantiles1d`,
error < 2e-4), and the integral over directions by a fixed rule (:func:`directions`): equally
spaced angles in 2-D, where the integrand is smooth and periodic and the rule converges
geometrically; a Fibonacci lattice on the sphere in 3-D; a Halton point set mapped to the sphere
beyond, a quasi-Monte-Carlo rule whose error falls like ~1/M. Measured (tests): 16 angles in 2-D
are within 1e-3 of the exact integral (4e-3 for a covariance collapsed onto a line, whose
projected sd has a near-kink), 64 Fibonacci directions in 3-D within 2e-3.

The sliced tail mass is the mean over the same directions of the projected fit's probability
beyond the projected truth's 1% and 99% quantiles: 0.02 for the truth, and the 1-D definition for
d = 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from sweep.families._quantiles1d import CHUNK_LEVELS, mixture_cdf, mixture_pieces, mixture_quantile, w2_from_pieces

# the true 1% and 99% quantiles delimit the tails of the tail mass (truth: 0.02)
TAIL_LEVELS = (0.01, 0.99)


def directions(d: int, count: int) -> np.ndarray:
    """A fixed rule of ``count`` unit directions (count, d), each of weight 1 / count.

    d = 1: the single direction 1. d = 2: the angles pi (i + 1/2) / count (half the circle
    suffices: u and -u give the same projected W2). d = 3: the Fibonacci lattice (z = 1 - (2i + 1)
    / count, longitudes stepping by the golden angle), 60x more accurate than Halton points at 64
    directions. d >= 4: the first ``count`` points of the unscrambled Halton sequence (after its
    first, which is 0), mapped to normal vectors by the inverse normal CDF and normalised.
    """
    if d == 1:
        return np.ones((1, 1))
    i = np.arange(count) + 0.5
    if d == 2:
        angle = np.pi * i / count
        return np.stack([np.cos(angle), np.sin(angle)], axis=1)
    if d == 3:
        z = 1.0 - 2.0 * i / count
        longitude = np.pi * (1.0 + 5.0**0.5) * i
        r = np.sqrt(1.0 - z * z)
        return np.stack([r * np.cos(longitude), r * np.sin(longitude), z], axis=1)
    from scipy.stats import qmc  # here, not at import: scipy.stats takes seconds to import in every worker

    points = qmc.Halton(d, scramble=False).random(count + 1)[1:]
    normal = special.ndtri(points)
    return normal / np.linalg.norm(normal, axis=1, keepdims=True)


def project(means: np.ndarray, covariances: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Projected means (..., k) and variances (..., k) of components (..., k, d[, d]) onto u (d,)."""
    return means @ u, np.einsum("...ij,i,j->...", covariances, u, u)


@dataclass
class SlicedTruth:
    """The truth's projections onto a fixed rule of directions, tabulated once.

    ``pieces[i]`` are the quantile pieces (5, 1, L) of the projection onto ``u[i]`` and
    ``tails[i]`` its 1% and 99% quantiles.
    """

    u: np.ndarray
    pieces: list
    tails: np.ndarray

    @classmethod
    def of_mixture(cls, weights, means, covariances, u: np.ndarray) -> SlicedTruth:
        """From one mixture: weights (k,), means (k, d), covariances (k, d, d)."""
        w = np.asarray(weights, dtype=float)[None]
        pieces, tails = [], []
        for direction in u:
            pm, pv = project(np.asarray(means, dtype=float), np.asarray(covariances, dtype=float), direction)
            pieces.append(mixture_pieces(w, pm[None], pv[None]))
            tails.append(mixture_quantile(TAIL_LEVELS, w, pm[None], pv[None])[0])
        return cls(u, pieces, np.array(tails))

    @classmethod
    def of_pieces(cls, u: np.ndarray, pieces: list, tails: np.ndarray) -> SlicedTruth:
        """From precomputed per-direction pieces and tail quantiles (the KDE's generator truths)."""
        return cls(u, pieces, np.asarray(tails, dtype=float))


# projected variances are floored here (relative to the largest): a singular fitted covariance
# (a chain that collapsed onto a line) projects to a zero variance, which the tabulation cannot take
_VAR_FLOOR = 1e-24


def sliced_w2_mixture(truth: SlicedTruth, weights, means, covariances) -> np.ndarray:
    """Sliced W2 (B,) from each fitted mixture (B, k[, d[, d]]) to the truth.

    All (chain, direction) pairs are rows of one batch of 1-D problems, processed in chunks of
    about CHUNK_LEVELS merged levels (a loop over directions ran 3x slower at d = 2, k = 2).
    """
    w = np.asarray(weights, dtype=float)
    b, k = w.shape
    u = truth.u
    pm = np.einsum("bkd,md->bmk", means, u).reshape(b * len(u), k)
    pv = np.einsum("bkij,mi,mj->bmk", covariances, u, u).reshape(b * len(u), k)
    pv = np.maximum(pv, _VAR_FLOOR * max(float(np.max(pv, initial=0.0)), 1.0))
    rows_w = np.repeat(w, len(u), axis=0)
    truth_planes = np.concatenate(truth.pieces, axis=1)  # (5, M, L): one row per direction
    levels = 65 * k + truth_planes.shape[2]
    step = max(1, CHUNK_LEVELS // levels)
    total = np.empty(b * len(u))
    for r0 in range(0, total.size, step):
        sl = slice(r0, min(r0 + step, total.size))
        fitted = mixture_pieces(rows_w[sl], pm[sl], pv[sl])
        total[sl] = w2_from_pieces(fitted, truth_planes[:, np.arange(sl.start, sl.stop) % len(u)])
    return np.sqrt(np.maximum(total, 0.0).reshape(b, len(u)).mean(axis=1))


def sliced_tail_mixture(truth: SlicedTruth, weights, means, covariances) -> np.ndarray:
    """Mean over the directions of each fitted mixture's probability beyond the projected
    truth's 1% and 99% quantiles (B,)."""
    w = np.asarray(weights, dtype=float)
    total = np.zeros(w.shape[0])
    for i, direction in enumerate(truth.u):
        pm, pv = project(means, covariances, direction)
        sd = np.sqrt(np.maximum(pv, 1e-300))
        lo, hi = np.full((w.shape[0], 1), truth.tails[i, 0]), np.full((w.shape[0], 1), truth.tails[i, 1])
        total += (mixture_cdf(lo, w, pm, sd) + mixture_cdf(hi, w, pm, sd, upper=True))[:, 0]
    return total / len(truth.u)
