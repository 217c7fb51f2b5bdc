"""Argument checks shared by the batched family kernels.

Every message follows one template so that a failing spec names the parameter, what was
expected and what was given, on one line:
``The 'k' parameter of em_fit must be an int in [1, 100] (N). Got 0 instead.``
"""

from __future__ import annotations

import numbers

import numpy as np

# Weights are accepted when they sum to 1 within this absolute tolerance (the tolerance
# scikit-learn's GaussianMixture uses for ``weights_init``).
WEIGHT_SUM_ATOL = 1e-8


def fail(func: str, name: str, expectation: str, got: object, exc: type = ValueError):
    """Return (for ``raise``) an exception in the project's one-line template."""
    return exc(f"The '{name}' parameter of {func} must be {expectation}. Got {got!r} instead.")


def _first_bad(a: np.ndarray, bad: np.ndarray) -> str:
    index = tuple(int(i) for i in np.argwhere(bad)[0])
    return f"{a[index]!r} at index {index}"


def as_batch(x: object, func: str, name: str = "x", min_cols: int = 1) -> np.ndarray:
    """Return ``x`` as a C-contiguous float64 array of shape (B, N) with finite entries."""
    try:
        a = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise fail(func, name, "an array of real numbers", type(x).__name__, TypeError) from None
    if a.ndim != 2:
        raise fail(func, name, "a 2-D array of shape (B, N)", f"shape {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < min_cols:
        raise fail(func, name, f"of shape (B, N) with B >= 1 and N >= {min_cols}", f"shape {a.shape}")
    # a row sum is finite iff the row is (barring overflow): one cheap pass in the usual case
    if not np.isfinite(a.sum(axis=1)).all():
        bad = ~np.isfinite(a)
        if bad.any():
            raise fail(func, name, "finite", _first_bad(a, bad))
    return np.ascontiguousarray(a)


def as_int(value: object, func: str, name: str, lo: int, hi: int | None = None, hi_label: str = "") -> int:
    """Return ``value`` as an int in [lo, hi] (hi=None: no upper bound)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise fail(func, name, "an int", value, TypeError)
    v = int(value)
    if v < lo or (hi is not None and v > hi):
        rng = f"[{lo}, {hi}]{hi_label}" if hi is not None else f"[{lo}, inf)"
        raise fail(func, name, f"an int in {rng}", v)
    return v


def as_float(value: object, func: str, name: str, *, positive: bool = False, nonneg: bool = False) -> float:
    """Return ``value`` as a finite float, optionally > 0 or >= 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise fail(func, name, "a real number", value, TypeError)
    v = float(value)
    if not np.isfinite(v) or (positive and v <= 0) or (nonneg and v < 0):
        expect = "a float in (0, inf)" if positive else "a float in [0, inf)" if nonneg else "a finite float"
        raise fail(func, name, expect, v)
    return v


def as_mixture(
    weights: object, means: object, variances: object, func: str, *, batch: int | None = None, prefix: str = ""
) -> tuple[np.ndarray, ...]:
    """Validate a batch of 1-D Gaussian mixtures and return float64 (B, k) arrays.

    Parameters of shape (k,) describe one mixture shared by every chain and are broadcast to
    (batch, k) when ``batch`` is given. Weights must be in [0, 1] and sum to 1 per chain;
    variances must be finite and > 0.
    """
    names = [prefix + n for n in ("weights", "means", "variances")]
    arrs = []
    for name, value in zip(names, (weights, means, variances)):
        try:
            a = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise fail(func, name, "an array of real numbers", type(value).__name__, TypeError) from None
        if a.ndim == 1:
            a = a[None, :]
        if a.ndim != 2 or a.shape[1] < 1:
            raise fail(func, name, "of shape (B, k) or (k,)", f"shape {np.shape(value)}")
        bad = ~np.isfinite(a)
        if bad.any():
            raise fail(func, name, "finite", _first_bad(a, bad))
        arrs.append(a)
    w, m, v = arrs
    shapes = {a.shape[1] for a in arrs}
    if len(shapes) != 1:
        raise fail(
            func,
            names[1],
            f"of the same k as {names[0]} ({w.shape[1]})",
            f"shape {m.shape}, {names[2]} shape {v.shape}",
        )
    rows = {a.shape[0] for a in arrs} | ({batch} if batch is not None else set())
    n_rows = max(rows)
    if not rows <= {1, n_rows}:
        raise fail(
            func,
            names[0],
            f"of a batch size B matching the other arrays ({n_rows})",
            f"shapes {w.shape}, {m.shape}, {v.shape}",
        )
    if (v <= 0).any():
        raise fail(func, names[2], "> 0", _first_bad(v, v <= 0))
    if ((w < 0) | (w > 1)).any():
        raise fail(func, names[0], "in [0, 1]", _first_bad(w, (w < 0) | (w > 1)))
    total = w.sum(axis=1)
    off = np.abs(total - 1.0) > WEIGHT_SUM_ATOL
    if off.any():
        row = int(np.argmax(off))
        raise fail(
            func, names[0], f"summing to 1 per chain (atol {WEIGHT_SUM_ATOL:g})", f"sum {total[row]!r} in chain {row}"
        )
    return tuple(np.ascontiguousarray(np.broadcast_to(a, (n_rows, a.shape[1]))) for a in (w, m, v))


def as_generator(rng: object, func: str) -> np.random.Generator:
    """Require an explicit numpy Generator (never a seed: see STYLE on sklearn's sample)."""
    if not isinstance(rng, np.random.Generator):
        raise fail(func, "rng", "a numpy.random.Generator", type(rng).__name__, TypeError)
    return rng
