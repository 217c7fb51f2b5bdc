"""Compiled W2 between batches of 1-D Gaussian mixtures and one shared mixture (``kernel: numba``).

The same method as :func:`sweep.families._quantiles1d.w2_mixtures`, one chain at a time in a
compiled loop: the chain's CDF and density on its :func:`~sweep.families._quantiles1d.mixture_grid`
(k runs merged in order), its monotone cubic quantile pieces (:func:`~sweep.families._quantiles1d.
quantile_pieces`), and the exact integral of the squared difference against the shared side's
pieces on the merged levels (:func:`~sweep.families._quantiles1d.w2_from_pieces`), found by a
two-pointer walk instead of a sort. The numpy code spends most of its time in the row sort,
the gathers and the temporaries of (R, 2 k per) arrays; here a chain costs its k * per CDF and
density evaluations and one pass over the merged levels.

Every chain is computed alone, with sequential sums in a fixed order and no ``fastmath``, so
its bits do not depend on the other chains of its block. They differ from the numpy kernel's
by rounding (libm's erf/erfc/exp for scipy's, a sequential sum for numpy's pairwise one):
~1e-15 relative.
"""

from __future__ import annotations

import math

import numpy as np

from sweep._numba import jit

_SQRT1_2 = 0.7071067811865476
_SQRT_2PI = math.sqrt(2.0 * math.pi)


# One compiled function: sweep._numba.jit compiles lazily, so a kernel cannot call another
# jitted helper (it is a plain Python wrapper until its first call); the parts are marked below.
@jit(error_model="numpy")
def _w2_rows(w, m, v, t, pb):
    rows, k = w.shape
    per = t.shape[0]
    size = k * per
    mb = pb.shape[1] - 1
    grid, cdf, pdf = np.empty(size), np.empty(size), np.empty(size)
    pa = np.zeros((5, size + 1))
    sd = np.empty(k)
    heads = np.empty(k, dtype=np.int64)
    out = np.empty(rows)
    for r in range(rows):
        for j in range(k):
            sd[j] = math.sqrt(v[r, j])
            heads[j] = 0
        # -- the grid: the k sorted runs m_j + sd_j t merged (ties: lower j first, as a stable sort)
        for i in range(size):
            best, best_x = -1, 0.0
            for j in range(k):
                if heads[j] < per:
                    x = m[r, j] + sd[j] * t[heads[j]]
                    if best < 0 or x < best_x:
                        best, best_x = j, x
            grid[i] = best_x
            heads[best] += 1
        # -- CDF and density; the normal CDF formed as cephes' ndtr (scipy's): erf near 0,
        # erfc in the tails, so that neither tail loses its relative precision
        top = 0.0
        for i in range(size):
            x = grid[i]
            c, p = 0.0, 0.0
            for j in range(k):
                z = (x - m[r, j]) / sd[j]
                y = z * _SQRT1_2
                if abs(y) < _SQRT1_2:
                    phi = 0.5 + 0.5 * math.erf(y)
                else:
                    phi = 0.5 * math.erfc(abs(y))
                    if y > 0.0:
                        phi = 1.0 - phi
                c += w[r, j] * phi
                p += (w[r, j] / (sd[j] * _SQRT_2PI)) * math.exp(-0.5 * z * z)
            # levels: the CDF clipped to [0, 1] and made non-decreasing
            c = min(max(c, 0.0), 1.0)
            top = c if i == 0 else max(top, c)
            cdf[i], pdf[i] = top, p
        # -- the quantile pieces (quantile_pieces): piece i + 1 covers [F_i, F_i+1]
        pa[0, 0], pa[1, 0] = grid[0], cdf[0]
        pa[2, 0] = pa[3, 0] = pa[4, 0] = 0.0
        pa[2, size] = pa[3, size] = pa[4, size] = 0.0
        for i in range(size):
            pa[0, i + 1], pa[1, i + 1] = grid[i], cdf[i]
        for i in range(size - 1):
            dx, du = grid[i + 1] - grid[i], cdf[i + 1] - cdf[i]
            # a sliver of subnormal mass has no usable slope: flat
            sloped = du > dx * 1e-290
            secant = dx / du if sloped else 0.0
            alpha = 1.0 / (pdf[i] * secant)
            beta = 1.0 / (pdf[i + 1] * secant)
            if sloped and alpha * alpha + beta * beta <= 9.0:
                m0, m1 = secant * alpha, secant * beta
                pa[2, i + 1] = m0
                pa[3, i + 1] = (3.0 * secant - 2.0 * m0 - m1) / du
                pa[4, i + 1] = (m0 + m1 - 2.0 * secant) / (du * du)
            else:
                pa[2, i + 1], pa[3, i + 1], pa[4, i + 1] = secant, 0.0, 0.0
        # -- the exact integral on the merged levels (w2_from_pieces; ties: a's level first)
        ia, ib = 0, 0
        total, start = 0.0, 0.0
        for s in range(size + mb):
            take_a = ia < size and (ib >= mb or pa[1, ia + 1] <= pb[1, ib + 1])
            u = pa[1, ia + 1] if take_a else pb[1, ib + 1]
            if s > 0:  # [start, u] lies under piece ia of a and piece ib of b
                h = u - start
                ta, tb = start - pa[1, ia], start - pb[1, ib]
                a1, a2, a3 = pa[2, ia], pa[3, ia], pa[4, ia]
                b1, b2, b3 = pb[2, ib], pb[3, ib], pb[4, ib]
                e0 = (pa[0, ia] + ta * (a1 + ta * (a2 + ta * a3))) - (pb[0, ib] + tb * (b1 + tb * (b2 + tb * b3)))
                e1 = (a1 + ta * (2.0 * a2 + 3.0 * ta * a3)) - (b1 + tb * (2.0 * b2 + 3.0 * tb * b3))
                e2 = (a2 + 3.0 * ta * a3) - (b2 + 3.0 * tb * b3)
                e3 = a3 - b3
                acc = e2 * e3 / 3.0 + h * (e3 * e3 / 7.0)
                acc = (e2 * e2 + 2.0 * e1 * e3) / 5.0 + h * acc
                acc = (e0 * e3 + e1 * e2) / 2.0 + h * acc
                acc = (e1 * e1 + 2.0 * e0 * e2) / 3.0 + h * acc
                acc = e0 * e1 + h * acc
                acc = e0 * e0 + h * acc
                total += h * acc
            if take_a:
                ia += 1
            else:
                ib += 1
            start = u
        out[r] = math.sqrt(max(total, 0.0))
    return out


def w2_rows_against(w, m, v, shared_planes, t) -> np.ndarray:
    """W2 (R,) between mixtures (R, k) and one distribution given by its quantile pieces.

    Parameters
    ----------
    w, m, v : ndarray (R, k)
        Weights, means and variances (checked by the caller).
    shared_planes : ndarray (5, 1, M + 1)
        :func:`~sweep.families._quantiles1d.quantile_pieces` of the shared side (e.g. the truth).
    t : ndarray (per,)
        The standardised grid of :func:`~sweep.families._quantiles1d.mixture_grid`.
    """
    return _w2_rows(
        np.ascontiguousarray(w, dtype=np.float64),
        np.ascontiguousarray(m, dtype=np.float64),
        np.ascontiguousarray(v, dtype=np.float64),
        np.ascontiguousarray(t, dtype=np.float64),
        np.ascontiguousarray(shared_planes[:, 0, :]),
    )
