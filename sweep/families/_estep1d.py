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

Single precision (``precision="float32"`` of :func:`sweep.families._em1d.em_fit`): the per-sample
work (exponents, ``exp``, responsibilities, the product tree and its logs) runs in float32, whose
``exp`` and ``log`` are vectorised several times wider than float64's, and the sufficient
statistics are accumulated in float64 (each float32 responsibility is widened before its
products with the float64 data are summed). Only chains where float32 is safe take it: their
exponents must stay below :data:`EXP_SAFE32` (float32 ``exp`` overflows at ~88.7) and their
conditioning bound ``max |a| + |b| |x| + |c| x**2`` over the data range below :data:`COND32`
(the rounding error of an exponent is ~1e-7 times that bound); the others run in float64.
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
# float32: largest exponent of the fast path, the floor of the exponents (float32 exp takes a
# very slow path for subnormal results; exp(-80) ~ 2e-35 is negligible against the 10 * eps of
# nk for any N < 1e19), and the largest conditioning bound (exponent errors up to ~1e-4).
EXP_SAFE32 = 80.0
EXP_FLOOR32 = -80.0
COND32 = 1024.0
# float32 product trees stay below exp(88) (float32 overflows at ~exp(88.7))
TREE_SAFE32 = 88.0
# float32: the reference component's statistics come from the row totals less the others' while
# its responsibility sum is at least this share of N (their relative error then stays below
# ~1e-6; typically ~1e-9)
SUBTRACT_MIN = 0.1
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
    """sum(log(s), axis=1) for s >= 1, each row through a pairwise product tree of its own depth
    ``levels`` (R,) ints, or one int for all rows.

    A row's depth depends on that row alone, so its bits do not depend on which chains share the
    call (a shared depth, the smallest any row allows, made a chain's likelihood, and so at worst
    a convergence check, depend on its batch). Rows whose tree ends at a level take their logs
    there; the others go on halving.
    """
    t = s
    if np.ndim(levels) == 0:  # one depth for every row (the usual case): no per-row bookkeeping
        for _ in range(int(levels)):
            if t.shape[1] < 2:
                break
            t = _halve(t)
        # float32 logs are summed in float64
        return np.log(t).sum(axis=1, dtype=np.float64)
    # the rows that end at a level take their logs there (gathered: few rows, short by then);
    # the others, and the finished ones with them, go on halving with no gather
    out = np.empty(s.shape[0])
    left = np.ones(s.shape[0], dtype=bool)
    for level in range(int(levels.max(initial=0)) + 1):
        done = left & (levels <= level) if t.shape[1] >= 2 else left
        if done.any():
            out[done] = np.log(t[done]).sum(axis=1, dtype=np.float64)
            left &= ~done
            if not left.any():
                break
        t = _halve(t)
    return out


def _halve(t):
    """One level of the product tree: neighbouring halves multiplied (an odd last value folded
    into the first product)."""
    half = t.shape[1] // 2
    u = t[:, :half] * t[:, half : 2 * half]
    if t.shape[1] % 2:
        u[:, 0] *= t[:, -1]
    return u


def _tree_levels(top, k, safe=EXP_SAFE):
    """Each row's product-tree depth (R,) from its exponents' upper bounds ``top`` (R, k-1).

    A tree of depth L multiplies at most 2**(L+1) values, each <= k * exp(top).
    """
    ub = np.maximum(top.max(axis=1, initial=0.0), 0.0) + np.log(k)
    return np.clip(np.floor(np.log2(safe / ub)) - 1, 0, _MAX_TREE).astype(np.int64)


#: The product tree stops halving before rows get shorter than this: below it the halvings'
#: allocations cost more than the logs they save (measured at N = 100: no tree is 6% faster).
_MIN_WIDTH = 64


def _width_levels(n):
    """The deepest tree that keeps rows of n values at least :data:`_MIN_WIDTH` wide (a rule of
    n alone, so every chain of a call gets the same cap)."""
    return max(int(np.floor(np.log2(n / _MIN_WIDTH))), 0) if n >= _MIN_WIDTH else 0


def _uniform(values, rows):
    """The value every selected row has (a Python scalar), or None when they differ."""
    chosen = values[rows]
    first = chosen[0]
    return first.item() if (chosen == first).all() else None


