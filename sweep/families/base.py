"""The batch contract every model family implements.

A family works on a *batch* of B independent chains at once. Every array it takes or returns
has the chain as its leading dimension, and every random draw comes from the ``rng`` passed in
(one ``numpy.random.Generator`` per block of chains, see :mod:`sweep.grid`).

A chain's training set is held in one of two representations, chosen by the engine:

- **statistics** (``sufficient = True``): a sufficient statistic of the training set (Gaussian:
  count, mean and scatter matrix; categorical: symbol counts). Combining two training sets adds
  their statistics, so accumulating policies do not grow arrays. ``draw`` produces the statistics
  of m fresh samples, exactly in distribution (``exact_draw``) or by sampling and summarising.
- **data** (``sufficient = False``, or a policy that subsamples stored data without an exact
  statistic-level subsample): the samples themselves, of shape (B, m[, d]).

Random streams: every draw comes from the ``rng`` passed in, with the chain as the leading axis
and all chains in one call, and the number of draws per generation does not depend on the data
(a loop that redraws until a condition holds draws from ``sweep.streams.substream(rng)``). Then a
chain's values depend only on the root seed, its cell and its replicate, never on how many chains
its block simulates (:mod:`sweep.streams`).

Checkpoints: parameters, training sets and event trackers are pickled (``checkpoint_every``, and
a block's final state to extend the horizon later) and must continue exactly once unpickled.

Thread safety: a family instance holds only its validated spec and derived constants; it keeps
no state between calls and may be shared by tasks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np


@dataclass(frozen=True)
class Cost:
    """A rough cost model used only to size tasks (never affects results)."""

    seconds_per_chain_generation: float
    bytes_per_chain: float
    #: Array elements one chain contributes to a typical vectorised operation (n samples, k
    #: symbols, 1 for a statistic): blocks are made wide enough for numpy to run efficiently.
    width: float = 1.0


@dataclass(frozen=True)
class EventKind:
    """An event a family can track, as the spec's ``events`` section and the report see it.

    Parameters
    ----------
    name : str
        The key in ``events:`` and the value of the ``event`` column.
    description : str
        One line: when the event happens and what its threshold means.
    thresholds : bool
        True: the spec gives a list of thresholds (one event per threshold); False: a switch
        (true/false) for an event without threshold (``diverged``, per-symbol loss).
    default : tuple of float or bool
        The thresholds (or the switch) when the spec does not name the event.
    per_symbol : bool
        One event row per symbol (``symbol_lost``), with ``symbol`` and ``initial_count`` set.
    collapse : bool
        The report treats it as a collapse (survival curves, median times, rates against n).
    descending : bool
        Thresholds listed largest first (``spread_below``: the larger ratio is reached first).
    row_name : str, optional
        The ``event`` column value when it differs from ``name`` (``symbols`` -> ``symbol_lost``).
    """

    name: str
    description: str
    thresholds: bool = True
    default: Any = ()
    per_symbol: bool = False
    collapse: bool = True
    descending: bool = False
    row_name: str | None = None

    @property
    def event(self) -> str:
        return self.row_name or self.name


@dataclass(frozen=True)
class Resources:
    """What one task of a family needs from Ray (a spec's ``resources:`` may override it)."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    memory: int | None = None  # bytes; None: Ray's default accounting

    def options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"num_cpus": self.num_cpus}
        if self.num_gpus:
            options["num_gpus"] = self.num_gpus
        if self.memory:
            options["memory"] = self.memory
        return options


#: Every family tracks non-finite fits; declared here once so no family forgets it.
DIVERGED = EventKind(
    "diverged", "the fit became non-finite (NaN or infinite parameters)", thresholds=False, default=True, collapse=False
)


