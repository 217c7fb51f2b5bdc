"""Compiled EM for 1-D Gaussian mixtures (the gmm1d family's ``kernel: numba``).

:func:`fit_block` runs the whole EM loop of every chain of a block in one compiled call: per
iteration, one pass over the chain's samples computes the E-step (log-likelihood and
responsibilities) fused with the sufficient statistics, then the M-step, scikit-learn's
convergence rule (``abs(change) < tol``, ``n_iter`` counted as it does), ``reg_covar`` and
``NK_EPS`` as :mod:`sweep.families._em1d` defines them; a chain stops on convergence, after
``max_iter`` iterations, or when its fit turns non-finite, exactly as the numpy loop stops it.

The E-step follows :mod:`sweep.families._estep1d`: responsibilities relative to the widest
component (k - 1 exponentials per sample), its exponents bounded beforehand over the data range,
and the textbook max-shifted path for a chain whose exponents could overflow. What differs:

* ``exp`` is written out (range reduction to ``r`` in [-ln2/2, ln2/2], a degree-13 polynomial,
  ``2**k`` built from integer bits) so that the compiler vectorises it: numba's ``math.exp`` is
  a scalar libm call, several times slower than numpy's SIMD one here.
* ``sum_n log(s_n)`` is the log of one product, kept in [1, 2) by moving its binary exponent into
  an integer after every factor (``s <= k exp(700)`` cannot overflow it): one ``log`` per chain.
* Sums run over fixed lanes (sample ``i`` goes to lane ``i % CHUNK``), reduced in lane order at
  the end, so that they vectorise without ``fastmath`` reassociation. All of it depends on the
  chain's own samples only: a chain's bits are the same alone and in any block.

Bits differ from the numpy kernel's (other roundings, an ``exp`` within ~2e-16 relative), so a
chain's values depend on the kernel; both reproduce scikit-learn to rounding.
"""

from __future__ import annotations

import numpy as np

from sweep._numba import compile_helpers, jit
from sweep.families._estep1d import EXP_FLOOR, EXP_SAFE, LOG_2PI, NK_EPS

#: Samples per chunk, and lanes of the sums: the chunk's buffers stay in L1.
CHUNK = 256

_LOG2E = 1.4426950408889634
# ln 2 split so that kd * _LN2_HI is exact for |kd| < 2**20 (fdlibm's constants)
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_LN2 = 0.6931471805599453
# adding 1.5 * 2**52 rounds to an integer that sits in the low bits of the sum's mantissa
_SHIFT = 6755399441055744.0
_SHIFT_BITS = 0x4338000000000000
_MANTISSA = 0x000FFFFFFFFFFFFF
_ONE_BITS = 0x3FF0000000000000
# 1 / n! for n = 2 .. 13, the Taylor coefficients of exp(r) (truncation error < 5e-18 relative)
_C2, _C3, _C4, _C5 = 1 / 2, 1 / 6, 1 / 24, 1 / 120
_C6, _C7, _C8, _C9 = 1 / 720, 1 / 5040, 1 / 40320, 1 / 362880
_C10, _C11, _C12, _C13 = 1 / 3628800, 1 / 39916800, 1 / 479001600, 1 / 6227020800


def _exp_into(z, out, tb, ti, pw, pwf, n):
    """out[:n] = exp(z[:n]) for z in [EXP_FLOOR, EXP_SAFE + log k] (no overflow, no subnormal);
    tb/ti and pw/pwf are float64/int64 views of two work buffers. Three plain loops, each
    vectorised by the compiler."""
    for i in range(n):
        tb[i] = z[i] * _LOG2E + _SHIFT
    for i in range(n):
        pw[i] = (ti[i] - _SHIFT_BITS + 1023) << 52  # the bits of 2**round(z log2 e)
    for i in range(n):
        kd = tb[i] - _SHIFT
        r = (z[i] - kd * _LN2_HI) - kd * _LN2_LO
        p = _C12 + r * _C13
        p = _C11 + r * p
        p = _C10 + r * p
        p = _C9 + r * p
        p = _C8 + r * p
        p = _C7 + r * p
        p = _C6 + r * p
        p = _C5 + r * p
        p = _C4 + r * p
        p = _C3 + r * p
        p = _C2 + r * p
        p = 1.0 + r * p
        p = 1.0 + r * p
        out[i] = p * pwf[i]