def _clamp(e, clamp, floor):
    """Raise exponents below ``floor`` in the rows that need it (``clamp`` (R,) bools, or one
    bool for all rows), so that no row's values depend on its neighbours'."""
    if np.ndim(clamp) == 0:
        if clamp:
            np.maximum(e, floor, out=e)
    elif clamp.all():
        np.maximum(e, floor, out=e)
    elif clamp.any():
        rows = np.flatnonzero(clamp)
        e[:, rows] = np.maximum(e[:, rows], floor)


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


def _exp_sums(x, al, be, ga, clamp, levels, e, s, floor):
    """The per-sample exponentials of a block of rows, in the precision of ``x``, ``e``, ``s``:
    e[j] = exp(al_j + be_j x + ga_j x**2) of the non-reference components, s = 1 + sum_j e[j]
    (the reference component's term is 1), and sum_n log(s_n) (R,) in float64."""
    for j in range(al.shape[1]):
        ej = e[j]
        np.multiply(x, ga[:, j, None], out=ej)
        ej += be[:, j, None]
        ej *= x
        ej += al[:, j, None]
    _clamp(e, clamp, floor)
    np.exp(e, out=e)
    if not al.shape[1]:
        s.fill(1.0)
        return np.zeros(len(x))
    np.add(e[0], 1.0, out=s)
    for j in range(1, al.shape[1]):
        s += e[j]
    return _sum_log(s, levels)


def _fast_rows(x, x2, al, be, ga, clamp, levels, e, s, stats):
    """The per-sample work of the fast path on a block of rows.

    Returns sum_n log(s_n) (R,) and, if ``stats``, the responsibility-weighted sums of 1, x,
    x**2 of the reference component (3, R) and of the others (3, k-1, R).
    """
    sum_log = _exp_sums(x, al, be, ga, clamp, levels, e, s, EXP_FLOOR)
    if not stats:
        return sum_log, None, None
    np.divide(1.0, s, out=s)  # the reference component's responsibility
    e *= s
    return (
        sum_log,
        np.stack([s.sum(axis=1), np.vecdot(s, x), np.vecdot(s, x2)]),
        np.stack([e.sum(axis=2), np.vecdot(e, x), np.vecdot(e, x2)]),
    )


def _single_rows(x32, x, x2, totals, al, be, ga, clamp, levels, e, s, r64, stats):
    """:func:`_fast_rows` in float32 (``x32``, ``e``, ``s`` float32), with the statistics
    accumulated in float64: each responsibility row is widened into ``r64`` and summed against
    the float64 data ``x`` (``x2`` is unused).

    The responsibilities sum to 1, so the reference component's statistics are the row totals
    ``totals`` (3, R) (N, sum x, sum x**2) less the others'. That difference loses relative
    accuracy as the reference's share shrinks, so below :data:`SUBTRACT_MIN` of N a row takes
    its reference statistics from their own sums instead.
    """
    al, be, ga = (c.astype(np.float32) for c in (al, be, ga))
    sum_log = _exp_sums(x32, al, be, ga, clamp, levels, e, s, EXP_FLOOR32)
    if not stats:
        return sum_log, None, None

    def sums(r):
        np.copyto(r64, r)  # widen: the sums below run in float64
        s0 = r64.sum(axis=1)
        np.multiply(r64, x, out=r64)  # sum r x**2 as sum (r x) x: no x**2 array to keep and compact
        return np.stack([s0, r64.sum(axis=1), np.vecdot(r64, x)])

    np.divide(1.0, s, out=s)  # the reference component's responsibility
    e *= s
    others = np.stack([sums(e[j]) for j in range(al.shape[1])], axis=1)  # (3, k-1, R)
    ref = totals - others.sum(axis=1)
    few = ref[0] < SUBTRACT_MIN * x.shape[1]
    if few.any():
        ref = np.where(few, sums(s), ref)
    return sum_log, ref, others


