"""Working sets of chains that stop at different iterations (EM, Lloyd).

A batch of chains iterates until each one has converged. Finished chains leave the working arrays
at once, so that no iteration is spent on them, and the live ones stay a prefix of those arrays:
each finished row in the prefix is overwritten by a live row from beyond it (a swap-remove), so
that a finished chain costs one row copy, where compacting the whole working set every few
iterations copied every live row each time. Rows are computed independently of one another, so
their positions do not change any chain's values.
"""

from __future__ import annotations

import numpy as np


def swap_out(stop: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Moves that drop the rows ``stop`` (R,) of a working set.

    Returns
    -------
    order : ndarray (R',)
        The old positions of the live rows, in their new order (R' = number not stopping).
    holes, donors : ndarray
        In-place moves ``a[holes] = a[donors]`` that make ``a[:R']`` equal to ``a[order]``.
    """
    keep = ~stop
    live = int(np.count_nonzero(keep))
    holes = np.flatnonzero(stop[:live])
    donors = np.flatnonzero(keep[live:]) + live
    order = np.arange(live)
    order[holes] = donors
    return order, holes, donors


class WorkingRows:
    """A large per-chain array (the samples or features) whose live rows form a prefix.

    Unless ``owned``, it is not copied until the first row leaves (the caller's array is never
    written); then the live rows are gathered once into an array of its own, and later
    departures are swap-removes within it.
    """

    def __init__(self, data: np.ndarray, *, owned: bool = False):
        # owned: the array is this object's to reorder (no copy at the first departure)
        self.data, self.size, self.owned = data, data.shape[0], owned

    @property
    def live(self) -> np.ndarray:
        """The live rows (a view)."""
        return self.data[: self.size]

    def drop(self, order: np.ndarray, holes: np.ndarray, donors: np.ndarray) -> None:
        """Apply :func:`swap_out`'s moves."""
        if self.owned:
            self.data[holes] = self.data[donors]
        else:
            self.data, self.owned = self.data[order], True
        self.size = order.size
