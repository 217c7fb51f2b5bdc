"""Advance one block of chains through T generations of fit, mix and refit.

The block is vectorised across its chains: every generation is a handful of array operations on
arrays whose leading dimension is the chain. Events are checked at every generation; metrics only
at recorded generations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sweep.families import Family
from sweep.policies import Policy
from sweep.streams import substream


@dataclass(frozen=True)
class Ops:
    """How training sets are drawn, merged, subsampled and fitted in one representation."""

    draw: Callable[..., Any]  # (params, m, *, rng, temperature) -> training set
    combine: Callable[[Any, Any], Any]
    subsample: Callable[..., Any]
    fit: Callable[[Any, Any, np.random.Generator], Any]  # (training set, previous fit, rng)
    size: Callable[[Any], int]
    start: Callable[[Any], Any] = lambda first: first


class Pool:
    """Samples kept across generations (data representation, accumulating policies).

    Preallocated for the whole horizon, so appending a generation copies n samples instead of
    the whole pool (which would make a sweep quadratic in T); :meth:`reserve` grows it when a
    finished sweep is extended.
    """

    def __init__(self, first: np.ndarray, capacity: int):
        self.buffer = np.empty((first.shape[0], max(capacity, first.shape[1])) + first.shape[2:], dtype=first.dtype)
        self.size = 0
        self.append(first)

    def append(self, data: np.ndarray) -> Pool:
        m = data.shape[1]
        self.reserve(self.size + m)
        self.buffer[:, self.size : self.size + m] = data
        self.size += m
        return self

    def reserve(self, capacity: int) -> None:
        if capacity > self.buffer.shape[1]:
            grown = np.empty((self.buffer.shape[0], capacity) + self.buffer.shape[2:], dtype=self.buffer.dtype)
            grown[:, : self.size] = self.buffer[:, : self.size]
            self.buffer = grown

    def view(self) -> np.ndarray:
        return self.buffer[:, : self.size]

    def __getstate__(self) -> dict[str, Any]:  # save only what is filled
        return {"buffer": self.view().copy(), "size": self.size}


def _is_pool(data: Any) -> bool:
    return hasattr(data, "append") and hasattr(data, "view") and hasattr(data, "reserve")


def _as_array(data: Any) -> np.ndarray:
    return data.view() if _is_pool(data) else data


def _distinct_indices(batch: int, total: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """m distinct indices in [0, total) per row, uniformly over m-subsets, in O(m log m).

    Draw with replacement and redraw duplicates until none are left: the procedure only compares
    labels for equality, so its outcome is invariant under relabelling and hence uniform. The
    number of rounds depends on the data, so the rounds draw from a substream (the chain's values
    do not depend on how many other chains the block holds).
    """
    with substream(rng) as rounds:
        index = rounds.integers(0, total, size=(batch, m))
        while True:
            index.sort(axis=1)
            duplicate = np.zeros(index.shape, dtype=bool)
            np.equal(index[:, 1:], index[:, :-1], out=duplicate[:, 1:])
            count = int(np.count_nonzero(duplicate))
            if count == 0:
                return index
            index[duplicate] = rounds.integers(0, total, size=count)


def _subsample_rows(data: Any, m: int, *, rng: np.random.Generator) -> np.ndarray:
    """A uniform subsample of m of each chain's samples, without replacement."""
    data = _as_array(data)
    batch, total = data.shape[:2]
    if m >= total:
        return data
    if 4 * m > total:
        # The m smallest of independent uniform keys are a uniform m-subset: O(total).
        keys = rng.random((batch, total))
        index = np.argpartition(keys, m - 1, axis=1)[:, :m]
    else:
        index = _distinct_indices(batch, total, m, rng)
    return np.take_along_axis(data, index.reshape(index.shape + (1,) * (data.ndim - 2)), axis=1)


def representation(family: Family, policy: Policy) -> str:
    """'stats' when the family's sufficient statistics can carry this policy exactly, else 'data'."""
    if family.sufficient and (not policy.subsamples or family.exact_subsample):
        return "stats"
    return "data"