def _moments(x, acc):
    """(sum x, sum x**2, min, max) of a chain, over the lanes of ``acc`` (4+, CHUNK)."""
    n = x.shape[0]
    lanes = min(CHUNK, n)
    acc[:2, :lanes] = 0.0
    acc[2, :lanes] = x[:lanes]
    acc[3, :lanes] = x[:lanes]
    for c0 in range(0, n, CHUNK):
        xs = x[c0 : c0 + min(CHUNK, n - c0)]
        for i in range(xs.shape[0]):
            xi = xs[i]
            acc[0, i] += xi
            acc[1, i] += xi * xi
            acc[2, i] = xi if xi < acc[2, i] else acc[2, i]
            acc[3, i] = xi if xi > acc[3, i] else acc[3, i]
    while lanes > FOLDED:  # folded as _fold_sums does, min and max with the sums
        half = lanes // 2
        for i in range(half):
            _fold_moments(acc, i, half + i)
        if lanes % 2:
            _fold_moments(acc, 0, lanes - 1)
        lanes = half
    sx, sxx, lo, hi = 0.0, 0.0, acc[2, 0], acc[3, 0]
    for i in range(lanes):
        sx += acc[0, i]
        sxx += acc[1, i]
        lo = acc[2, i] if acc[2, i] < lo else lo
        hi = acc[3, i] if acc[3, i] > hi else hi
    return sx, sxx, lo, hi


def _fold_moments(acc, i, j):
    """Lane j of the moments' sums, min and max into lane i."""
    acc[0, i] += acc[0, j]
    acc[1, i] += acc[1, j]
    acc[2, i] = acc[2, j] if acc[2, j] < acc[2, i] else acc[2, i]
    acc[3, i] = acc[3, j] if acc[3, j] > acc[3, i] else acc[3, i]


def _stable(x, head, m, c, stats, st, zk):
    """Textbook max-shifted log-sum-exp over all k components, one sample at a time, for the
    rare chains whose exponents could overflow (and the non-finite ones: NaN propagates)."""
    k = m.shape[0]
    st[:, :] = 0.0
    total = 0.0
    for i in range(x.shape[0]):
        xi = x[i]
        mx = -np.inf
        for j in range(k):
            d = xi - m[j]
            zk[j] = d * d * c[j] + head[j]
            mx = zk[j] if zk[j] > mx else mx
        s = 0.0
        for j in range(k):
            e = zk[j] - mx
            e = EXP_FLOOR if e < EXP_FLOOR else e
            zk[j] = np.exp(e)
            s += zk[j]
        total += mx + np.log(s)
        if stats:
            for j in range(k):
                r = zk[j] / s
                st[0, j] += r
                st[1, j] += r * xi
                st[2, j] += r * xi * xi
    return total


