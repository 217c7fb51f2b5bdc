"""What the Bernoulli and Poisson families share: a scalar sufficient statistic and its events.

Both fit one parameter by maximum likelihood, the sample mean, so a training set is held as its
size ``m`` and the sum of its values ``total`` (Bernoulli: the number of ones). Combining two
training sets adds both. Their events are the same: ``collapse`` (the estimate reached a boundary
of the parameter space: a fit that can only ever produce one value) and ``distance_above``
(``|estimate - truth|`` above a threshold).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from sweep.events import EventSet
from sweep.families.base import EventKind

#: ``path`` values: ``exact`` draws the statistic, ``sample`` draws the samples and sums them.
PATHS = ("exact", "sample")


@dataclass
class Totals:
    """Sufficient statistic of B training sets of equal size ``m``: the sum of each one's values."""

    m: int
    total: np.ndarray  # (B,) int64


def distance_event(unit: str) -> EventKind:
    return EventKind("distance_above", f"|estimate - truth| above the threshold ({unit})", collapse=False)


def combine(a: Totals, b: Totals) -> Totals:
    return Totals(a.m + b.m, a.total + b.total)


def summarize(data: np.ndarray) -> Totals:
    """Totals of samples of shape (B, m) (booleans or integers)."""
    return Totals(data.shape[1], data.sum(axis=1, dtype=np.int64))


def fit(stats: Totals) -> np.ndarray:
    """The ML estimate, the sample mean, per chain."""
    return stats.total * (1.0 / stats.m)


class CountEvents:
    """``collapse`` (the estimate on a boundary), ``distance_above`` and ``diverged``, every generation.

    Parameters
    ----------
    collapsed : callable
        ``collapsed(estimates) -> bool array``: where the estimate is on a boundary; a module-level
        function, since the tracker is pickled with the block's state (checkpoints, extensions).
    truth : float
        The true parameter, for ``distance_above``.
    """

    def __init__(
        self, batch: int, horizon: int, spec: Any, *, collapsed: Callable[[np.ndarray], np.ndarray], truth: float
    ):
        self.set = EventSet(batch, horizon)
        self.collapsed, self.truth = collapsed, truth
        self.collapse = self.set.add("collapse") if spec.collapse else None
        self.distance = [(self.set.add("distance_above", eps), eps) for eps in spec.distance_above]
        self.diverged = self.set.add("diverged") if spec.diverged else None

    def update(self, generation: int, params: np.ndarray, state: Any) -> None:
        mark = self.set.mark
        if self.collapse is not None:
            mark(self.collapse, generation, self.collapsed(params))
        if self.distance:
            error = np.abs(params - self.truth)
            for slot, eps in self.distance:
                mark(slot, generation, error > eps)
        if self.diverged is not None:  # cannot happen for a mean of counts; kept for the contract
            mark(self.diverged, generation, ~np.isfinite(params))
