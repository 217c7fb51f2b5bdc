"""Sampling and metrics for batches of 1-D Gaussian mixtures (B chains, k components).

Mixture parameters are (B, k) arrays of weights, means and variances. The true mixture of the
metrics may be given once, as (k_true,) arrays, and is then shared by every chain.
"""

from __future__ import annotations

import numpy as np

from sweep import _fastrng
from sweep.families._checks import as_generator, as_int, as_mixture, fail, finite_rows
from sweep.families._estep1d import block_rows, log_coefficients
from sweep.families._quantiles1d import mixture_cdf, mixture_quantile, w2_mixtures, w2_unit

# the true 1% and 99% quantiles delimit the tails of tail_mass (truth: 0.02)
TAIL_LEVELS = (0.01, 0.99)


def sample_gmm(weights, means, variances, n, *, rng, kernel: str = "numpy") -> np.ndarray:
    """Draw n samples from each chain's mixture.

    Each sample picks its component independently (so the component counts of a chain are
    Multinomial(n, weights)) and the order of the samples is exchangeable: any prefix of a
    row is itself an i.i.d. sample, which mixing policies that keep a fraction rely on.

    A chain with a non-finite parameter has diverged: it is not validated and its samples are
    NaN, so that it does not stop its block. It consumes the same random numbers as any chain,
    so the other chains' samples do not depend on it.

    Parameters
    ----------
    weights, means, variances : array_like (B, k)
    n : int
        Samples per chain, >= 1.
    rng : numpy.random.Generator
    kernel : {"numpy", "numba"}
        ``numba``: one compiled pass (:func:`sweep._fastrng.mixture`) draws each sample's
        uniform and normal in turn, one draw of the generator instead of two, with the same
        component rule; the values differ from numpy's.

    Returns
    -------
    ndarray (B, n)
    """
    func = "sample_gmm"
    w, m, v = as_mixture(weights, means, variances, func, diverged=True)
    n = as_int(n, func, "n", 1)
    rng = as_generator(rng, func)
    if kernel not in ("numpy", "numba"):
        raise fail(func, "kernel", "'numpy' or 'numba'", kernel)
    b, k = w.shape
    with np.errstate(invalid="ignore", over="ignore"):  # only in diverged rows (inf / inf)
        # inverse CDF of the categorical law; thresholds scaled by the total against rounding
        cum = np.cumsum(w, axis=1)
        cum = cum[:, :-1] / cum[:, -1:]
        if kernel == "numba":
            out = _fastrng.mixture(rng, n, cum, np.sqrt(v), m)
        else:
            u = rng.random((b, n))
            out = rng.standard_normal((b, n))
            rb = block_rows(n)  # label temporaries per block of rows stay in cache
            sd, base = np.sqrt(v).ravel(), np.arange(b) * k
            for r0 in range(0, b, rb):
                blk = slice(r0, r0 + rb)
                label = np.repeat(base[blk, None], n, axis=1)  # flat index into the (B, k) arrays
                for j in range(k - 1):
                    label += u[blk] >= cum[blk, j, None]
                out[blk] *= sd.take(label)
                out[blk] += m.ravel().take(label)
    dead = ~finite_rows(w, m, v)
    if dead.any():
        out[dead] = np.nan
    return out


def mixture_mean_var(weights, means, variances) -> tuple[np.ndarray, np.ndarray]:
    """Total mean and variance (B,) of each mixture: sum w m, and sum w (v + (m - mean)**2)."""
    w, m, v = as_mixture(weights, means, variances, "mixture_mean_var")
    mean = (w * m).sum(axis=1)
    return mean, (w * (v + (m - mean[:, None]) ** 2)).sum(axis=1)


def _fitted_and_true(func, fitted, true):
    w, m, v = as_mixture(*fitted, func)
    tw, tm, tv = as_mixture(*true, func, prefix="true_")
    if tw.shape[0] not in (1, w.shape[0]):
        raise fail(func, "true_weights", f"of shape (k,) or ({w.shape[0]}, k)", tw.shape)
    return w, m, v, tw, tm, tv


def w2_to_mixture(
    weights, means, variances, true_weights, true_means, true_variances, *, points_per_component=65, kernel="numpy"
) -> np.ndarray:
    """2-Wasserstein distance (B,) from each fitted mixture to the true one.

    Computed through the quantile functions (see :func:`sweep.families._quantiles1d.w2_mixtures`):
    each mixture's CDF and density are tabulated on ``points_per_component`` points spanning
    +- 9 sd around each of its components (the truth once, when it is given once), the quantile
    functions are monotone cubic interpolants, and the integral is exact between them. The
    error is below 2e-4 for components of any widths and weights, ~1e-5 near the truth (tested
    against the closed form for two Gaussians, and against much finer grids). It is computed in
    units of the truth's spread (:func:`sweep.families._quantiles1d.w2_unit`), so that it stays
    finite for truths of any scale (a fit some 1e145 times wider than the truth still overflows).
    ``kernel="numba"``: the same computation compiled, one chain at a time (rounding aside).
    """
    func = "w2_to_mixture"
    w, m, v, tw, tm, tv = _fitted_and_true(
        func, (weights, means, variances), (true_weights, true_means, true_variances)
    )
    per = as_int(points_per_component, func, "points_per_component", 9)
    unit = w2_unit(tw, tm, tv)
    if unit == 1.0:
        return w2_mixtures(w, m, v, tw, tm, tv, per, kernel=kernel)
    u2 = unit * unit
    return unit * w2_mixtures(w, m / unit, v / u2, tw, tm / unit, tv / u2, per, kernel=kernel)