def _estep(x, mom, w, m, v, stats, st, work):
    """Mean log-likelihood per sample of one chain; with ``stats``, its responsibility-weighted
    sums of 1, x, x**2 per component into ``st`` (3, k) (raw, no NK_EPS).

    ``mom`` is (sum x, sum x**2, min, max) of the centred data x, ``work`` the buffers of
    :func:`_workspace`.
    """
    e, zb, sb, tb, prod, pw, pexp, scratch, acc, zk, coef, oth = work
    n, k = x.shape[0], w.shape[0]
    head, a, b, c, al, be, ga = coef[0], coef[1], coef[2], coef[3], coef[4], coef[5], coef[6]
    ref = 0
    for j in range(k):
        head[j] = np.log(w[j]) - 0.5 * (LOG_2PI + np.log(v[j]))
        prec = 1.0 / v[j]
        a[j], b[j], c[j] = head[j] - 0.5 * m[j] * m[j] * prec, m[j] * prec, -0.5 * prec
        if v[j] > v[ref]:  # the widest component (the first of equals), as np.argmax
            ref = j
    sx, sxx, lo, hi = mom
    # the others' exponents relative to the reference: al + be x + ga x**2, concave (ga <= 0),
    # so their maximum over [lo, hi] is at the clipped vertex
    peak = -np.inf
    for q in range(k - 1):
        j = (ref + 1 + q) % k
        oth[q] = j
        al[q], be[q], ga[q] = a[j] - a[ref], b[j] - b[ref], c[j] - c[ref]
        if ga[q] < 0:
            xv = min(max(be[q] / (-2.0 * ga[q]), lo), hi)
        else:
            xv = hi if be[q] > 0 else lo
        top = al[q] + xv * (be[q] + ga[q] * xv)
        peak = top if not top <= peak else peak  # NaN sticks
    if not peak <= EXP_SAFE:
        return _stable(x, head, m, c, stats, st, zk) / n
    ll = n * a[ref] + b[ref] * sx + c[ref] * sxx
    lanes = min(CHUNK, n)
    tb_bits, pw_f, prod_bits = tb.view(np.int64), pw.view(np.float64), prod.view(np.int64)
    acc[:, :lanes] = 0.0
    prod[:lanes] = 1.0
    pexp[:lanes] = 0
    for c0 in range(0, n, CHUNK):
        nc = min(CHUNK, n - c0)
        xs = x[c0 : c0 + nc]
        sb[:nc] = 1.0  # the reference component's term
        for q in range(k - 1):
            A, B, G = al[q], be[q], ga[q]
            for i in range(nc):
                z = A + xs[i] * (B + G * xs[i])
                zb[i] = EXP_FLOOR if z < EXP_FLOOR else z
            eq = e[q]
            _exp_into(zb, eq, tb, tb_bits, pw, pw_f, nc)
            for i in range(nc):
                sb[i] += eq[i]
        # the product of s per lane, kept in [1, 2): its binary exponent moves into pexp
        for i in range(nc):
            prod[i] *= sb[i]
        for i in range(nc):
            bits = prod_bits[i]
            pexp[i] += (bits >> 52) - 1023
            prod_bits[i] = (bits & _MANTISSA) | _ONE_BITS
        if not stats:
            continue
        for i in range(nc):
            sb[i] = 1.0 / sb[i]  # the reference component's responsibility
        r0 = 3 * ref
        for i in range(nc):
            r = sb[i]
            rx = r * xs[i]
            acc[r0, i] += r
            acc[r0 + 1, i] += rx
            acc[r0 + 2, i] += rx * xs[i]
        for q in range(k - 1):
            eq, row = e[q], 3 * oth[q]
            for i in range(nc):
                r = eq[i] * sb[i]
                rx = r * xs[i]
                acc[row, i] += r
                acc[row + 1, i] += rx
                acc[row + 2, i] += rx * xs[i]
    # the lanes folded pairwise (vectorised) down to FOLDED, then summed in lane order
    lanes = _fold_products(prod, prod_bits, pexp, lanes)
    power = 0
    scratch_f = scratch.view(np.float64)
    scratch_f[0] = 1.0
    for i in range(lanes):
        power += pexp[i]
        scratch_f[0] *= prod[i]
        v = scratch[0]
        power += (v >> 52) - 1023
        scratch[0] = (v & _MANTISSA) | _ONE_BITS
    ll += np.log(scratch_f[0]) + power * _LN2
    if stats:
        folded = _fold_sums(acc, 3 * k, min(CHUNK, n))
        for j in range(k):
            for t in range(3):
                total = 0.0
                for i in range(folded):
                    total += acc[3 * j + t, i]
                st[t, j] = total
    return ll / n


#: Lanes left after folding; they are summed one by one.
FOLDED = 8


def _fold_products(prod, prod_bits, pexp, lanes):
    """Multiply the upper half of the lanes into the lower half until FOLDED or fewer are
    left (an odd last lane into lane 0), renormalising after each product; returns the count."""
    while lanes > FOLDED:
        half = lanes // 2
        for i in range(half):
            prod[i] *= prod[half + i]
            pexp[i] += pexp[half + i]
        if lanes % 2:
            prod[0] *= prod[lanes - 1]
            pexp[0] += pexp[lanes - 1]
        for i in range(half):
            v = prod_bits[i]
            pexp[i] += (v >> 52) - 1023
            prod_bits[i] = (v & _MANTISSA) | _ONE_BITS
        lanes = half
    return lanes


def _fold_sums(acc, rows, lanes):
    """Add the upper half of the lanes of acc[:rows] into the lower half until FOLDED or fewer
    are left (an odd last lane into lane 0); returns the count."""
    while lanes > FOLDED:
        half = lanes // 2
        for r in range(rows):
            for i in range(half):
                acc[r, i] += acc[r, half + i]
            if lanes % 2:
                acc[r, 0] += acc[r, lanes - 1]
        lanes = half
    return lanes


