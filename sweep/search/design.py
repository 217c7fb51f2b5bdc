"""Where a boundary search puts its next trial: a sequential design local to the current fit.

A chain's outcome says most about where P(x) crosses the target when it is run near the crossing.
For the two-parameter link ``P = F(c + b (g(x) - theta))`` (``c = F^-1(target)``) the first-order
c-optimal design for ``theta`` puts every chain at the crossing itself (variance 1 / (m b^2 w),
w = p (1 - p) at the target); but that design leaves the slope unidentified (the profile interval
would be open) and a search can only aim at its current estimate, not at the crossing. So once
the sampler's start-up trials are done, the trials go in turn to the points where the current fit
puts the linear predictor at ``c - 1``, ``c + 1`` and ``c`` (for a 5% target: fitted
probabilities of about 2%, 12.5% and 5%), each recomputed from every finished trial. Centred on
the true crossing that design has 78% of the first-order optimum's information (a design at
+-0.5 has 93%), pins the slope, and keeps the fit local, where two parameters describe the curve.
The offsets were chosen by simulating the search of tests/search/test_dense_grid.py on a law fitted
to 260 000 chains (30 to 40 searches each): at +-1 the estimates' spread was 0.00047 and 95%
intervals of median width 0.0021 covered 97-100%; at +-0.5 the spread was the same (0.00049), with
narrower intervals covering 93%; at +-1.5 and +-2 the spread grew (0.00063, 0.00078) and the
curve's bend biased the estimate. Until some trial's rate is above the target and another's
below, the trial looks beyond the trials instead (:func:`explore`): a fit on one side of the
boundary only is an extrapolation that can trap the search far from it. Every
:data:`SAMPLER_EVERY`-th trial is still the sampler's.
"""

from __future__ import annotations

import math
from typing import Any

#: Offsets from the target's linear predictor, in logit units, visited in turn.
OFFSETS = (-1.0, 1.0, 0.0)
#: After the start-up trials, one trial in this many is left to the sampler.
SAMPLER_EVERY = 10
#: A logistic has about 1.7 times the scale of a normal: the same offsets in probit units.
_PROBIT_SCALE = 1.7


def placed_by_design(number: int, startup: int) -> bool:
    """Whether trial ``number`` (0-based) is placed by the design rather than by the sampler."""
    if number < startup:
        return False
    return (number - startup) % SAMPLER_EVERY != SAMPLER_EVERY - 1


def bracketed(k, m, target: float) -> bool:
    """Whether some trial's rate is at or above the target and another's below it."""
    rates = [ki / mi for ki, mi in zip(k, m) if mi > 0]
    return any(r >= target for r in rates) and any(r < target for r in rates)


def explore(outcomes: tuple[Any, Any, Any], target: float, parameter: Any) -> float:
    """Where to look while the boundary is not bracketed: with every rate on one side of the
    target, a monotone P(x) crosses it beyond the trials, below the lowest or above the highest.
    The side is the one whose half of the trials (by x) had the rate nearer the target (more events
    when every rate is below it); the trial goes to the middle of the gap between the trials and
    that end of the range (in ln x on a log scale), or to the widest gap once both ends are tried.
    """
    x, k, m = (list(v) for v in outcomes)
    scale = math.log if parameter.log else float
    order = sorted(range(len(x)), key=lambda i: x[i])
    low, high = scale(parameter.low), scale(parameter.high)
    first, last = scale(x[order[0]]), scale(x[order[-1]])
    half = len(order) // 2
    lower, upper = order[: max(half, 1)], order[max(half, 1) :] or order
    rate_low = sum(k[i] for i in lower) / max(sum(m[i] for i in lower), 1)
    rate_high = sum(k[i] for i in upper) / max(sum(m[i] for i in upper), 1)
    above = all(k[i] >= target * m[i] for i in order)
    if rate_low != rate_high:
        toward_low = (rate_low > rate_high) != above
    else:
        toward_low = first - low >= high - last
    ends = [(first - low, (low + first) / 2), (high - last, (last + high) / 2)]
    width, middle = ends[0] if toward_low else ends[1]
    if width <= 0:
        width, middle = ends[1] if toward_low else ends[0]
    if width <= 0:  # trials at both ends: the widest gap between them
        points = sorted({scale(v) for v in x})
        middle = max((b - a, (a + b) / 2) for a, b in zip(points[:-1], points[1:]))[1]
    return math.exp(middle) if parameter.log else middle


def next_value(
    fit: dict[str, Any] | None,
    outcomes: tuple[Any, Any, Any],
    target: float,
    number: int,
    startup: int,
    parameter: Any,
) -> float | None:
    """The parameter value for trial ``number``, clipped to the searched range; None when the fit
    gives no estimate or no slope yet (the trial is then the sampler's).

    While no trial's rate is on each side of the target the fit is an extrapolation (a fit on a
    tail where a few chains in a thousand have the event can even slope the wrong way), so the
    trial looks beyond the trials instead (:func:`explore`).

    Parameters
    ----------
    fit : dict or None
        The boundary fitted on every finished trial (a :meth:`analysis._boundary.Boundary.to_dict`).
    outcomes : (x, k, m)
        Every finished cell's realised parameter value, chains with the event, and chains.
    target : float
        The target probability.
    number : int
        The trial's number; it picks the offset, so trials asked together go to different points.
    startup : int
        The sampler's start-up trials (before them nothing is placed by the design).
    parameter : Parameter
        The searched parameter (its range, log scale and integrality).
    """
    x, k, m = outcomes
    if len(x) and not bracketed(k, m, target):
        value = explore(outcomes, target, parameter)
    elif not fit or fit.get("estimate") is None or fit.get("slope") in (None, 0.0):
        return None
    else:
        offset = OFFSETS[(number - startup) % len(OFFSETS)]
        if fit.get("link") == "probit":
            offset /= _PROBIT_SCALE
        slope = float(fit["slope"])  # per unit of g(x): ln x on a log scale
        estimate = float(fit["estimate"])
        g = (math.log(estimate) if parameter.log else estimate) + offset / slope
        value = math.exp(g) if parameter.log else g
    value = min(max(value, parameter.low), parameter.high)
    return int(round(value)) if parameter.integer else value
