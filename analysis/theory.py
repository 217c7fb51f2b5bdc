"""Closed forms for the 1-D Gaussian and the categorical (Wright-Fisher) chains under ``replace``.

Conventions follow ``docs/schema.md``: generation 0 is the truth, generation t the t-th fit. For
the unbiased variance fit with n samples, ``var_{t+1} = var_t * chi2_{n-1} / (n-1)`` exactly, so
``ln(var_t / var_0)`` is a random walk of t independent steps with

* drift ``psi((n-1)/2) - ln((n-1)/2)`` per step (``psi`` = digamma; < 0), and
* variance ``psi'((n-1)/2)`` per step;

with the ML fit (divide by n) the step is ``ln(chi2_{n-1} / n)``: drift ``psi((n-1)/2) - ln(n/2)``,
same variance. ``var_t`` is a martingale (unbiased) yet tends to 0 almost surely, so compare
log-moments and medians with simulations, never plain means of the variance.

All functions broadcast over array arguments.

Which closed forms describe a sweep is not decided by the family's name: a family declares the
names of :data:`OVERLAYS` that apply to it (``Family.theory_overlays``, written to sweep.json),
and the report draws what each named overlay lists, and nothing else.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
from scipy import stats
from scipy.special import digamma, gammaln, polygamma

__all__ = [
    "log_var_drift", "log_var_step_variance", "log_var_moments", "median_spread_ratio",
    "mean_spread_ratio", "mean_var_ratio", "heterozygosity_ratio", "spread_exceedance_bound",
    "median_collapse_time", "collapse_time_slope", "local_collapse_time_slope", "forgetting_median",
    "Overlay", "OVERLAYS", "overlay_draws",
]



@dataclass(frozen=True)
class Overlay:
    """A closed form a family may declare, and what the report draws for it.

    ``draws`` names report elements: ``log_variance_rate`` (theory column of the per-cell
    log-variance drift), ``spread_median`` (``exp(drift t / 2)`` on spread fan charts),
    ``spread_collapse_time`` (first-passage median and drift line of ``spread_below`` collapse
    times, and the theory slope of their rate fit), ``gaussian_density`` (fitted densities drawn
    as N(mean, var)), ``heterozygosity_rate`` (theory column of the log-heterozygosity rate),
    ``forgetting_median`` (``2c / ln 2`` on the forgetting figure and table), ``mixture_density``
    (fitted densities drawn whole from the ``weights``, ``means`` and ``sigmas`` columns).
    Theory lines are drawn only for ``replace`` cells at temperature 1, where they hold.
    """

    description: str
    draws: tuple[str, ...]


#: Overlay name (as families declare it) -> what it means and what the report draws.
OVERLAYS: dict[str, Overlay] = {
    "gaussian_log_variance": Overlay(
        "1-D Gaussian refitted by its mean and (unbiased or ML) variance: ln var_t is a random walk "
        "with drift log_var_drift(n) (exact under replace)",
        ("log_variance_rate", "spread_median", "spread_collapse_time", "gaussian_density")),
    "wright_fisher_heterozygosity": Overlay(
        "categorical ML refit: E[H_t] / H_0 = (1 - 1/n)^t (Wright-Fisher drift, exact under replace)",
        ("heterozygosity_rate",)),
    "forgetting_time": Overlay(
        "a symbol seen c times is lost after about 2c / ln 2 generations (Feller diffusion, c << n)",
        ("forgetting_median",)),
    "mixture_density": Overlay(
        "the fit is a 1-D Gaussian mixture given by the weights, means and sigmas columns",
        ("mixture_density",)),
}


def overlay_draws(names: Iterable[str]) -> frozenset[str]:
    """Everything the report draws for the overlays ``names`` (names not in :data:`OVERLAYS`,
    e.g. declared by a newer family, draw nothing)."""
    return frozenset(d for name in names if name in OVERLAYS for d in OVERLAYS[name].draws)


_ESTIMATORS = ("unbiased", "ml")
# Siegmund's correction: a random walk overshoots a barrier by about 0.5826 step s.d. on average.
_OVERSHOOT = 0.5826


def _check(n, estimator: str = "unbiased") -> np.ndarray:
    if estimator not in _ESTIMATORS:
        raise ValueError(f"estimator must be one of {_ESTIMATORS}, got {estimator!r}")
    n = np.asarray(n, dtype=float)
    if np.any(n < 2):
        raise ValueError(f"n (samples per generation) must be >= 2 for a variance fit, got {n.tolist()}")
    return n


def log_var_drift(n, estimator: str = "unbiased"):
    """Expected change of ``ln var`` per generation: ``psi((n-1)/2) - ln((n-1)/2)`` (unbiased) or
    ``psi((n-1)/2) - ln(n/2)`` (ML)."""
    n = _check(n, estimator)
    scale = (n - 1) / 2 if estimator == "unbiased" else n / 2
    return digamma((n - 1) / 2) - np.log(scale)


def log_var_step_variance(n):
    """Variance of ``ln var`` added per generation, ``psi'((n-1)/2)``, for either estimator."""
    return polygamma(1, (_check(n) - 1) / 2)


