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
# Exponents are clipped from below here: libm's exp takes a slow path (twice slower) for
# |x| > 512 and far slower ones for subnormal results, and a responsibility of exp(-500) ~ 1e-217
# instead of something smaller changes nothing representable in the sums it enters.
EXP_FLOOR = -500.0
_MAX_TREE = 5
# Rows per block of the per-sample work: ~2**17 samples, i.e. 1 MB per temporary array.
BLOCK_SAMPLES = 1 << 17


def block_rows(n: int) -> int:
    """Rows per block for N samples per row."""
    return max(1, BLOCK_SAMPLES // n)


def log_coefficients(w, m, v):
    """Coefficients of z_j(x) = log(w_j Normal(x; m_j, v_j)) = a + b x + c x**2, all (R, k).

    Returns (head, a, b, c) with head = log w - log(2 pi v) / 2, the value at x = m.
    """
    with np.errstate(divide="ignore"):
        head = np.log(w) - 0.5 * (LOG_2PI + np.log(v))
    prec = 1.0 / v
    return head, head - 0.5 * m * m * prec, m * prec, -0.5 * prec


def _parabola_range(al, be, ga, lo, hi):
    """Max and min over x in [lo, hi] of the concave al + be x + ga x**2 (ga <= 0).

    All (R, j); lo, hi (R, 1). The max is at the vertex clipped into the range (an end when
    ga == 0), the min at one of the ends.
    """
    f_lo, f_hi = al + lo * (be + ga * lo), al + hi * (be + ga * hi)
    xv = np.where(ga < 0, np.clip(be / (-2.0 * ga), lo, hi), np.where(be > 0, hi, lo))
    return al + xv * (be + ga * xv), np.minimum(f_lo, f_hi)


def _sum_log(s, levels):
    """sum(log(s), axis=1) for s >= 1, through a pairwise product tree of depth ``levels``."""
    t = s
    for _ in range(levels):
        half = t.shape[1] // 2
        if half == 0:
            break
        u = t[:, :half] * t[:, half : 2 * half]
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
    np.maximum(z, EXP_FLOOR, out=z)
    np.exp(z, out=z)
    s = z.sum(axis=1)
    ll = (mx + np.log(s)).sum(axis=1)
    if not stats:
        return ll, None
    z /= s[:, None, :]
    return ll, (z.sum(axis=2), np.vecdot(z, x[:, None, :]), np.vecdot(z, x2[:, None, :]))


def _fast_rows(x, x2, al, be, ga, clamp, levels, e, s, stats):
    """The per-sample work of the fast path on a block of rows.

    Returns sum_n log(s_n) (R,) and, if ``stats``, the responsibility-weighted sums of 1, x,
    x**2 of the reference component (3, R) and of the others (3, k-1, R).
    """
    for j in range(al.shape[1]):
        ej = e[j]
        np.multiply(x, ga[:, j, None], out=ej)
        ej += be[:, j, None]
        ej *= x
        ej += al[:, j, None]
    if clamp:
        np.maximum(e, EXP_FLOOR, out=e)
    np.exp(e, out=e)
    if al.shape[1]:
        np.add(e[0], 1.0, out=s)
        for j in range(1, al.shape[1]):
            s += e[j]
        sum_log = _sum_log(s, levels)
    else:
        s.fill(1.0)
        sum_log = np.zeros(len(x))
    if not stats:
        return sum_log, None, None
    np.divide(1.0, s, out=s)  # the reference component's responsibility
    e *= s
    return (
        sum_log,
        np.stack([s.sum(axis=1), np.vecdot(s, x), np.vecdot(s, x2)]),
        np.stack([e.sum(axis=2), np.vecdot(e, x), np.vecdot(e, x2)]),
    )


def estep(x, x2, sx, sxx, lo, hi, ebuf, sbuf, w, m, v, *, stats=True):
    """One E-step on R chains.

    The per-sample work runs over blocks of ``ebuf.shape[1]`` rows, so that its temporaries
    stay in cache (about 15% faster than whole-batch passes once a batch exceeds the cache).

    Parameters
    ----------
    x, x2 : (R, N) centred data and its square (x2 unused, may be None, when not ``stats``).
    sx, sxx, lo, hi : (R,) sums of x and x**2, min and max of each row.
    ebuf, sbuf : work buffers of shapes (max(k-1, 1), rb, N) and (rb, N).
    w, m, v : (R, k) current weights, means, variances.

    Returns
    -------
    ll : (R,) mean log-likelihood per sample (scikit-learn's ``log_prob_norm``).
    stats : tuple (nk, S1, S2) of (R, k) responsibility-weighted sums of 1, x, x**2 (raw, no
        10 * eps), or None.
    """
    r_, n = x.shape
    k = w.shape[1]
    rb = ebuf.shape[1]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        head, a, b, c = log_coefficients(w, m, v)
        # reference = widest component; the others in cyclic order after it
        ri = np.arange(r_)[:, None]
        ref = np.argmax(v, axis=1)[:, None]
        oth = (ref + np.arange(1, k)) % k
        a0, b0, c0 = a[ri, ref], b[ri, ref], c[ri, ref]
        ll = n * a0[:, 0] + b0[:, 0] * sx + c0[:, 0] * sxx
        al, be, ga = a[ri, oth] - a0, b[ri, oth] - b0, c[ri, oth] - c0
        top, bottom = _parabola_range(al, be, ga, lo[:, None], hi[:, None])
        fast = top.max(axis=1, initial=-np.inf) <= EXP_SAFE  # False for NaN too
        clamp = not (bottom[fast] >= EXP_FLOOR).all()
        levels = _tree_levels(top[fast], k)
        ref_st, oth_st = np.empty((3, r_)), np.empty((3, k - 1, r_))
        for r0 in range(0, r_, rb):
            blk = slice(r0, min(r0 + rb, r_))
            rows = blk.stop - blk.start
            if not fast[blk].any():  # e.g. the first step of "random_from_data"
                continue
            sum_log, ref_b, oth_b = _fast_rows(
                x[blk],
                None if x2 is None else x2[blk],
                al[blk],
                be[blk],
                ga[blk],
                clamp,
                levels,
                ebuf[: k - 1, :rows],
                sbuf[:rows],
                stats,
            )
            ll[blk] += sum_log
            if stats:
                ref_st[:, blk], oth_st[:, :, blk] = ref_b, oth_b
        out = None
        if stats:
            out = tuple(np.empty((r_, k)) for _ in range(3))
            for dst, ref_val, oth_val in zip(out, ref_st, oth_st):
                dst[ri[:, 0], ref[:, 0]] = ref_val
                dst[ri, oth] = oth_val.T
        slow = np.flatnonzero(~fast)
        for r0 in range(0, len(slow), max(1, rb // k)):  # (rows, k, N) temporaries
            sl = slow[r0 : r0 + max(1, rb // k)]
            ll_s, st_s = _stable(x[sl], None if x2 is None else x2[sl], head[sl], m[sl], -0.5 / v[sl], stats)
            ll[sl] = ll_s
            if stats:
                for dst, src in zip(out, st_s):
                    dst[sl] = src
    return ll / n, out


def mstep(nk_raw, s1, s2, reg_covar):
    """scikit-learn's M-step for 'full' covariances in 1-D: (weights, means, variances)."""
    nk = nk_raw + NK_EPS
    means = s1 / nk
    # sum_n r_n (x_n - mean)**2 expanded; clipped at 0 against rounding before reg_covar.
    var = np.maximum(s2 - 2.0 * means * s1 + means * means * nk_raw, 0.0) / nk + reg_covar
    return nk / nk.sum(axis=1, keepdims=True), means, var
