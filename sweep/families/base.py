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


class Family(ABC):
    """Base class of model families; subclasses register themselves by ``name``."""

    name: ClassVar[str]
    #: The fields its spec section accepts besides ``name``.
    spec_fields: ClassVar[tuple[str, ...]] = ()
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

    def check_sweep(self, sweep: Any) -> None:
        """Cross-field validation against the whole sweep (grid, policies, events); raise SpecError."""

    @property
    def exact_draw(self) -> bool:
        """True when :meth:`draw` samples the statistics directly instead of the data."""
        return False

    # -- model --------------------------------------------------------------------------
    @abstractmethod
    def truth(self, batch: int) -> Any:
        """The true distribution's parameters, broadcast to ``batch`` chains."""

    @abstractmethod
    def sample(self, params: Any, m: int, *, rng: np.random.Generator) -> np.ndarray:
        """Draw m samples per chain from the model ``params``: shape (B, m[, d])."""

    @abstractmethod
    def fit(self, data: np.ndarray, *, previous: Any = None, rng: np.random.Generator | None = None) -> Any:
        """Fit the model to data of shape (B, m[, d]).

        ``previous`` is the previous generation's fit (a warm start, for families whose fit is
        iterative); ``rng`` is the block's generator, for fits with a random initialisation.
        """

    # -- statistics representation (families with ``sufficient = True``) -----------------
    def summarize(self, data: np.ndarray) -> Any:
        raise NotImplementedError(f"family {self.name!r} has no sufficient statistics")

    def draw(self, params: Any, m: int, *, rng: np.random.Generator) -> Any:
        """Statistics of m fresh samples of ``params``; by default, sample and summarise."""
        return self.summarize(self.sample(params, m, rng=rng))

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

        The tracker has ``update(generation, params, state)``, called at every generation, and
        an :class:`~sweep.events.EventSet` as ``.set``.
        """

    @abstractmethod
    def metrics(self, params: Any) -> dict[str, np.ndarray]:
        """Per-chain metrics recorded in the trajectories (arrays of leading dimension B)."""

    @abstractmethod
    def cost(self, n: int, policy: Any, generations: int) -> Cost:
        """Rough cost of one chain, for task sizing."""

    def default_block_size(self, n: int, policy: Any, generations: int) -> int:
        """Chains per block (the unit of vectorisation and of random streams) for one cell.

        The smallest power of two whose vectorised operations span about 2^20 array elements
        (measured: EM at n = 10000 runs 1.7x faster per chain with 96 chains than with 8), within
        256 MiB of arrays and 4096 chains. Smaller blocks would leave numpy's per-call overhead
        in charge; larger ones only coarsen the scheduling. It depends on neither the number of
        replicates nor the horizon's compute time, so adding replicates leaves existing chains
        unchanged.
        """
        cost = self.cost(n, policy, generations)
        by_memory = (256 * 2**20) / max(cost.bytes_per_chain, 1.0)
        by_width = 2**20 / max(cost.width, 1.0)
        size = int(max(1, min(4096, by_memory, by_width)))
        return 1 << (size.bit_length() - 1)