def log_var_moments(n, t, estimator: str = "unbiased"):
    """Mean and variance of ``ln(var_t / var_0)`` after t generations; returns ``(mean, var)``."""
    t = np.asarray(t, dtype=float)
    return t * log_var_drift(n, estimator), t * log_var_step_variance(n)


def median_spread_ratio(n, t, estimator: str = "unbiased"):
    """Approximate median of ``sigma_t / sigma_0``: ``exp(drift * t / 2)``.

    Exact for the median of the normal approximation of the log random walk; the skew of
    ``ln chi2`` makes the true median differ by O(sqrt(t) / n) in the log.
    """
    return np.exp(log_var_drift(n, estimator) * np.asarray(t, dtype=float) / 2)


def _alpha(n):
    """``E[sigma_1 / sigma_0] = sqrt(2/(n-1)) Gamma(n/2) / Gamma((n-1)/2)`` (unbiased fit)."""
    return np.sqrt(2 / (n - 1)) * np.exp(gammaln(n / 2) - gammaln((n - 1) / 2))


def mean_spread_ratio(n, t, estimator: str = "unbiased"):
    """Exact ``E[sigma_t / sigma_0] = alpha^t``; the ML fit multiplies alpha by ``sqrt((n-1)/n)``."""
    n = _check(n, estimator)
    alpha = _alpha(n) * (np.sqrt((n - 1) / n) if estimator == "ml" else 1.0)
    return alpha ** np.asarray(t, dtype=float)


def mean_var_ratio(n, t, estimator: str = "unbiased"):
    """Exact ``E[var_t / var_0]``: 1 for the unbiased fit (a martingale), ``((n-1)/n)^t`` for ML."""
    n = _check(n, estimator)
    base = np.ones_like(n) if estimator == "unbiased" else (n - 1) / n
    return base ** np.asarray(t, dtype=float)


def heterozygosity_ratio(n, t):
    """Exact ``E[H_t] / H_0 = (1 - 1/n)^t`` for the categorical ML refit (Wright-Fisher drift)."""
    n = np.asarray(n, dtype=float)
    if np.any(n < 1):
        raise ValueError(f"n must be >= 1, got {n.tolist()}")
    return (1 - 1 / n) ** np.asarray(t, dtype=float)


def spread_exceedance_bound(n, t, eps, sigma0=1.0):
    """Upper bound ``Pr(sigma_t > eps) <= (sigma0 / eps) exp(-t / (4n - 1))`` (unbiased fit).

    Suresh et al. (2024), "Rate of model collapse in recursive training", Theorem 3; it follows
    from Markov's inequality and ``alpha <= exp(-1 / (4n - 1))``. Values above 1 are vacuous and
    returned as they are.
    """
    n = _check(n)
    eps = np.asarray(eps, dtype=float)
    if np.any(eps <= 0):
        raise ValueError(f"eps must be > 0, got {eps.tolist()}")
    return np.asarray(sigma0, dtype=float) / eps * np.exp(-np.asarray(t, dtype=float) / (4 * n - 1))