def _log_density(x, w, m, v):
    """Stable log of the mixture densities (R, k) at x (R, M): a max-shifted logsumexp."""
    with np.errstate(divide="ignore"):
        head = np.log(w) - 0.5 * np.log(2.0 * np.pi * v)
    z = (x[:, None, :] - m[:, :, None]) ** 2
    z *= (-0.5 / v)[:, :, None]
    z += head[:, :, None]
    top = z.max(axis=1)
    z -= top[:, None, :]
    np.exp(z, out=z)
    return top + np.log(z.sum(axis=1))


# rows per chunk of the KL quadrature: about this many (row, point) values, so the temporaries
# stay in cache
_KL_CHUNK = 1 << 15


# the sized KL quadrature: a chain whose fitted components are all wider than this many steps of
# the fine grid below, and whose coarse and fine sums agree to this relative tolerance, takes the
# fine sum (a trapezoid rule converging spectrally: its own error is then far below the difference)
_SIZED_GRID = 257
_SIZED_MIN_STEPS = 4.0
_SIZED_RTOL = 1e-7


def kl_true_fitted(
    weights, means, variances, true_weights, true_means, true_variances, *, n_grid=1024, sized=False
) -> np.ndarray:
    """KL(true || fitted) (B,) in nats, by quadrature on a fixed grid, or one sized to each chain.

    With ``sized``, a chain whose every fitted component (of non-zero weight) is at least 4
    steps of a 257-point grid wide is first summed on that grid and on its every other point
    (129); when the two sums agree to 1e-7 relative (plus 1e-13), the 257-point sum is its KL
    (the rule converges at least like step**2, spectrally for smooth log q, so its error is
    below the difference: measured within 1e-8 relative of the 1024-point rule's error, and
    1e-9 of the exact value near the truth); every other chain gets the ``n_grid`` sum, bit
    for bit as without ``sized``. Near the truth this costs 257 points per chain instead of
    1024. Each chain's path depends on its own parameters only.

    The grid spans the true mixture +- 12 sd with ``n_grid`` points (tabulated once when the
    truth is given once); the integrand p (log p - log q) is summed with the grid step (the
    trapezoid rule, whose end terms are ~1e-32). The rule converges spectrally for smooth
    log q (relative error < 1e-5 while every fitted sd is >= 0.1 true sd); fitted components
    much narrower than the step put near-kinks into log q, and the relative error grows to
    ~0.1% at sd 0.01 and a few % at sd <= 0.001. Identical mixtures give 0 to ~1e-15.

    The sum is reorganised for speed, not changed: with r the widest fitted component and z_j
    the log of component j's weighted density (a quadratic in x), log q = z_r + g with
    g = log(1 + sum_j!=r exp(z_j - z_r)). The quadrature of p z_r comes from the truth's
    quadrature moments sum p x**i (i = 0, 1, 2), and g costs k - 1 exponentials and one log per
    point, where a plain logsumexp costs k and one.
    """
    func = "kl_true_fitted"
    w, m, v, tw, tm, tv = _fitted_and_true(
        func, (weights, means, variances), (true_weights, true_means, true_variances)
    )
    n_grid = as_int(n_grid, func, "n_grid", 16)
    if not sized:
        return _kl_on_grid(w, m, v, tw, tm, tv, n_grid)
    fine = _SIZED_GRID
    ts = np.sqrt(tv)
    span = (tm + 12.0 * ts).max(axis=1) - (tm - 12.0 * ts).min(axis=1)
    narrowest = np.sqrt(np.where(w > 0, v, np.inf).min(axis=1))
    tried = narrowest >= _SIZED_MIN_STEPS * span / (fine - 1)
    out = np.empty(len(w))
    if tried.any():
        rows = np.flatnonzero(tried)
        at = (slice(None),) if len(tw) == 1 else (rows,)
        truth = tuple(a[at] for a in (tw, tm, tv))
        sub = w[rows], m[rows], v[rows]
        kl_fine, kl_coarse = _kl_on_grid(*sub, *truth, fine, coarse=True)
        with np.errstate(invalid="ignore"):
            agree = np.abs(kl_fine - kl_coarse) <= _SIZED_RTOL * np.abs(kl_fine) + 1e-13
        out[rows[agree]] = kl_fine[agree]
        tried[rows[~agree]] = False
    if not tried.all():
        rest = np.flatnonzero(~tried)
        at = (slice(None),) if len(tw) == 1 else (rest,)
        out[rest] = _kl_on_grid(w[rest], m[rest], v[rest], tw[at], tm[at], tv[at], n_grid)
    return out


