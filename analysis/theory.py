"""Closed forms for the 1-D Gaussian and the categorical (Wright-Fisher) chains under ``replace``.

Conventions follow ``docs/schema.md``: generation 0 is the truth, generation t the t-th fit. For
the unbiased variance fit with n samples, ``var_{t+1} = var_t * chi2_{n-1} / (n-1)`` exactly, so
``ln(var_t / var_0)`` is a random walk of t independent steps with

* drift ``psi((n-1)/2) - ln((n-1)/2)`` per step (``psi`` = digamma; < 0), and
* variance ``psi'((n-1)/2)`` per step;

with the ML fit (divide by n) the step is ``ln(chi2_{n-1} / n)``: drift ``psi((n-1)/2) - ln(n/2)``,
same variance. ``var_t`` is a martingale (unbiased) yet tends to 0 almost surely, so compare
log-moments and medians with simulations, never plain means of the variance.

All functions broadcast over array arguments, except the exact laws (``collapse_time_cdf``,
``symbol_loss_cdf``), which are computed numerically for one n at a time.

Which closed forms describe a sweep is not decided by the family's name: a family declares the
names of :data:`OVERLAYS` that apply to it (``Family.theory_overlays``, written to sweep.json),
and the report draws what each named overlay lists, and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy import stats
from scipy.signal import fftconvolve
from scipy.special import digamma, gammaln, polygamma

from analysis import theory_collapse

__all__ = [
    "log_var_drift",
    "log_var_step_variance",
    "log_var_moments",
    "median_spread_ratio",
    "mean_spread_ratio",
    "mean_var_ratio",
    "heterozygosity_ratio",
    "spread_exceedance_bound",
    "median_collapse_time",
    "collapse_time_slope",
    "local_collapse_time_slope",
    "forgetting_median",
    "collapse_time_cdf",
    "exact_median_collapse_time",
    "symbol_loss_cdf",
    "Simulated",
    "Curve",
    "Overlay",
    "OVERLAYS",
    "overlay_draws",
    "overlay_curves",
]


@dataclass(frozen=True)
class Simulated:
    """What of the simulation a closed form is drawn against, per cell and recorded generation.

    ``against`` is ``"event_by"``: the share of chains whose event ``column`` (an ``event``
    value) has happened by generation t, from the events table (exact times, right-censored at
    T only); or ``"chain_mean"``: the mean across chains of ``value(column)`` at generation t
    (``value`` None: the column itself), with its standard error. ``name`` names the figure.
    ``share``: the values are 0 or 1, so the mean is a share of chains (compared with the theory
    by an exact binomial test, as every ``event_by`` share is).
    """

    name: str
    against: str
    column: str
    ylabel: str
    value: Callable[[np.ndarray], np.ndarray] | None = None
    share: bool = False


@dataclass(frozen=True)
class Curve:
    """A closed form over generations that the report draws against :class:`Simulated` rows.

    ``theory(t, cell)`` returns its values at the generations ``t`` of one cell, or None where it
    has no value for that cell (e.g. n past an exact law's size limit). ``cell`` maps ``n``,
    ``policy`` (the policy kind), ``real`` (fresh true samples per generation), ``temperature``
    and every family field (the spec's, or the cell's own where the grid sweeps it) to values.
    It is drawn only for cells whose policy kind is in ``policies`` and at temperature 1 unless
    ``tempered`` (the regime where it holds; for ``replace`` the report's ``FamilyRows.holds``).
    ``bound`` is ``"lower"`` or ``"upper"`` when the closed form bounds the simulated value
    instead of predicting it.
    """

    label: str
    simulated: Simulated
    theory: Callable[[np.ndarray, Mapping[str, Any]], np.ndarray | None]
    policies: tuple[str, ...] = ("replace",)
    tempered: bool = False
    bound: str | None = None


@dataclass(frozen=True)
class Overlay:
    """A closed form a family may declare, and what the report draws for it.

    ``draws`` names report elements: ``log_variance_rate`` (theory column of the per-cell
    log-variance drift), ``spread_median`` (``exp(drift t / 2)`` on spread fan charts),
    ``spread_collapse_time`` (first-passage median and drift line of ``spread_below`` collapse
    times, and the theory slope of their rate fit), ``gaussian_density`` (fitted densities drawn
    as N(mean, var)), ``heterozygosity_rate`` (theory column of the log-heterozygosity rate),
    ``forgetting_median`` (``2c / ln 2`` on the forgetting figure and table), ``mixture_density``
    (fitted densities drawn whole from the ``weights``, ``means`` and ``sigmas`` columns),
    ``density_snapshots_2d`` (2-D fitted mixture densities of a few chains at the first, middle
    and last recorded generations, from the ``weights``, ``means`` and ``covariances`` columns,
    over the truth's), ``replayed_density_snapshots_2d`` (the same for fits the tables do not
    hold, recomputed from the spec and seed as ``sweep replay`` does), ``theory_curves`` (every :class:`Curve` in ``curves``, one figure per
    :class:`Simulated`, with a table of deviations in standard errors), ``median_collapse_time``
    (the theory's and the simulation's median in the table of an ``event_by`` curve).
    Theory lines are drawn only for ``replace`` cells at temperature 1, where they hold, unless
    a curve declares more policies.
    """

    description: str
    draws: tuple[str, ...]
    curves: tuple[Curve, ...] = ()


def _real(cell: Mapping[str, Any]) -> int:
    return int(cell.get("real", 0)) if cell["policy"] == "fresh_real" else 0


#: Work (multiply-adds) the report spends on one exact Bernoulli law: n = 316 over 5000
#: generations (5e8) is drawn, n = 1000 over 5000 (5e9, a minute or more) is not.
EXACT_WORK = 1e9


def _exact_affordable(cell, t) -> bool:
    """Whether the exact law of an (n + 1)-state chain up to max(t) is within the size limit and
    :data:`EXACT_WORK` (it iterates an (n + 1)^2 matrix once per generation)."""
    n = int(cell["n"])
    return n <= theory_collapse.MAX_EXACT_N and (n + 1) ** 2 * float(np.max(t)) <= EXACT_WORK


@lru_cache(maxsize=16)
def _absorption(p: float, n: int, t_max: int, real: int) -> tuple[np.ndarray, np.ndarray]:
    """The exact Bernoulli first-passage law, computed once per cell for both curves that read it
    (O(n^2) per generation: seconds at n = 1000 over thousands of generations)."""
    return theory_collapse.bernoulli_absorption(p, n, t_max, real=real)


def _bernoulli_collapse(t, cell):
    if cell["policy"] == "accumulate":
        return theory_collapse.bernoulli_collapse_probability(float(cell["p"]), int(cell["n"]), t, policy="accumulate")
    if not _exact_affordable(cell, t):
        return None
    zero, one = _absorption(float(cell["p"]), int(cell["n"]), int(np.max(t)), _real(cell))
    return (zero + one)[t]


def _bernoulli_at_one(t, cell):
    if not _exact_affordable(cell, t):
        return None
    return _absorption(float(cell["p"]), int(cell["n"]), int(np.max(t)), 0)[1][t]


def _bernoulli_bound(t, cell):
    return 1.0 - theory_collapse.bernoulli_survival_bound(float(cell["p"]), int(cell["n"]), t)


def _bernoulli_mse(t, cell):
    return theory_collapse.bernoulli_mse(float(cell["p"]), int(cell["n"]), t, policy=cell["policy"], real=_real(cell))


def _poisson_collapse(t, cell):
    return theory_collapse.poisson_collapse_probability(float(cell["lambda"]), int(cell["n"]), t, policy=cell["policy"])


def _poisson_mse(t, cell):
    return theory_collapse.poisson_mse(
        float(cell["lambda"]), int(cell["n"]), t, policy=cell["policy"], real=_real(cell)
    )


def _regression_error(t, cell):
    error = theory_collapse.linear_regression_test_error(
        int(cell["n"]),
        int(cell["dim"]),
        float(cell["noise_sd"]),
        t,
        policy=cell["policy"],
        temperature=float(cell.get("temperature", 1.0)),
    )
    return error if np.all(np.isfinite(error)) else None  # n <= d + 1: E tr(W^-1) diverges


def _squared(values: np.ndarray) -> np.ndarray:
    return np.square(values)


def _at_one(values: np.ndarray) -> np.ndarray:
    return (values == 1.0).astype(float)


_COLLAPSE = Simulated("collapse_probability", "event_by", "collapse", "P(collapsed by t)")
_COUNT_POLICIES = ("replace", "accumulate", "fresh_real")

#: Overlay name (as families declare it) -> what it means and what the report draws.
OVERLAYS: dict[str, Overlay] = {
    "gaussian_log_variance": Overlay(
        "1-D Gaussian refitted by its mean and (unbiased or ML) variance: ln var_t is a random walk "
        "with drift log_var_drift(n) (exact under replace)",
        ("log_variance_rate", "spread_median", "spread_collapse_time", "gaussian_density"),
    ),
    "wright_fisher_heterozygosity": Overlay(
        "categorical ML refit: E[H_t] / H_0 = (1 - 1/n)^t (Wright-Fisher drift, exact under replace)",
        ("heterozygosity_rate",),
    ),
    "forgetting_time": Overlay(
        "a symbol seen c times is lost after about 2c / ln 2 generations (Feller diffusion, c << n)",
        ("forgetting_median",),
    ),
    "mixture_density": Overlay(
        "the fit is a 1-D Gaussian mixture given by the weights, means and sigmas columns", ("mixture_density",)
    ),
    "mixture_density_nd": Overlay(
        "the fit is a d-dimensional Gaussian mixture given by the weights, means and covariances columns "
        "(generation 0: the truth); 2-D fits are drawn as density contours",
        ("density_snapshots_2d",),
    ),
    "kde_density_nd": Overlay(
        "the fit is a d-dimensional Gaussian KDE (equal-weight kernels at its training points, which the "
        "tables do not hold); 2-D fits are drawn as density contours, recomputed by replaying a block",
        ("replayed_density_snapshots_2d",),
    ),
    # Closed forms of the count families and of linear regression (analysis.theory_collapse).
    "bernoulli_collapse_probability": Overlay(
        "P(p_t at 0 or 1 by t), exact (analysis.theory_collapse.bernoulli_collapse_probability)",
        ("theory_curves",),
        (Curve("exact P(collapsed by t)", _COLLAPSE, _bernoulli_collapse, _COUNT_POLICIES),),
    ),
    "bernoulli_fixation_probability": Overlay(
        "P(absorbed at 1) = p under replace (a bounded martingale)",
        ("theory_curves",),
        (
            Curve(
                "exact P(absorbed at 1 by t) (tends to p)",
                Simulated("absorbed_at_one", "chain_mean", "p", "P(p_t = 1)", _at_one, share=True),
                _bernoulli_at_one,
            ),
        ),
    ),
    "bernoulli_mse": Overlay(
        "E[(p_t - p)^2], exact (analysis.theory_collapse.bernoulli_mse)",
        ("theory_curves",),
        (
            Curve(
                "exact E[(p_t - p)^2]",
                Simulated("mse", "chain_mean", "abs_error", "mean (p_t - p)^2", _squared),
                _bernoulli_mse,
                _COUNT_POLICIES,
            ),
        ),
    ),
    "bernoulli_survival_bound": Overlay(
        "Markov bound on P(not collapsed at t) under replace",
        ("theory_curves",),
        (Curve("1 - Markov bound (a lower bound)", _COLLAPSE, _bernoulli_bound, bound="lower"),),
    ),
    "poisson_collapse_probability": Overlay(
        "P(lambda_t = 0 by t), exact through a Galton-Watson extinction law "
        "(analysis.theory_collapse.poisson_collapse_probability)",
        ("theory_curves",),
        (Curve("exact P(collapsed by t)", _COLLAPSE, _poisson_collapse, ("replace", "accumulate")),),
    ),
    "poisson_mse": Overlay(
        "E[(lambda_t - lambda)^2], exact (analysis.theory_collapse.poisson_mse)",
        ("theory_curves",),
        (
            Curve(
                "exact E[(lambda_t - lambda)^2]",
                Simulated("mse", "chain_mean", "abs_error", "mean (lambda_t - lambda)^2", _squared),
                _poisson_mse,
                _COUNT_POLICIES,
            ),
        ),
    ),
    "poisson_median_collapse_time": Overlay(
        "exact median collapse time under replace: the first t where the exact P(collapsed by t) >= 1/2",
        ("median_collapse_time",),
    ),
    "linear_regression_test_error": Overlay(
        "expected test error per generation under replace and accumulate, exact for a fresh design "
        "(analysis.theory_collapse)",
        ("theory_curves",),
        (
            Curve(
                "exact E[test error]",
                Simulated("test_error", "chain_mean", "test_error", "mean test error"),
                _regression_error,
                ("replace", "accumulate"),
                tempered=True,
            ),
        ),
    ),
}


def overlay_curves(names: Iterable[str]) -> tuple[Curve, ...]:
    """Every :class:`Curve` the overlays ``names`` declare, in declaration order."""
    return tuple(c for name in names if name in OVERLAYS for c in OVERLAYS[name].curves)


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


def _log_var_step_masses(n: int, estimator: str, step: float) -> tuple[int, np.ndarray]:
    """Probabilities of the step ``ln(chi2_{n-1} / c)`` rounded to the lattice ``j * step``.

    Returns the first j and the masses of j, j+1, ...; exact chi2 cdf differences over each
    cell ``[(j - 1/2) step, (j + 1/2) step)``, truncated where the tails hold < 1e-15.
    """
    k = n - 1
    scale = k if estimator == "unbiased" else n
    low, high = np.log(stats.chi2.ppf([1e-15, 1 - 1e-15], k) / scale)
    j = np.arange(np.floor(low / step), np.ceil(high / step) + 1)
    edges = np.append(j - 0.5, j[-1] + 0.5) * step
    return int(j[0]), np.diff(stats.chi2.cdf(scale * np.exp(edges), k))


def _first_passage(n: int, ratio: float, estimator: str, step: float):
    """Yield P(tau <= t) for t = 1, 2, ... (see :func:`collapse_time_cdf`)."""
    n = int(_check(n, estimator))
    ratio = float(ratio)
    if not 0 < ratio < 1:
        raise ValueError(f"ratio must be in (0, 1), got {ratio!r}")
    if not 0 < step <= 0.01:
        raise ValueError(f"step must be in (0, 0.01], got {step!r}")
    first_j, masses = _log_var_step_masses(n, estimator, step)
    # Lattice cells i * step for i = bottom..top; below 2 ln r the chain has collapsed. var_t is a
    # (super)martingale, so P(sup_t ln var_t > u) <= exp(-u) (Ville): a top at 25 loses < 1e-10.
    bottom = int(np.floor(2 * np.log(ratio) / step)) + 1
    top = int(np.ceil(25 / step))
    alive = np.zeros(top - bottom + 1)
    alive[-bottom] = 1.0  # ln(var_0 / var_0) = 0
    collapsed = 0.0
    while True:
        moved = fftconvolve(alive, masses)  # moved[s] sits at lattice index bottom + first_j + s
        cut = -first_j  # moved[:cut] lies below the barrier (first_j < 0: ln chi2 has a left tail)
        collapsed += float(np.clip(moved[:cut], 0, None).sum())
        alive = np.clip(moved[cut : cut + len(alive)], 0, None)  # FFT round-off is ~1e-17
        yield collapsed


def collapse_time_cdf(
    n: int, ratio: float, generations: int, estimator: str = "unbiased", *, step: float = 1e-3
) -> np.ndarray:
    """Exact law of the collapse time of the 1-D Gaussian under ``replace``: ``P(tau <= t)``.

    ``tau`` is the first generation at which ``sigma_t / sigma_0 < ratio``, i.e. the first
    passage of the random walk ``ln(var_t / var_0)`` (i.i.d. steps ``ln(chi2_{n-1} / c)``, c =
    n - 1 unbiased, n ML) below ``2 ln r``. Unlike :func:`median_collapse_time` (a continuous
    approximation), this is the discrete-step law, computed numerically: the walk's distribution
    is carried generation by generation on a lattice of spacing ``step`` in ``ln var`` (the step
    probabilities per lattice cell are exact chi2 cdf differences; FFT convolution), and the mass
    that crosses the barrier is accumulated. Lattice rounding shifts the walk by about
    ``step * sqrt(t / 12)``, so with the default the medians are exact to the generation for
    n up to a few thousand. Cost: O(generations x L log L), L ~ (25 - 2 ln r) / step.

    Parameters
    ----------
    n : int
        Samples per generation (>= 2).
    ratio : float
        The spread-ratio threshold r, in (0, 1).
    generations : int
        Horizon T.
    estimator : {"unbiased", "ml"}
    step : float
        Lattice spacing in ``ln var``.

    Returns
    -------
    numpy.ndarray
        Shape (T + 1,): ``P(tau <= t)`` for t = 0..T (entry 0 is 0: generation 0 is the truth).
    """
    generations = int(generations)
    if generations < 0:
        raise ValueError(f"generations must be >= 0, got {generations}")
    walk = _first_passage(n, ratio, estimator, step)
    return np.array([0.0] + [next(walk) for _ in range(generations)])


def exact_median_collapse_time(n, ratio: float, estimator: str = "unbiased", *, step: float = 1e-3):
    """Median generation of the collapse time under the exact law of :func:`collapse_time_cdf`.

    The first generation t with ``P(tau <= t) >= 1/2``, as a Kaplan-Meier median is the first
    time its survival curve is ``<= 1/2``. Broadcasts over ``n`` (one numerical law per value).
    """

    def one(n_value):
        for t, probability in enumerate(_first_passage(n_value, ratio, estimator, step), start=1):
            if probability >= 0.5:
                return float(t)

    return np.vectorize(one, otypes=[float])(np.asarray(n))


def symbol_loss_cdf(count, n: int, generations: int) -> np.ndarray:
    """Exact law of the generation at which a categorical symbol is lost, under ``replace``.

    With the ML refit each symbol's count is a Wright-Fisher chain, ``X_{t+1} ~ Binomial(n,
    X_t / n)`` whatever the other symbols do, so ``P(lost by t | X_1 = c) = (M^(t-1))[c, 0]``
    with M the binomial transition matrix ((n + 1) x (n + 1)); cost O(n^2 T). This is the law
    :func:`forgetting_median` approximates (Feller diffusion, ``c << n``).

    Parameters
    ----------
    count : int or array of int
        Initial counts c (in the first training set, generation 1's data), 0..n.
    n : int
        Samples per generation.
    generations : int
        Horizon T.

    Returns
    -------
    numpy.ndarray
        Shape ``count.shape + (T + 1,)``: P(lost by generation t) for t = 0..T.
    """
    n, generations = int(n), int(generations)
    count = np.asarray(count)
    if n < 1 or generations < 0:
        raise ValueError(f"n must be >= 1 and generations >= 0, got n={n}, generations={generations}")
    if np.any((count < 0) | (count > n) | (count != np.round(count))):
        raise ValueError(f"count must be integers in 0..n={n}, got {count.tolist()}")
    states = np.arange(n + 1)
    transition = stats.binom.pmf(states[None, :], n, states[:, None] / n)
    lost = np.zeros((generations + 1, n + 1))
    if generations >= 1:
        lost[1, 0] = 1.0  # count 0 in generation 1's data: lost at generation 1
    for t in range(2, generations + 1):
        lost[t] = transition @ lost[t - 1]
    return np.moveaxis(lost[:, count.astype(np.int64)], 0, -1)
