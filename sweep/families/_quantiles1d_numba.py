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
by rounding (libm's erf and exp, cephes' erfc on the density's exponential, a sequential sum
for numpy's pairwise one): ~1e-15 relative. A component's terms that are exactly 0 or 1 (far
from it) are not computed.
"""

from __future__ import annotations

import math

import numpy as np

from sweep._numba import jit

_SQRT1_2 = 0.7071067811865476
_SQRT_2PI = math.sqrt(2.0 * math.pi)
# beyond these standardised distances a component's terms are exact without erf/exp: below
# -40 both its CDF and density underflow to 0; above 9 its CDF rounds to 1 (1 - 1.1e-19)
_NEGLIGIBLE_Z = 40.0
_CDF_ONE_Z = 9.0
# cephes' erfc(a) = exp(-a**2) P(a) / Q(a) for 1 <= a < 8, R(a) / S(a) beyond (Q and S monic);
# the normal CDF's tail 0.5 erfc(|z| / sqrt 2) from them is within 3e-13 relative of scipy's ndtr
_ERFC_P = (
    2.46196981473530512524e-10,
    5.64189564831068821977e-1,
    7.46321056442269912687e0,
    4.86371970985681366614e1,
    1.96520832956077098242e2,
    5.26445194995477358631e2,
    9.34528527171957607540e2,
    1.02755188689515710272e3,
    5.57535335369399327526e2,
)
_ERFC_Q = (
    1.32281951154744992508e1,
    8.67072140885989742329e1,
    3.54937778887819891062e2,
    9.75708501743205489753e2,
    1.82390916687909736289e3,
    2.24633760818710981792e3,
    1.65666309194161350182e3,
    5.57535340817727675546e2,
)
_ERFC_R = (
    5.64189583547755073984e-1,
    1.27536670759978104416e0,
    5.01905042251180477414e0,
    6.16021097993053585195e0,
    7.40974269950448939160e0,
    2.97886665372100240670e0,
)
_ERFC_S = (
    2.26052863220117276590e0,
    9.39603524938001434673e0,
    1.20489539808096656605e1,
    1.70814450747565897222e1,
    9.60896809063285878198e0,
    3.36907645100081516050e0,
)
# reciprocals: the integral's constant divisions as multiplications
_THIRD, _FIFTH, _SEVENTH = 1.0 / 3.0, 1.0 / 5.0, 1.0 / 7.0


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
                if z < -_NEGLIGIBLE_Z:
                    continue  # both terms are exactly 0 (underflow)
                gauss = math.exp(-0.5 * z * z)
                p += (w[r, j] / (sd[j] * _SQRT_2PI)) * gauss
                if z > _CDF_ONE_Z:
                    c += w[r, j]  # 1 - ndtr(-z) rounds to 1 exactly
                    continue
                y = z * _SQRT1_2
                a = abs(y)
                if a < 1.0:
                    phi = 0.5 + 0.5 * math.erf(y)
                else:
                    # cephes' erfc for a >= 1, exp(-a**2) times a rational function, with the
                    # density's exponential: no second transcendental call
                    if a < 8.0:
                        num, den = _ERFC_P[0], 1.0
                        for d in range(1, 9):
                            num = num * a + _ERFC_P[d]
                        for d in range(8):
                            den = den * a + _ERFC_Q[d]
                    else:
                        num, den = _ERFC_R[0], 1.0
                        for d in range(1, 6):
                            num = num * a + _ERFC_R[d]
                        for d in range(6):
                            den = den * a + _ERFC_S[d]
                    phi = 0.5 * gauss * num / den
                    if y > 0.0:
                        phi = 1.0 - phi
                c += w[r, j] * phi
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
                acc = e2 * e3 * _THIRD + h * (e3 * e3 * _SEVENTH)
                acc = (e2 * e2 + 2.0 * e1 * e3) * _FIFTH + h * acc
                acc = (e0 * e3 + e1 * e2) * 0.5 + h * acc
                acc = (e1 * e1 + 2.0 * e0 * e2) * _THIRD + h * acc
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