def estep(x, x2, sx, sxx, lo, hi, ebuf, sbuf, w, m, v, *, stats=True, single=None):
    """One E-step on R chains.

    The per-sample work runs over blocks of ``ebuf.shape[1]`` rows, so that its temporaries
    stay in cache (about 15% faster than whole-batch passes once a batch exceeds the cache).

    Parameters
    ----------
    x, x2 : (R, N) centred data and its square (x2 may be None: unused when not ``stats``,
        computed where needed in single precision).
    sx, sxx, lo, hi : (R,) sums of x and x**2, min and max of each row.
    ebuf, sbuf : work buffers of shapes (max(k-1, 1), rb, N) and (rb, N).
    w, m, v : (R, k) current weights, means, variances.
    single : None or tuple (x32, ebuf32, sbuf32)
        To run the chains where it is safe in float32 (module docstring): the data in float32
        and float32 buffers shaped as ``ebuf`` and ``sbuf``. None: everything in float64.

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
        peak = top.max(axis=1, initial=-np.inf)
        fast = peak <= EXP_SAFE  # False for NaN too
        if single is None:
            f32 = np.zeros(r_, dtype=bool)
        else:
            big = np.maximum(np.abs(lo), np.abs(hi))[:, None]
            cond = (np.abs(al) + big * (np.abs(be) + big * np.abs(ga))).max(axis=1, initial=0.0)
            f32 = (peak <= EXP_SAFE32) & (cond <= COND32)
        ref_st, oth_st = np.empty((3, r_)), np.empty((3, k - 1, r_))
        for rows, kernel in ((fast & ~f32, "double"), (f32, "single")):
            if not rows.any():
                continue
            # whole blocks of consecutive rows when every chain takes this path (no copies)
            idx = None if rows.all() else np.flatnonzero(rows)
            count = r_ if idx is None else len(idx)
            if kernel == "single":
                safe, floor = TREE_SAFE32, EXP_FLOOR32
            else:
                safe, floor = EXP_SAFE, EXP_FLOOR
            # per row, never over the group: a chain's bits must not depend on its batch; one
            # scalar where every row of the group agrees (the usual case: no per-block indexing)
            clamp = ~(bottom >= floor).all(axis=1)
            levels = np.minimum(_tree_levels(top, k, safe), _width_levels(n))
            uniform_clamp, uniform_levels = _uniform(clamp, rows), _uniform(levels, rows)
            for r0 in range(0, count, rb):
                blk = slice(r0, min(r0 + rb, count))
                at = blk if idx is None else idx[blk]
                nrow = blk.stop - blk.start
                xs = x[at]
                # x2 is None in float32 E-steps and when no statistics are wanted
                x2s = x2[at] if x2 is not None else (xs * xs if stats and kernel == "double" else None)
                coef = (
                    al[at],
                    be[at],
                    ga[at],
                    clamp[at] if uniform_clamp is None else uniform_clamp,
                    levels[at] if uniform_levels is None else uniform_levels,
                )
                if kernel == "single":
                    x32, e32, s32 = single
                    totals = np.stack([np.full(nrow, float(n)), sx[at], sxx[at]])
                    out = _single_rows(
                        x32[at], xs, x2s, totals, *coef, e32[: k - 1, :nrow], s32[:nrow], sbuf[:nrow], stats
                    )
                else:
                    out = _fast_rows(xs, x2s, *coef, ebuf[: k - 1, :nrow], sbuf[:nrow], stats)
                sum_log, ref_b, oth_b = out
                ll[at] += sum_log
                if stats:
                    ref_st[:, at], oth_st[:, :, at] = ref_b, oth_b
        out = None
        if stats:
            out = tuple(np.empty((r_, k)) for _ in range(3))
            for dst, ref_val, oth_val in zip(out, ref_st, oth_st):
                dst[ri[:, 0], ref[:, 0]] = ref_val
                dst[ri, oth] = oth_val.T
        slow = np.flatnonzero(~fast & ~f32)
        for r0 in range(0, len(slow), max(1, rb // k)):  # (rows, k, N) temporaries
            sl = slow[r0 : r0 + max(1, rb // k)]
            xs = x[sl]
            x2s = x2[sl] if x2 is not None else (xs * xs if stats else None)
            ll_s, st_s = _stable(xs, x2s, head[sl], m[sl], -0.5 / v[sl], stats)
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
