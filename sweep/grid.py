"""Cells, blocks and random streams, all keyed on stable grid coordinates.

A cell is one point of the grid (n, policy, temperature, family fields). Its chains (replicates)
are grouped in blocks of ``block_size``; block j of a cell draws from
``SeedSequence(root_entropy, spawn_key=(cell_key, j))`` through a
:class:`~sweep.streams.BlockGenerator`, where ``cell_key`` hashes the cell's coordinates. A
chain's stream therefore depends only on the root seed, its cell's coordinates and its replicate
index: never on the order of execution, on how blocks are grouped into tasks, on the replicate
count (a partial last block gives its chains the values a full block would) or on the horizon.

The block size is the family's default for the cell's n (or the spec's ``block_size``) when a
folder is new; it is recorded per cell in sweep.json, and resume and replay read it from there,
so a later change of the default never changes an existing folder's streams.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from sweep.axes import Point
from sweep.families import Family
from sweep.policies import Policy
from sweep.spec import SweepSpec
from sweep.streams import BlockGenerator

#: Pool-growing cells that keep samples get blocks sized as if they held this many generations'
#: samples, so their memory stays bounded without the block size depending on the horizon.
NOMINAL_POOL_GENERATIONS = 1024


@dataclass(frozen=True)
class Cell:
    """One grid point and how its chains are blocked."""

    index: int
    point: Point
    block_size: int
    replicates: int
    key: int
    family_name: str = field(default="", compare=False)

    @property
    def n(self) -> int:
        return self.point.n

    @property
    def policy(self) -> Policy:
        return self.point.policy

    @property
    def temperature(self) -> float:
        return self.point.temperature

    @cached_property
    def family(self) -> Family:
        """The family at this cell's settings (the spec's, with the grid's family values)."""
        from sweep.families import resolve_family

        return resolve_family(self.family_name)(self.point.family_spec)

    @property
    def label(self) -> str:
        """``n=100, replace`` plus any other coordinate (``temperature=0.5, family.k=3``)."""
        parts = [f"n={self.n}", self.policy.label]
        if self.temperature != 1.0:
            parts.append(f"temperature={self.temperature:g}")
        parts += [f"family.{f}={v}" for f, v in self.point.family]
        return ", ".join(parts)

    @property
    def blocks(self) -> int:
        return -(-self.replicates // self.block_size)

    def block_range(self, block: int) -> range:
        """The replicates of one block."""
        start = block * self.block_size
        return range(start, min(start + self.block_size, self.replicates))

    def chains(self, first_block: int, stop_block: int) -> int:
        return min(stop_block * self.block_size, self.replicates) - first_block * self.block_size

    def __getstate__(self) -> dict[str, Any]:  # ship cells to tasks without the cached family
        state = dict(self.__dict__)
        state.pop("family", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


def cell_key(coordinates: dict[str, Any]) -> int:
    """Stable 63-bit hash of a cell's coordinates (fits an int64 column)."""
    text = json.dumps(coordinates, sort_keys=True)
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def default_block_size(family: Family, point: Point) -> int:
    """The family's block size for a cell, smaller where the cell keeps a growing pool of samples."""
    from sweep.engine import representation

    if point.policy.grows and representation(family, point.policy) == "data":
        width = family.block_width(point.n, point.policy) * NOMINAL_POOL_GENERATIONS
        size = int(max(1, min(family.max_block_size, 2**20 / max(width, 1.0))))
        return 1 << (size.bit_length() - 1)
    return family.default_block_size(point.n, point.policy)


def cells(spec: SweepSpec, block_sizes: list[int] | None = None) -> list[Cell]:
    """The grid's cells in a fixed order (grid part by part, first axis major).

    ``block_sizes``: the sizes recorded in a folder's sweep.json, which take precedence.
    """
    out = []
    for index, point in enumerate(spec.grid.points):
        cell = Cell(
            index=index,
            point=point,
            block_size=1,
            replicates=spec.replicates,
            key=cell_key(point.coordinates(spec.defaults)),
            family_name=spec.family_name,
        )
        if block_sizes is not None and index < len(block_sizes):
            size = block_sizes[index]
        else:
            size = spec.block_size or default_block_size(cell.family, point)
        object.__setattr__(cell, "block_size", int(size))
        out.append(cell)
    return out


def block_rng(root_entropy: int, cell: Cell, block: int, draws: int = 0) -> BlockGenerator:
    """The generator of one block of one cell (``draws``: to continue from a saved state)."""
    sequence = np.random.SeedSequence(root_entropy, spawn_key=(cell.key, block))
    return BlockGenerator(sequence, draws)