def _kl_on_grid(w, m, v, tw, tm, tv, n_grid, *, coarse=False):
    """kl_true_fitted on its fixed grid of ``n_grid`` points (checked arguments); ``coarse``:
    also the sum on every other point (n_grid odd: the grid of (n_grid + 1) / 2 points, twice
    the step), from the same integrand values, as a second array."""
    ts = np.sqrt(tv)
    lo, hi = (tm - 12.0 * ts).min(axis=1), (tm + 12.0 * ts).max(axis=1)
    step = (hi - lo) / (n_grid - 1)
    grid = lo[:, None] + step[:, None] * np.arange(n_grid)
    log_p = _log_density(grid, tw, tm, tv)
    weight = np.exp(log_p) * step[:, None]  # quadrature weights p(x_i) dx
    p_log_p = (weight * log_p).sum(axis=1)
    moments = np.stack([weight.sum(axis=1), (weight * grid).sum(axis=1), (weight * grid * grid).sum(axis=1)])
    b, k, shared = w.shape[0], w.shape[1], tw.shape[0] == 1
    _, a, lin, quad = log_coefficients(w, m, v)  # z_j = a_j + lin_j x + quad_j x**2
    rows = np.arange(b)
    ref = np.argmax(np.where(w > 0, v, -np.inf), axis=1)
    a_r, lin_r, quad_r = a[rows, ref], lin[rows, ref], quad[rows, ref]
    at = slice(None) if shared else rows
    out = p_log_p[at] - (a_r * moments[0, at] + lin_r * moments[1, at] + quad_r * moments[2, at])
    if coarse:
        weight2, grid2 = 2.0 * weight[:, ::2], grid[:, ::2]
        moments2 = np.stack([weight2.sum(axis=1), (weight2 * grid2).sum(axis=1), (weight2 * grid2 * grid2).sum(axis=1)])
        out2 = (weight2 * log_p[:, ::2]).sum(axis=1)[at] - (
            a_r * moments2[0, at] + lin_r * moments2[1, at] + quad_r * moments2[2, at]
        )
    others = (ref[:, None] + np.arange(1, k)) % k
    da, dl, dq = (c[rows[:, None], others] - c_r[:, None] for c, c_r in ((a, a_r), (lin, lin_r), (quad, quad_r)))
    chunk = max(1, _KL_CHUNK // n_grid)
    with np.errstate(invalid="ignore", over="ignore"):
        for r0 in range(0, b if k > 1 else 0, chunk):
            sl = slice(r0, r0 + chunk)
            x = grid if shared else grid[sl]
            # d_j = z_j - z_r; g = top + log(exp(-top) + sum_j exp(d_j - top)), top = max(0, d)
            d = [da[sl, j, None] + x * (dl[sl, j, None] + x * dq[sl, j, None]) for j in range(k - 1)]
            top = np.maximum(d[0], 0.0)
            for dj in d[1:]:
                np.maximum(top, dj, out=top)
            total = np.exp(-top)
            for dj in d:
                dj -= top
                total += np.exp(dj, out=dj)
            g = np.log(total, out=total)
            g += top
            out[sl] -= (g * (weight if shared else weight[sl])).sum(axis=1)
            if coarse:
                out2[sl] -= (g[:, ::2] * (weight2 if shared else weight2[sl])).sum(axis=1)
    return (out, out2) if coarse else out


def true_tails(true_weights, true_means, true_variances, func="tail_mass"):
    """The true mixture's 1% and 99% quantiles, (Rt, 2)."""
    tw, tm, tv = as_mixture(true_weights, true_means, true_variances, func, prefix="true_")
    return mixture_quantile(TAIL_LEVELS, tw, tm, tv)


# the true tail quantiles of the last few truths: a block asks for the same ones at every
# recorded generation, and the Newton iterations cost as much as the tail mass of ~500 chains
_TRUTH_QUANTILES: dict[bytes, np.ndarray] = {}


def _truth_quantiles(tw, tm, tv):
    key = b"".join(np.ascontiguousarray(a).tobytes() for a in (tw, tm, tv)) + bytes(str(tw.shape), "ascii")
    q = _TRUTH_QUANTILES.get(key)
    if q is None:
        if len(_TRUTH_QUANTILES) >= 8:
            _TRUTH_QUANTILES.clear()
        q = _TRUTH_QUANTILES[key] = mixture_quantile(TAIL_LEVELS, tw, tm, tv)
        q.flags.writeable = False
    return q


def tail_mass(weights, means, variances, true_weights, true_means, true_variances) -> np.ndarray:
    """Fitted probability (B,) below the true 1% quantile plus above the true 99% quantile."""
    func = "tail_mass"
    w, m, v, tw, tm, tv = _fitted_and_true(
        func, (weights, means, variances), (true_weights, true_means, true_variances)
    )
    q = _truth_quantiles(tw, tm, tv)
    sd = np.sqrt(v)
    return (mixture_cdf(q[:, :1], w, m, sd) + mixture_cdf(q[:, 1:], w, m, sd, upper=True))[:, 0]