def _workspace(k):
    """The per-chunk buffers of :func:`_estep` for k components."""
    f = np.empty(CHUNK)
    return (
        np.empty((max(k - 1, 1), CHUNK)),  # exp of the others' exponents
        f.copy(),  # exponents
        f.copy(),  # s = 1 + sum exp, then 1 / s
        f.copy(),  # exp's shifted products (and their bits)
        f.copy(),  # the running product of s per lane
        np.empty(CHUNK, dtype=np.int64),  # bits of 2**k
        np.empty(CHUNK, dtype=np.int64),  # binary exponents taken out of the products
        np.empty(1, dtype=np.int64),
        np.empty((max(3 * k, 4), CHUNK)),  # lane sums of the statistics (and of the moments)
        np.empty(k),  # the stable path's per-component values
        np.empty((7, k)),  # log-density coefficients: head, a, b, c, and al, be, ga of the others
        np.empty(k, dtype=np.int64),  # the others' component indices
    )


def _mstep(st, reg_covar, w, m, v):
    """scikit-learn's M-step in 1-D (as :func:`sweep.families._estep1d.mstep`), into w, m, v."""
    k = w.shape[0]
    total = 0.0
    for j in range(k):
        nk = st[0, j] + NK_EPS
        mean = st[1, j] / nk
        q = st[2, j] - 2.0 * mean * st[1, j] + mean * mean * st[0, j]
        q = 0.0 if q < 0.0 else q  # against rounding, as numpy's path; NaN stays NaN
        w[j], m[j], v[j] = nk, mean, q / nk + reg_covar
        total += nk
    for j in range(k):
        w[j] /= total


def _fit_block(x, w, m, v, tol, max_iter, reg_covar, n_iter, converged, lower):
    """EM of every chain (row) of the centred x from w, m, v (B, k), updated in place, as
    :func:`sweep.families._em1d._run`; fills n_iter, converged and lower."""
    b, k = w.shape
    work = _workspace(k)
    st = np.empty((3, k))
    for r in range(b):
        xr = x[r]
        mom = _moments(xr, work[8])
        prev = -np.inf
        for it in range(1, max_iter + 1):
            ll = _estep(xr, mom, w[r], m[r], v[r], True, st, work)
            _mstep(st, reg_covar, w[r], m[r], v[r])
            n_iter[r], lower[r] = it, ll
            done = abs(ll - prev) < tol
            converged[r] = done
            finite = np.isfinite(ll)
            for j in range(k):
                finite = finite and np.isfinite(v[r, j])
            if done or not finite:
                break
            prev = ll


def _loglik_block(x, w, m, v, out):
    """Mean log-likelihood per sample of every chain (row) of the centred x under w, m, v."""
    b, k = w.shape
    work = _workspace(k)
    st = np.empty((3, k))
    for r in range(b):
        out[r] = _estep(x[r], _moments(x[r], work[8]), w[r], m[r], v[r], False, st, work)


_HELPERS = (
    "_exp_into",
    "_fold_moments",
    "_moments",
    "_stable",
    "_fold_products",
    "_fold_sums",
    "_estep",
    "_workspace",
    "_mstep",
)


_fit_compiled = jit(error_model="numpy")(_fit_block)
_loglik_compiled = jit(error_model="numpy")(_loglik_block)


def fit_block(x, w, m, v, *, tol, max_iter, reg_covar):
    """EM of every chain of a block in one compiled call.

    Parameters
    ----------
    x : ndarray (B, N)
        Centred samples, one chain per row (C-contiguous float64).
    w, m, v : ndarray (B, k)
        Initial weights, (centred) means and variances; not modified.
    tol, max_iter, reg_covar
        As in :func:`sweep.families._em1d.em_fit` (max_iter >= 1).

    Returns
    -------
    tuple
        (weights, means, variances, n_iter, converged, lower_bound), as the numpy loop's.
    """
    compile_helpers(globals(), _HELPERS)
    w, m, v = (np.array(a, dtype=np.float64, order="C") for a in (w, m, v))
    b = w.shape[0]
    n_iter, converged, lower = np.zeros(b, np.int64), np.zeros(b, np.bool_), np.full(b, -np.inf)
    _fit_compiled(
        np.ascontiguousarray(x), w, m, v, float(tol), int(max_iter), float(reg_covar), n_iter, converged, lower
    )
    return w, m, v, n_iter, converged, lower


def loglik_block(x, w, m, v):
    """Mean log-likelihood per sample (B,) of every chain of the centred x under w, m, v."""
    compile_helpers(globals(), _HELPERS)
    out = np.empty(x.shape[0])
    w, m, v = (np.ascontiguousarray(a, dtype=np.float64) for a in (w, m, v))
    _loglik_compiled(np.ascontiguousarray(x), w, m, v, out)
    return out
