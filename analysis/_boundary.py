"""Where a probability crosses a target: binomial regression with a profile-likelihood interval,
and Pareto fronts with Wilson intervals.

A search's trials are cells at different values x of one parameter; in each, k of m chains had
the event by the horizon. ``fit_boundary`` fits ``P(x) = F(a + b g(x))`` (F the logistic or
normal cdf, g the identity or log) to every chain's outcome, by maximum likelihood, and reports
the x where the fitted probability equals the target with a profile-likelihood confidence
interval: reparametrised as ``F(F^-1(target) + b (g(x) - theta))``, theta is the boundary and the
interval is every theta whose profile deviance ``2 (l_max - max_b l(b, theta))`` is within the
chi-square(1) quantile. This is the estimate that does not trust an optimiser's ``best_trial``,
whose best value is the luckiest draw among many noisy ones.

A two-parameter link only describes P(x) locally, so the fit is restricted to cells near the
boundary: those whose fitted linear predictor is within ``window`` link units of ``F^-1(target)``
(refitted until the set of cells settles), unless fewer than three distinct x remain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize, stats
from scipy.special import expit, log_ndtr, ndtr, ndtri

__all__ = ["Boundary", "fit_boundary", "pareto_front"]

LINKS = ("logit", "probit")
#: Cells whose fitted linear predictor is this far from the target's (logit units) are left out:
#: for a 5% target, cells whose fitted probability is outside about [0.0026, 0.51]. (4 units, up
#: to p = 0.75, let the shallower curve far from the boundary bend the line: 12 searches of the
#: critical fresh real fraction of tests/search/test_dense_grid.py were 0.8 standard deviations
#: high on average against a 168 000-chain reference, 0.1 with 3.)
WINDOW = 3.0
#: Cells are dropped (farthest from the boundary first) while a deviance test rejects the fit at this level.
FIT_LEVEL = 0.05
#: The same window in probit units (a logistic has about 1.7 times a normal's scale).
_PROBIT_WINDOW = WINDOW / 1.7


def _log_probabilities(eta: np.ndarray, link: str) -> tuple[np.ndarray, np.ndarray]:
    """ln F(eta) and ln(1 - F(eta)), accurate in both tails."""
    if link == "logit":
        return -np.logaddexp(0.0, -eta), -np.logaddexp(0.0, eta)
    return log_ndtr(eta), log_ndtr(-eta)


def _quantile(p: float, link: str) -> float:
    return math.log(p / (1 - p)) if link == "logit" else float(ndtri(p))


def _cdf(eta, link: str):
    return expit(eta) if link == "logit" else ndtr(eta)


def _loglik(eta: np.ndarray, k: np.ndarray, m: np.ndarray, link: str) -> float:
    log_p, log_q = _log_probabilities(eta, link)
    return float(np.sum(k * log_p + (m - k) * log_q))


@dataclass
class Boundary:
    """A boundary estimate: the parameter value where the fitted probability equals ``target``.

    ``low`` and ``high`` bound the ``level`` profile-likelihood interval; ``low_open`` /
    ``high_open`` say that the profile did not reach the cut-off inside the searched range, so the
    interval extends past that end (the bound given is the range's end). ``estimate`` is NaN
    when the data cannot place a boundary (``note`` says why).
    """

    target: float
    level: float
    link: str
    log: bool
    estimate: float = math.nan
    low: float = math.nan
    high: float = math.nan
    low_open: bool = False
    high_open: bool = False
    #: Fitted intercept and slope of the link in g(x), and their covariance (observed information).
    a: float = math.nan
    b: float = math.nan
    cov: np.ndarray = field(default_factory=lambda: np.full((2, 2), np.nan))
    cells_used: int = 0
    chains_used: int = 0
    cells: int = 0
    note: str = ""

    def _g(self, x):
        x = np.asarray(x, dtype=float)
        return np.log(x) if self.log else x

    def curve(self, x, level: float | None = None):
        """Fitted probability at ``x`` and a pointwise band (delta method on the linear predictor).

        Returns
        -------
        (p, lower, upper) : arrays
        """
        g = self._g(x)
        eta = self.a + self.b * g
        var = self.cov[0, 0] + 2 * g * self.cov[0, 1] + g * g * self.cov[1, 1]
        z = stats.norm.ppf(0.5 + (level or self.level) / 2)
        half = z * np.sqrt(np.clip(var, 0, None))
        return _cdf(eta, self.link), _cdf(eta - half, self.link), _cdf(eta + half, self.link)

    @classmethod
    def from_dict(cls, raw: dict) -> Boundary:
        """The boundary of a ``to_dict`` (as search.json holds it), enough to draw its curve."""

        def number(value):
            return math.nan if value is None else float(value)

        cov = np.array([[number(v) for v in row] for row in raw.get("cov") or [[None, None], [None, None]]])
        return cls(
            target=raw["target"],
            level=raw["level"],
            link=raw["link"],
            log=raw["scale"] == "log",
            estimate=number(raw["estimate"]),
            low=number(raw["low"]),
            high=number(raw["high"]),
            low_open=raw["low_open"],
            high_open=raw["high_open"],
            a=number(raw["intercept"]),
            b=number(raw["slope"]),
            cov=cov,
            cells_used=raw["cells_used"],
            chains_used=raw["chains_used"],
            cells=raw["cells"],
            note=raw.get("note", ""),
        )

    def to_dict(self, parameter: str) -> dict:
        def clean(value: float):
            return None if value is None or not math.isfinite(value) else float(value)

        return {
            "parameter": parameter,
            "target": self.target,
            "estimate": clean(self.estimate),
            "low": clean(self.low),
            "high": clean(self.high),
            "level": self.level,
            "low_open": self.low_open,
            "high_open": self.high_open,
            "link": self.link,
            "scale": "log" if self.log else "linear",
            "intercept": clean(self.a),
            "slope": clean(self.b),
            "cov": [[clean(v) for v in row] for row in np.asarray(self.cov, dtype=float)],
            "cells_used": self.cells_used,
            "chains_used": self.chains_used,
            "cells": self.cells,
            "note": self.note,
        }


def _score(eta: np.ndarray, k: np.ndarray, m: np.ndarray, link: str) -> tuple[np.ndarray, np.ndarray]:
    """d l / d eta per cell and the expected information (Fisher scoring weights)."""
    if link == "logit":
        p = expit(eta)
        return k - m * p, m * p * (1 - p)
    log_p, log_q = _log_probabilities(eta, link)
    log_density = -0.5 * eta * eta - 0.5 * math.log(2 * math.pi)  # ratios in logs: no overflow in the tails
    score = k * np.exp(log_density - log_p) - (m - k) * np.exp(log_density - log_q)
    return score, m * np.exp(2 * log_density - log_p - log_q)


def _fit(g: np.ndarray, k: np.ndarray, m: np.ndarray, link: str) -> tuple[float, float, np.ndarray] | None:
    """Maximum-likelihood (a, b) by Fisher scoring with step halving, and their covariance
    (inverse expected information); None if the fit does not converge (separated data)."""
    centre = float(np.average(g, weights=m))
    scale = float(np.sqrt(np.average((g - centre) ** 2, weights=m))) or 1.0
    u = (g - centre) / scale  # a centred, scaled regressor keeps the steps well conditioned
    design = np.column_stack([np.ones_like(u), u])
    params = np.array([_quantile(float((k.sum() + 0.5) / (m.sum() + 1.0)), link), 0.0])
    value = _loglik(design @ params, k, m, link)
    for _ in range(100):
        score, weight = _score(design @ params, k, m, link)
        info = design.T @ (weight[:, None] * design)
        try:
            step = np.linalg.solve(info, design.T @ score)
        except np.linalg.LinAlgError:
            return None
        for _ in range(30):
            trial = params + step
            new = _loglik(design @ trial, k, m, link)
            if new >= value - 1e-12:
                break
            step = step / 2
        converged = abs(new - value) < 1e-10 and np.max(np.abs(step)) < 1e-8
        params, value = trial, new
        if converged:
            break
    else:
        return None
    if not np.all(np.isfinite(params)) or abs(params[1]) > 1e3:  # separated: the slope runs away
        return None
    _, weight = _score(design @ params, k, m, link)
    try:
        cov_u = np.linalg.inv(design.T @ (weight[:, None] * design))
    except np.linalg.LinAlgError:
        cov_u = np.full((2, 2), np.nan)
    # back to g: eta = alpha + beta (g - centre) / scale = a + b g
    transform = np.array([[1.0, -centre / scale], [0.0, 1.0 / scale]])
    alpha, beta = params
    return float(alpha - beta * centre / scale), float(beta / scale), transform @ cov_u @ transform.T


def _profile_slope(
    u: np.ndarray, k: np.ndarray, m: np.ndarray, link: str, centre: float, start: float, limit: float
) -> float:
    """max over |b| <= limit of l(centre + b u), by Fisher scoring from ``start`` (l is concave in b)."""
    b = float(np.clip(start, -limit, limit))
    value = _loglik(centre + b * u, k, m, link)
    for _ in range(100):
        score, weight = _score(centre + b * u, k, m, link)
        info = float(np.sum(weight * u * u))
        if not info > 0:
            break
        step = float(np.clip(b + float(np.sum(score * u)) / info, -limit, limit)) - b
        for _ in range(40):
            new = _loglik(centre + (b + step) * u, k, m, link)
            if np.isfinite(new) and new >= value - 1e-12:
                break
            step /= 2
        else:
            break
        b, done = b + step, abs(new - value) < 1e-11
        value = max(value, new)
        if done:
            break
    return value


def _deviance(eta: np.ndarray, k: np.ndarray, m: np.ndarray, link: str) -> float:
    """Binomial deviance of a fit against the saturated model (one probability per cell)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / m
        saturated = np.where(k > 0, k * np.log(p), 0.0) + np.where(k < m, (m - k) * np.log1p(-p), 0.0)
    return float(2 * (saturated.sum() - _loglik(eta, k, m, link)))


def _window(g, k, m, link, target, window) -> np.ndarray:
    """Cells near the boundary (boolean mask).

    First those whose fitted linear predictor is within ``window`` of the target's (iterated
    fits); then, while the deviance goodness-of-fit test rejects the two-parameter link on them
    (p < :data:`FIT_LEVEL`), the cell farthest from the boundary is dropped: the link only needs
    to describe P(x) near the boundary. Never a set on which the fit fails (dropping cells can
    leave separated outcomes) or with fewer than 3 distinct x.
    """
    use = np.ones(g.size, dtype=bool)
    centre = _quantile(target, link)
    fit = _fit(g, k, m, link)
    for _ in range(5):
        if fit is None:
            return use
        a, b, _ = fit
        near = np.abs(a + b * g - centre) <= window
        if np.unique(g[near]).size < 3 or np.array_equal(near, use):
            break
        fit = _fit(g[near], k[near], m[near], link)
        if fit is None:
            return use
        use = near
    while fit is not None:
        a, b, _ = fit
        eta = a + b * g
        misfit = stats.chi2.sf(_deviance(eta[use], k[use], m[use], link), max(int(use.sum()) - 2, 1))
        if misfit >= FIT_LEVEL:
            break
        farthest = np.flatnonzero(use)[np.argmax(np.abs(eta[use] - centre))]
        fewer = use.copy()
        fewer[farthest] = False
        if np.unique(g[fewer]).size < 3:
            break
        fit = _fit(g[fewer], k[fewer], m[fewer], link)
        if fit is not None:
            use = fewer
    return use


def fit_boundary(
    x,
    k,
    m,
    target: float,
    *,
    level: float = 0.95,
    link: str = "logit",
    log: bool = False,
    bounds: tuple[float, float] | None = None,
    window: float | None = None,
) -> Boundary:
    """Estimate where P(event) crosses ``target`` as a function of one parameter.

    Parameters
    ----------
    x : array of float
        The parameter value of each cell (trial); positive when ``log``.
    k, m : array of int
        Chains with the event, and chains, in each cell.
    target : float
        The target probability, in (0, 1).
    level : float
        Confidence level of the profile-likelihood interval.
    link : {"logit", "probit"}
    log : bool
        Regress on ln x (a parameter searched on a log scale, such as n).
    bounds : (float, float), optional
        The searched range: the interval is sought inside it (an end it does not reach there is
        reported open). Default: the range of ``x``.
    window : float, optional
        Half-width, in link units, of the band of cells used (default :data:`WINDOW` for logit).

    Returns
    -------
    Boundary
    """
    if not 0 < target < 1:
        raise ValueError(f"target must be a probability in (0, 1), got {target!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    if link not in LINKS:
        raise ValueError(f"link must be one of {LINKS}, got {link!r}")
    x, k, m = (np.asarray(v, dtype=float) for v in (x, k, m))
    keep = m > 0
    x, k, m = x[keep], k[keep], m[keep]
    out = Boundary(target=float(target), level=float(level), link=link, log=log, cells=int(x.size))
    if log and np.any(x <= 0):
        raise ValueError("a log-scale parameter must be positive")
    g = np.log(x) if log else x
    if np.unique(g).size < 2:
        out.note = "fewer than two distinct parameter values"
        return out
    if k.sum() == 0 or k.sum() == m.sum():
        out.note = "no chain had the event" if k.sum() == 0 else "every chain had the event"
        return out
    use = _window(
        g, k, m, link, target, window if window is not None else (WINDOW if link == "logit" else _PROBIT_WINDOW)
    )
    g_u, k_u, m_u = g[use], k[use], m[use]
    out.cells_used, out.chains_used = int(use.sum()), int(m_u.sum())
    fit = _fit(g_u, k_u, m_u, link)
    if fit is None:
        out.note = "the fit does not converge (the outcomes are separated: add trials between the cells with and without events)"
        return out
    if abs(fit[1]) < 1e-12:
        out.note = "the fitted probability does not change with the parameter"
        return out
    out.a, out.b, out.cov = fit
    centre = _quantile(target, link)
    theta = (centre - out.a) / out.b
    lo_g, hi_g = (
        (np.log(bounds) if log else np.asarray(bounds, dtype=float)) if bounds is not None else (g.min(), g.max())
    )
    span = float(hi_g - lo_g) or 1.0
    best = _loglik(out.a + out.b * g_u, k_u, m_u, link)
    cut = stats.chi2.ppf(level, 1) / 2
    # slopes steeper than this change the probability from ~0 to ~1 within 1e-3 of the range
    limit = max(50 * abs(out.b), 2e4 / span)

    def profile(t: float) -> float:
        """l_max - max_b l(b, t) - cut: negative inside the interval."""
        return best - _profile_slope(g_u - t, k_u, m_u, link, centre, out.b, limit) - cut

    def invert(t):
        return float(np.exp(t)) if log else float(t)

    if not np.isfinite(theta) or theta < lo_g or theta > hi_g:
        out.note = "the fitted probability does not reach the target inside the searched range"
        out.estimate = invert(theta) if np.isfinite(theta) else math.nan
        return out
    out.estimate = invert(theta)
    for side, edge in (("low", lo_g), ("high", hi_g)):
        if profile(edge) < 0:
            setattr(out, side, invert(edge))
            setattr(out, f"{side}_open", True)
        else:
            root = optimize.brentq(profile, min(edge, theta), max(edge, theta), xtol=1e-12 * span + 1e-15)
            setattr(out, side, invert(root))
    return out


def pareto_front(values, directions) -> np.ndarray:
    """Indices of the rows of ``values`` that no other row dominates.

    Parameters
    ----------
    values : array, shape (N, M)
        One row per point, one column per objective (NaN rows are never on the front).
    directions : sequence of {"minimize", "maximize"}
    """
    values = np.asarray(values, dtype=float)
    sign = np.array([1.0 if d == "minimize" else -1.0 for d in directions])
    v = values * sign
    ok = np.all(np.isfinite(v) | np.isinf(v), axis=1) & ~np.any(np.isnan(v), axis=1)
    front = []
    for i in np.flatnonzero(ok):
        others = v[ok]
        dominated = np.any(np.all(others <= v[i], axis=1) & np.any(others < v[i], axis=1))
        if not dominated:
            front.append(i)
    return np.array(front, dtype=int)
