"""Cells, blocks and random streams, all keyed on stable grid coordinates.

A cell is one point of the grid (n, policy). Its chains (replicates) are grouped in fixed blocks
of ``block_size``; block j of a cell draws from
``SeedSequence(root_entropy, spawn_key=(cell_key, j))``, where ``cell_key`` hashes the cell's
coordinates. Streams therefore never depend on the order of execution, on how blocks are grouped
into tasks, or on which other values the grid holds; replaying one chain means rerunning its block.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from sweep.policies import Policy
from sweep.spec import SweepSpec


@dataclass(frozen=True)
class Cell:
    """One grid point and how its chains are blocked."""

    index: int
    n: int
    policy: Policy
    block_size: int
    replicates: int

    @property
    def key(self) -> int:
        """Stable 63-bit hash of the cell's coordinates (fits an int64 column)."""
        text = json.dumps({"n": self.n, "policy": self.policy.to_raw()}, sort_keys=True)
        digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") >> 1

    @property
    def blocks(self) -> int:
        return -(-self.replicates // self.block_size)

    def block_range(self, block: int) -> range:
        """The replicates of one block."""
        start = block * self.block_size
        return range(start, min(start + self.block_size, self.replicates))

    def chains(self, first_block: int, stop_block: int) -> int:
        return min(stop_block * self.block_size, self.replicates) - first_block * self.block_size


def cells(spec: SweepSpec) -> list[Cell]:
    """The grid's cells in a fixed order (grid part by part, n major, policy minor)."""
    out = []
    for index, (n, policy) in enumerate(spec.grid.points()):
        size = spec.block_size or spec.family.default_block_size(n, policy, spec.generations)
        out.append(Cell(index=index, n=n, policy=policy, block_size=size, replicates=spec.replicates))
    return out


def block_rng(root_entropy: int, cell: Cell, block: int) -> np.random.Generator:
    """The generator of one block of one cell."""
    sequence = np.random.SeedSequence(root_entropy, spawn_key=(cell.key, block))
    return np.random.Generator(np.random.PCG64(sequence))
