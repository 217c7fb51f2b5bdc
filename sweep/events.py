"""First-crossing times of per-chain conditions, checked at every generation.

Events are checked inside the task at every generation, whatever the trajectories record, so a
collapse time is exact even when trajectories are thinned. A chain that never meets a condition
by the horizon T is right-censored: ``observed = False`` and ``generation = T``.
"""

from __future__ import annotations

import math

import numpy as np

NOT_YET = -1


class EventSet:
    """Per-chain first times of scalar conditions, and optionally of one condition per symbol.

    Parameters
    ----------
    batch : int
        Chains in the batch.
    horizon : int
        The last generation T (the censoring time).
    """

    def __init__(self, batch: int, horizon: int):
        self.batch = batch
        self.horizon = horizon
        self._names: list[str] = []
        self._thresholds: list[float] = []
        self._first = np.empty((0, batch), dtype=np.int32)
        self._symbols: np.ndarray | None = None
        self._symbol_first: np.ndarray | None = None
        self._initial_counts: np.ndarray | None = None
        self._symbol_event = "symbol_lost"

    def add(self, event: str, threshold: float = math.nan) -> int:
        """Declare a scalar event and return its slot for :meth:`mark`."""
        self._names.append(event)
        self._thresholds.append(float(threshold))
        self._first = np.vstack([self._first, np.full((1, self.batch), NOT_YET, dtype=np.int32)])
        return len(self._names) - 1

    def add_symbols(self, symbols: np.ndarray, event: str = "symbol_lost") -> None:
        """Declare one per-symbol event (``symbol_lost``, or another name) per listed symbol."""
        self._symbol_event = event
        self._symbols = np.asarray(symbols, dtype=np.int32)
        self._symbol_first = np.full((self.batch, self._symbols.size), NOT_YET, dtype=np.int32)

    def mark(self, slot: int, generation: int, holds: np.ndarray) -> None:
        """Record ``generation`` for chains where ``holds`` is true for the first time."""
        first = self._first[slot]
        np.copyto(first, generation, where=holds & (first == NOT_YET))

    def mark_chains(self, slot: int, generation: int, chains: np.ndarray) -> None:
        """Record ``generation`` for the listed chains (indices) not yet recorded for ``slot``."""
        first = self._first[slot]
        chains = chains[first[chains] == NOT_YET]
        first[chains] = generation

    def reached(self, slot: int) -> np.ndarray:
        """Whether each chain has met the condition of ``slot`` (a copy)."""
        return self._first[slot] != NOT_YET

    def mark_symbols(self, generation: int, lost: np.ndarray) -> None:
        """``lost`` has shape (B, number of declared symbols)."""
        first = self._symbol_first
        np.copyto(first, generation, where=lost & (first == NOT_YET))

    def set_initial_counts(self, counts: np.ndarray) -> None:
        """Each declared symbol's count in the first training set, shape (B, symbols)."""
        self._initial_counts = np.asarray(counts, dtype=np.int64)

    @property
    def per_chain(self) -> int:
        """Rows each chain contributes to the events table."""
        return len(self._names) + (0 if self._symbols is None else self._symbols.size)

    def columns(self) -> dict[str, np.ndarray]:
        """Event rows as columns, ordered by chain, then scalar events, then symbols."""
        B, E = self.batch, len(self._names)
        S = 0 if self._symbols is None else self._symbols.size
        first = np.concatenate([self._first.T, self._symbol_first], axis=1) if S else self._first.T
        observed = first != NOT_YET
        generation = np.where(observed, first, self.horizon).astype(np.int32)
        names = np.array(self._names + [getattr(self, "_symbol_event", "symbol_lost")] * S, dtype=object)
        thresholds = np.array(self._thresholds + [math.nan] * S)
        symbol = np.concatenate([np.full(E, -1, dtype=np.int32), self._symbols if S else np.empty(0, np.int32)])
        initial = np.full((B, E + S), -1, dtype=np.int64)
        if S and self._initial_counts is not None:
            initial[:, E:] = self._initial_counts
        return {
            "chain": np.repeat(np.arange(B), E + S),
            "event": np.tile(names, B),
            "threshold": np.tile(thresholds, B),
            "symbol": np.tile(symbol, B),
            "initial_count": initial.ravel(),
            "generation": generation.ravel(),
            "observed": observed.ravel(),
        }