def ops_for(family: Family, policy: Policy, *, n: int, generations: int) -> Ops:
    if representation(family, policy) == "stats":
        return Ops(
            draw=family.draw,
            combine=family.combine,
            subsample=family.subsample_stats,
            fit=lambda stats, previous, rng: family.fit_stats(stats),
            size=lambda stats: stats.m,
        )
    return Ops(
        draw=family.sample,
        combine=lambda a, b: a.append(b) if _is_pool(a) else family.concat(a, b),
        subsample=lambda data, m, rng: family.subsample_data(_as_array(data), m, rng=rng),
        fit=lambda data, previous, rng: family.fit(_as_array(data), previous=previous, rng=rng),
        size=lambda data: family.data_size(_as_array(data)),
        start=(lambda first: family.new_pool(first, n * (generations + 1))) if policy.grows else (lambda first: first),
    )


def next_training(
    ops: Ops,
    policy: Policy,
    n: int,
    training: Any,
    pool: Any,
    params: Any,
    truth: Any,
    rng: np.random.Generator,
    temperature: float = 1.0,
) -> tuple[Any, Any]:
    """Build the next training set from the three sources: the previous training set, samples of
    the fitted model ``params`` (tempered) and samples of the truth (never tempered).

    ``pool`` is everything generated so far, kept only by accumulate_subsample (which fits on a
    subsample of it); returns (training set, pool).
    """

    def model(m: int) -> Any:
        return ops.draw(params, m, rng=rng, temperature=temperature)

    if training is None:  # generation 1: every source is the truth
        first = ops.draw(truth, n, rng=rng, temperature=1.0)
        if policy.kind == "accumulate_subsample":
            return first, ops.start(first)
        return ops.start(first), None
    if policy.kind == "replace":
        return model(n), None
    if policy.kind == "accumulate":
        return ops.combine(training, model(n)), None
    if policy.kind == "accumulate_subsample":
        pool = ops.combine(pool, model(n))
        return ops.subsample(pool, n, rng=rng), pool
    kept, synthetic, real = policy.counts(n)
    parts = []
    if kept >= ops.size(training):
        parts.append(training)
    elif kept > 0:
        parts.append(ops.subsample(training, kept, rng=rng))
    if synthetic > 0:
        parts.append(model(synthetic))
    if real > 0:
        parts.append(ops.draw(truth, real, rng=rng, temperature=1.0))
    result = parts[0]
    for part in parts[1:]:
        result = ops.combine(result, part)
    return result, None


@dataclass
class BlockState:
    """Everything a block needs to go on from generation ``generation``: the last fit, the
    training set, the pool, the event tracker, the generator's draw count, and the metric
    snapshots recorded so far (kept only in checkpoints taken inside a task)."""

    generation: int
    params: Any
    training: Any
    pool: Any
    tracker: Any
    draws: int
    snapshots: list[dict[str, np.ndarray]] = field(default_factory=list)


def checked(generation: int, every: int) -> bool:
    """Whether events are checked at ``generation`` (every ``every``-th generation)."""
    return generation % every == 0


def last_checked(horizon: int, every: int) -> int:
    """The censoring time of events checked every ``every`` generations up to ``horizon``."""
    return horizon - horizon % every


