"""E-step and M-step kernels of batched 1-D Gaussian-mixture EM.

Rows are chains, columns samples. On this kind of machine ``np.exp`` and ``np.log`` cost about
20 times an add, so the E-step is written to call them as little as possible:

* Responsibilities are taken relative to a reference component, the widest one of each chain:
  ``s = 1 + sum_j exp(z_j - z_ref)`` needs k - 1 exponentials per sample instead of k (plus the
  max-subtraction of a textbook logsumexp). Because the reference is the widest, each exponent
  ``z_j - z_ref`` is a downward parabola in x, so its maximum over the data range is known
  exactly beforehand; a chain whose exponent could overflow takes the stable path instead.
* ``sum_n log(s_n)`` is the log of a product: multiplying s in a short pairwise tree before
  taking logs divides the number of logs by up to 32. ``s >= 1`` so nothing underflows, and the
  tree depth is chosen from the same exponent bound so that nothing overflows.
* ``sum_n z_ref(x_n)`` is a quadratic in x: it comes from the per-chain sums of x and x**2.

The data are centred per chain beforehand, which keeps the expanded quadratics accurate.
"""
from __future__ import annotations

import numpy as np

LOG_2PI = float(np.log(2.0 * np.pi))
# scikit-learn adds 10 * eps to every component's responsibility sum (nk) in the M-step.
NK_EPS = 10.0 * np.finfo(np.float64).eps
# Largest exponent allowed on the fast path (exp overflows above ~709.78).
EXP_SAFE = 700.0
_MAX_TREE = 5


def log_coefficients(w, m, v):
    """Per-component log-density z(x) = a + b x + c x**2 (plus log weight), and a0 = a + ..."""
    with np.errstate(divide="ignore"):
        head = np.log(w) - 0.5 * (LOG_2PI + np.log(v))
    prec = 1.0 / v
    return head, head - 0.5 * m * m * prec, m * prec, -0.5 * prec


def _parabola_max(al, be, ga, lo, hi):
    """Max over x in [lo, hi] of al + be x + ga x**2 with ga <= 0 (all (R, j); lo, hi (R, 1))."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ends = np.maximum(al + lo * (be + ga * lo), al + hi * (be + ga * hi))
        xv = -be / (2.0 * ga)
        top = al - be * be / (4.0 * ga)
    inside = (ga < 0) & (xv > lo) & (xv < hi)
    return np.where(inside, np.maximum(ends, top), ends)


def _sum_log(s, levels):
    """sum(log(s), axis=1) for s >= 1, through a pairwise product tree of depth ``levels``."""
    t = s
    for _ in range(levels):
        half = t.shape[1] // 2
        if half == 0:
            break
        u = t[:, :half] * t[:, half:2 * half]
        if t.shape[1] % 2:
            u[:, 0] *= t[:, -1]
        t = u
    return np.log(t).sum(axis=1)


def _tree_levels(top, k):
    # a tree of depth L multiplies at most 2**(L+1) values, each <= k * exp(top)
    ub = max(float(np.max(top, initial=0.0)), 0.0) + np.log(k)
    return int(np.clip(np.floor(np.log2(EXP_SAFE / ub)) - 1, 0, _MAX_TREE))


def _stable(x, x2, head, m, c, stats):
    """Textbook max-shifted logsumexp over all k components, for the rare unsafe chains."""
    z = (x[:, None, :] - m[:, :, None]) ** 2
    z *= c[:, :, None]
    z += head[:, :, None]
    mx = z.max(axis=1)
    z -= mx[:, None, :]
    np.exp(z, out=z)
    s = z.sum(axis=1)
    ll = (mx + np.log(s)).sum(axis=1)
    if not stats:
        return ll, None
    z /= s[:, None, :]
    return ll, (z.sum(axis=2), np.vecdot(z, x[:, None, :]), np.vecdot(z, x2[:, None, :]))


def estep(x, x2, sx, sxx, lo, hi, ebuf, sbuf, w, m, v, *, stats=True):
    """One E-step on R chains.

    Parameters
    ----------
    x, x2 : (R, N) centred data and its square (x2 may be None when ``stats`` is False).
    sx, sxx, lo, hi : (R,) sums of x and x**2, min and max of each row.
    ebuf, sbuf : work buffers with at least R rows, shapes (>=R, max(k-1, 1), N), (>=R, N).
    w, m, v : (R, k) current weights, means, variances.

    Returns
    -------
    ll : (R,) mean log-likelihood per sample (scikit-learn's ``log_prob_norm``).
    stats : tuple (nk, S1, S2) of (R, k) responsibility-weighted sums of 1, x, x**2 (raw, no
        10 * eps), or None.
    """
    r_, n = x.shape
    k = w.shape[1]
    head, a, b, c = log_coefficients(w, m, v)
    order = np.argsort(-v, axis=1, kind="stable")  # widest component first = reference
    a, b, c = (np.take_along_axis(t, order, axis=1) for t in (a, b, c))
    ll = n * a[:, 0] + b[:, 0] * sx + c[:, 0] * sxx
    al, be, ga = a[:, 1:] - a[:, :1], b[:, 1:] - b[:, :1], c[:, 1:] - c[:, :1]
    top = _parabola_max(al, be, ga, lo[:, None], hi[:, None]).max(axis=1, initial=-np.inf)
    fast = top <= EXP_SAFE  # False for NaN too
    s = sbuf[:r_]
    e = ebuf[:r_, : k - 1]
    with np.errstate(over="ignore", invalid="ignore"):
        for j in range(k - 1):
            ej = e[:, j, :]
            np.multiply(x, ga[:, j, None], out=ej)
            ej += be[:, j, None]
            ej *= x
            ej += al[:, j, None]
        np.exp(e, out=e)
        np.sum(e, axis=1, out=s)
        s += 1.0
        if k > 1:
            ll += _sum_log(s, _tree_levels(top[fast], k))
    out = None
    if stats:
        np.divide(1.0, s, out=s)
        e *= s[:, None, :]
        sorted_stats = [
            np.concatenate([s.sum(axis=1)[:, None], e.sum(axis=2)], axis=1),
            np.concatenate([np.vecdot(s, x)[:, None], np.vecdot(e, x[:, None, :])], axis=1),
            np.concatenate([np.vecdot(s, x2)[:, None], np.vecdot(e, x2[:, None, :])], axis=1),
        ]
        out = tuple(np.empty((r_, k)) for _ in range(3))
        for dst, src in zip(out, sorted_stats):
            np.put_along_axis(dst, order, src, axis=1)
    slow = np.flatnonzero(~fast)
    if slow.size:
        sub_x2 = x2[slow] if x2 is not None else None
        ll_s, st_s = _stable(x[slow], sub_x2, head[slow], m[slow], -0.5 / v[slow], stats)
        ll[slow] = ll_s
        if stats:
            for dst, src in zip(out, st_s):
                dst[slow] = src
    return ll / n, out


def mstep(nk_raw, s1, s2, reg_covar):
    """scikit-learn's M-step for 'full' covariances in 1-D: (weights, means, variances)."""
    nk = nk_raw + NK_EPS
    means = s1 / nk
    # sum_n r_n (x_n - mean)**2 expanded; clipped at 0 against rounding before reg_covar.
    var = np.maximum(s2 - 2.0 * means * s1 + means * means * nk_raw, 0.0) / nk + reg_covar
    return nk / nk.sum(axis=1, keepdims=True), means, var