def median_collapse_time(n, ratio, estimator: str = "unbiased", method: str = "drift"):
    """Approximate median generation at which ``sigma_t / sigma_0`` first drops below ``ratio``.

    Parameters
    ----------
    n : int or array
        Samples per generation.
    ratio : float
        The spread-ratio threshold r, in (0, 1).
    estimator : {"unbiased", "ml"}
    method : {"drift", "first_passage"}
        ``"drift"``: ``t* = 2 ln(r) / drift``, the generation at which the *expected* log variance
        reaches ``2 ln r`` (random-walk approximation that ignores fluctuations; it overestimates
        the median first-crossing time, by ~50% at r = 0.5, ~15% at r = 0.1).
        ``"first_passage"``: median of the first-passage time of a Brownian motion with the
        exact drift and step variance to the barrier ``2 ln r`` shifted by Siegmund's overshoot
        correction ``0.5826 * sqrt(psi')`` (inverse Gaussian); within a few % of simulation.
        For large n both scale as ``n``: drift ~ -1/n, so ``t* ~ 2 n ln(1/r)``.
    """
    ratio = np.asarray(ratio, dtype=float)
    if np.any((ratio <= 0) | (ratio >= 1)):
        raise ValueError(f"ratio must be in (0, 1), got {ratio.tolist()}")
    drift = log_var_drift(n, estimator)
    barrier = -2 * np.log(ratio)
    if method == "drift":
        return barrier / -drift
    if method != "first_passage":
        raise ValueError(f"method must be 'drift' or 'first_passage', got {method!r}")
    step_var = log_var_step_variance(n)
    barrier = barrier + _OVERSHOOT * np.sqrt(step_var)
    mean, shape = barrier / -drift, barrier**2 / step_var
    return stats.invgauss(mu=mean / shape, scale=shape).median()


def collapse_time_slope(ns, ratio: float = 0.5, estimator: str = "unbiased", method: str = "drift") -> float:
    """Least-squares slope of ``ln t*`` on ``ln n`` over the given n (as :func:`analysis.rates` fits).

    Tends to 1 as n grows; at small n it is above 1 (the drift is steeper than -1/n).
    """
    ns = np.asarray(ns, dtype=float)
    if ns.size < 2 or np.unique(ns).size < 2:
        raise ValueError(f"ns must hold at least two distinct n, got {ns.tolist()}")
    return float(np.polyfit(np.log(ns), np.log(median_collapse_time(ns, ratio, estimator, method)), 1)[0])


def local_collapse_time_slope(n, estimator: str = "unbiased"):
    """``d ln t* / d ln n`` of the drift approximation, exactly: ``-n drift'(n) / drift(n)``.

    It does not depend on the ratio r, since ``t*`` is proportional to ``ln r``.
    """
    n = _check(n, estimator)
    derivative = 0.5 * polygamma(1, (n - 1) / 2) - (1 / (n - 1) if estimator == "unbiased" else 1 / n)
    return -n * derivative / log_var_drift(n, estimator)


def forgetting_median(count):
    """Approximate median generations until a symbol with ``count`` occurrences is lost: ``2c / ln 2``.

    Feller-diffusion limit of Wright-Fisher drift (``P(lost within t) ~ exp(-2c / t)``), valid for
    ``1 <= c << n`` and counted from the first training set; slope 1 on log-log axes.
    """
    count = np.asarray(count, dtype=float)
    if np.any(count <= 0):
        raise ValueError(f"count must be > 0, got {count.tolist()}")
    return 2 * count / np.log(2)