class BlockRun:
    """One block of chains, advanced generation by generation (vectorised across its chains).

    Parameters
    ----------
    family : Family
        The cell's family.
    cell : Cell
        The cell (n, policy, temperature, block size).
    block : int
        Block index within the cell; the block simulates only the chains that exist.
    rng : numpy.random.Generator
        The block's generator (a :class:`~sweep.streams.BlockGenerator`).
    events_spec : Events
        The sweep's events section (``every``: check interval).
    """

    def __init__(self, family: Family, cell: Any, block: int, *, rng: np.random.Generator, events_spec: Any):
        self.family, self.cell, self.rng, self.events_spec = family, cell, rng, events_spec
        span = cell.block_range(block)
        self.replicates = np.arange(span.start, span.stop)
        self.batch = self.replicates.size
        self.truth = family.truth(self.batch)
        self.every = getattr(events_spec, "every", 1)
        self.state = BlockState(0, self.truth, None, None, None, 0)

    def start(self, horizon: int) -> None:
        tracker = self.family.events(self.batch, last_checked(horizon, self.every), self.events_spec)
        self.state = BlockState(0, self.truth, None, None, tracker, 0, [self.family.metrics(self.truth)])

    def restore(self, state: BlockState, horizon: int) -> None:
        """Continue from a saved state (a checkpoint, or a finished block being extended)."""
        self.state = state
        self.rng.draws = state.draws
        state.tracker.set.horizon = last_checked(horizon, self.every)
        for kept in (state.pool, state.training):
            if _is_pool(kept):
                kept.reserve(self.cell.n * (horizon + 1))

    def advance(self, stop: int, horizon: int, recorded_mask: np.ndarray) -> None:
        """Simulate generations up to ``stop`` (inclusive), recording metrics where the mask says."""
        st, family, cell = self.state, self.family, self.cell
        ops = ops_for(family, cell.policy, n=cell.n, generations=horizon)
        with np.errstate(all="ignore"):  # a degenerate chain becomes a 'diverged' event, not a crash
            for generation in range(st.generation + 1, stop + 1):
                st.training, st.pool = next_training(
                    ops, cell.policy, cell.n, st.training, st.pool, st.params, self.truth, self.rng, cell.temperature
                )
                st.params = ops.fit(st.training, st.params, self.rng)
                if checked(generation, self.every):
                    st.tracker.update(generation, st.params, st.training)
                if recorded_mask[generation]:
                    st.snapshots.append(family.metrics(st.params))
                st.generation = generation
        st.draws = getattr(self.rng, "draws", 0)

    def result(
        self, recorded: np.ndarray, *, join: bool = True
    ) -> tuple[dict[str, np.ndarray | list[np.ndarray]], dict[str, np.ndarray]]:
        """(trajectory columns, event columns) of the recorded generations ``recorded`` (the
        snapshots, in order), generation-major; events ordered by chain.

        With ``join=False`` every metric column is the list of its snapshots' arrays (rows in
        order, one array per recorded generation), not joined: the task makes them the chunks
        of an Arrow column, which spares a copy of every value (measured: a tenth to a sixth of
        the compiled exact Gaussian path's CPU time per chain-generation, and a second copy of
        its trajectories in memory)."""
        snapshots, batch = self.state.snapshots, self.batch
        # Rows are generation-major: concatenating snapshots is a plain copy, where chain-major
        # order would transpose every metric (readers sort anyway; see analysis.load).
        trajectories = {
            "replicate": np.tile(self.replicates, recorded.size),
            "generation": np.repeat(recorded.astype(np.int32), batch),
        }
        for name in snapshots[0]:
            arrays = [np.asarray(s[name]) for s in snapshots]
            if join and len({a.shape[1:] for a in arrays}) == 1:
                trajectories[name] = np.concatenate(arrays, axis=0)
            else:  # not joined, or per-component values of a truth with another k than the fit
                trajectories[name] = arrays
        events = self.state.tracker.set.columns()
        events["replicate"] = self.replicates[events.pop("chain")]
        events["checked_every"] = np.full(events["replicate"].size, self.every, dtype=np.int32)
        return trajectories, events


def simulate_block(
    family: Family,
    cell: Any,
    block: int,
    *,
    generations: int,
    recorded: np.ndarray,
    events_spec: Any,
    rng: np.random.Generator,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Run one block from generation 0 to ``generations``; return (trajectory columns, event columns).

    Returns
    -------
    trajectories : dict of ndarray
        ``replicate``, ``generation`` and the family's metrics, one row per chain and recorded
        generation, ordered by generation then chain (metrics of several values per chain are 2-D).
    events : dict of ndarray
        ``replicate`` plus the columns of :meth:`sweep.events.EventSet.columns`, ordered by chain.
    """
    run = BlockRun(family, cell, block, rng=rng, events_spec=events_spec)
    run.start(generations)
    mask = np.zeros(generations + 1, dtype=bool)
    mask[recorded] = True
    run.advance(generations, generations, mask)
    return run.result(recorded)
