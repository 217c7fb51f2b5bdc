"""First crossings of nested thresholds, checked with one comparison per chain.

The thresholds of one event are nested: a spread below 0.1 of the truth's is below 0.5 too, and a
distance above 2 is above 1 too. So the thresholds a chain has crossed are always the first k of
them, taken in that order, and at each check a chain needs comparing with its next threshold
only: one comparison per chain, whatever the number of thresholds, instead of one comparison and
one update per threshold. The few chains that cross something at a check are then placed on the
ladder. First-crossing times are the same as comparing with every threshold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sweep.events import EventSet


class Ladder:
    """The first generations at which a per-chain value crosses each of nested thresholds.

    Parameters
    ----------
    events : EventSet
        Where the first times are recorded (the slots are declared there already).
    slots : sequence of int
        One slot of ``events`` per threshold.
    limits : sequence of float
        The threshold of each slot, in the value's units.
    below : bool
        The event holds when the value is below its limit (``spread_below``); else above it.
    """

    def __init__(self, events: EventSet, slots: Sequence[int], limits: Sequence[float], *, below: bool):
        order = np.argsort(np.asarray(limits, dtype=float), kind="stable")
        if below:  # the largest limit is crossed first
            order = order[::-1]
        self.events, self.below = events, below
        self.slots = [slots[i] for i in order]
        self.limits = np.asarray(limits, dtype=float)[order]
        # Past the last rung no value crosses (NaN never does, as with a plain comparison).
        self._rungs = np.append(self.limits, -np.inf if below else np.inf)
        # Rungs already crossed per chain, read from the set: a restored set continues.
        self.crossed = np.zeros(events.batch, dtype=np.intp)
        for slot in self.slots:
            self.crossed += events.reached(slot)
        self.next = self._rungs[self.crossed]

    def update(self, generation: int, value: np.ndarray) -> None:
        """Record ``generation`` for every threshold ``value`` (one per chain) crosses first now."""
        if not self.slots:
            return
        hit = np.less(value, self.next) if self.below else np.greater(value, self.next)
        if not hit.any():
            return
        chains = np.flatnonzero(hit)
        v = value[chains]
        crossed = (v[:, None] < self.limits) if self.below else (v[:, None] > self.limits)
        now = crossed.sum(axis=1)  # nested: the thresholds crossed are the first ``now``
        before = self.crossed[chains]
        for rung, slot in enumerate(self.slots):
            first = chains[(before <= rung) & (now > rung)]
            if first.size:
                self.events.mark_chains(slot, generation, first)
        now = np.maximum(now, before)
        self.crossed[chains] = now
        self.next[chains] = self._rungs[now]