class Family(ABC):
    """Base class of model families; subclasses register themselves by ``name``.

    Besides the batch methods below, a family *declares* what the rest of the system needs, as
    class attributes: its spec fields (``spec_fields``, read by :meth:`parse_spec`), its events
    (``event_kinds``), its trajectory columns (``metric_columns``: name -> one-line meaning), which
    metric is its distance to the truth (``distance_metric``) and which its spread ratio
    (``spread_metric``), the theory overlays of :mod:`analysis.theory` that apply
    (``theory_overlays``), the resources of its tasks (``resources``) and how often a task
    checkpoints (``checkpoint_every``). The spec parser, the engine and the report read these
    declarations and never name a family. See ``docs/families.md``.
    """

    name: ClassVar[str]
    #: The fields its spec section accepts besides ``name``.
    spec_fields: ClassVar[tuple[str, ...]] = ()
    #: The events the spec may ask for (``diverged`` is added to every family).
    event_kinds: ClassVar[tuple[EventKind, ...]] = ()
    #: Trajectory columns the family writes, with their one-line meaning (docs/schema.md).
    metric_columns: ClassVar[dict[str, str]] = {}
    #: Per-item metrics written to a table of their own instead of the trajectories: metric (a
    #: (B, items) array that ``metrics`` returns) -> (table, index column, value column); the table
    #: ``<results>/<table>/`` has one row per chain, recorded generation and item (docs/schema.md).
    side_metrics: ClassVar[dict[str, tuple[str, str, str]]] = {}
    #: The metric column that measures distance to the truth (``distance_above``, divergence tables).
    distance_metric: ClassVar[str | None] = None
    #: The metric column of fitted spread relative to the truth (fan charts), if any.
    spread_metric: ClassVar[str | None] = None
    #: Names of closed-form overlays in :mod:`analysis.theory` that describe this family.
    theory_overlays: ClassVar[tuple[str, ...]] = ()
    #: Resources one task needs (a spec's ``resources:`` section overrides them). A GPU request
    #: that no node of the cluster meets is refused before any task starts; tasks that ask for no
    #: GPU see none (``CUDA_VISIBLE_DEVICES`` empty).
    resources: ClassVar[Resources] = Resources()
    #: Save a block's state every this many generations inside a task (None: only at the end);
    #: for families whose generation takes seconds or more. A task killed mid-horizon continues
    #: each block from its last checkpoint, with the results of an uninterrupted run.
    checkpoint_every: ClassVar[int | None] = None
    #: Largest block the family wants (chains simulated together); 1 for training loops of minutes.
    max_block_size: ClassVar[int] = 4096
    #: The training set can be held as a sufficient statistic.
    sufficient: ClassVar[bool] = False
    #: Statistics support an exact uniform subsample without replacement.
    exact_subsample: ClassVar[bool] = False

    def __init__(self, spec: Any):
        self.spec = spec

    # -- spec ---------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def parse_spec(cls, section: Any) -> Any:
        """Read and validate this family's spec from a :class:`sweep.fields.Section`."""

    @classmethod
    def declared_events(cls) -> tuple[EventKind, ...]:
        """Every event the spec may name: the family's own plus ``diverged``."""
        return tuple(cls.event_kinds) + (DIVERGED,)

    def check_cell(self, point: Any) -> None:
        """Cross-field validation of one cell (``point``: its n, policy, temperature and family
        values; ``point.where(axis)`` is the spec path to name in a SpecError)."""

    def check_sweep(self, sweep: Any) -> None:
        """Cross-field validation against the whole sweep (events, record); raise SpecError."""

    @property
    def exact_draw(self) -> bool:
        """True when :meth:`draw` samples the statistics directly instead of the data."""
        return False

    # -- model --------------------------------------------------------------------------
    @abstractmethod
    def truth(self, batch: int) -> Any:
        """The true distribution's parameters, broadcast to ``batch`` chains."""

    @abstractmethod
    def sample(self, params: Any, m: int, *, rng: np.random.Generator, temperature: float = 1.0) -> np.ndarray:
        """Draw m samples per chain from the model ``params``: shape (B, m[, d]).

        Draw from ``rng`` only, chain-major, all chains in one call (the module's stream rules).
        ``temperature`` tempers the model (p^(1/temperature), renormalised; each family documents
        what that means for it). The engine passes 1 for draws of the truth: real data is never
        tempered.
        """

    @abstractmethod
    def fit(self, data: np.ndarray, *, previous: Any = None, rng: np.random.Generator | None = None) -> Any:
        """Fit the model to data of shape (B, m[, d]).

        ``previous`` is the previous generation's fit (a warm start, for families whose fit is
        iterative); ``rng`` is the block's generator, for fits with a random initialisation.
        """

    # -- statistics representation (families with ``sufficient = True``) -----------------
    def summarize(self, data: np.ndarray) -> Any:
        raise NotImplementedError(f"family {self.name!r} has no sufficient statistics")

    def draw(self, params: Any, m: int, *, rng: np.random.Generator, temperature: float = 1.0) -> Any:
        """Statistics of m fresh samples of ``params``; by default, sample and summarise."""
        return self.summarize(self.sample(params, m, rng=rng, temperature=temperature))

    def combine(self, a: Any, b: Any) -> Any:
        raise NotImplementedError(f"family {self.name!r} has no sufficient statistics")

    def subsample_stats(self, stats: Any, m: int, *, rng: np.random.Generator) -> Any:
        raise NotImplementedError(f"family {self.name!r} cannot subsample its statistics exactly")

    def fit_stats(self, stats: Any) -> Any:
        raise NotImplementedError(f"family {self.name!r} has no sufficient statistics")

    # -- observation ----------------------------------------------------------------------
    @abstractmethod
    def events(self, batch: int, horizon: int, spec: Any) -> Any:
        """A fresh event tracker for ``batch`` chains (``spec``: the sweep's events section).

        The tracker has ``update(generation, params, training)``, called at every checked
        generation (every one, or every ``spec.every``-th) with the fit and its training set, and
        an :class:`~sweep.events.EventSet` as ``.set``, whose slots it declares with
        ``set.add(event, threshold)`` for the thresholds ``spec`` lists (``spec.<event name>``).
        """

    @abstractmethod
    def metrics(self, params: Any) -> dict[str, np.ndarray]:
        """Per-chain metrics recorded in the trajectories (arrays of leading dimension B)."""

    @abstractmethod
    def cost(self, n: int, policy: Any, generations: int) -> Cost:
        """Rough cost of one chain, for task sizing."""

    # -- data representation hooks (families that keep data on a device override them) ----
    # The engine touches a training set only through these, so a torch family can keep its
    # data as tensors on its device between generations (no host copy per generation).
    def concat(self, a: Any, b: Any) -> Any:
        """Join two training sets along the sample axis (numpy arrays by default; a family that
        keeps its data as tensors on a device overrides it, e.g. with ``torch.cat(..., dim=1)``)."""
        return np.concatenate([a, b], axis=1)

    def subsample_data(self, data: Any, m: int, *, rng: np.random.Generator) -> Any:
        """A uniform subsample of m of each chain's samples, without replacement (the indices
        come from ``rng``; a device-resident family gathers with them on its device)."""
        from sweep.engine import _subsample_rows

        return _subsample_rows(data, m, rng=rng)

    def data_size(self, data: Any) -> int:
        """Samples per chain in a training set."""
        return int(data.shape[1])

    def new_pool(self, first: Any, capacity: int) -> Any:
        """Storage for everything generated so far (accumulating policies): an object with
        ``append(data) -> self``, ``view() -> data`` and ``reserve(capacity)``."""
        from sweep.engine import Pool

        return Pool(first, capacity)

    # -- files next to the results (families that keep some: a trained classifier, images) ---
    def prepare(self, location: str, *, write: bool = True) -> None:
        """Called with the results folder (a path or URI) before a task simulates blocks of this
        family (``write`` true) and before a replay does (``write`` false: read only). Does
        nothing by default."""

    def block_finished(self, location: str, cell: Any, replicates: np.ndarray, state: Any) -> None:
        """Called in a task after a block's parts are written, with the block's final
        :class:`~sweep.engine.BlockState`, to save files next to the results (sample images).
        Does nothing by default."""

    def block_width(self, n: int, policy: Any) -> float:
        """Array elements one chain contributes to a typical vectorised operation at sample size
        n (n samples, k symbols, 1 for a statistic); sets the default block size."""
        return float(n)

    def default_block_size(self, n: int, policy: Any) -> int:
        """Chains per block (the unit of vectorisation and of random streams) for one cell.

        A pure function of the cell's coordinates (the family's settings and n): never of the
        horizon, the replicate count or a cost constant, and recorded per cell in sweep.json, from
        where resume and replay read it. The smallest power of two whose vectorised operations span
        about 2^20 array elements (measured: EM at n = 10000 runs 1.7x faster per chain with 96
        chains than with 8), at most ``max_block_size``.
        """
        size = int(max(1, min(self.max_block_size, 2**20 / max(self.block_width(n, policy), 1.0))))
        return 1 << (size.bit_length() - 1)
