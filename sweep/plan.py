"""Partition the missing blocks of a sweep into tasks of roughly equal, bounded work.

Task boundaries never affect results (each block has its own random stream), so the planner is
free to size tasks for the scheduler: big enough that Ray's per-task overhead (about a
millisecond) is noise, small enough that the progress bar moves, the cores stay busy and a
retried task loses little.
"""
from __future__ import annotations

import math

from sweep.grid import Cell
from sweep.spec import SweepSpec
from sweep.task import Task

TARGET_TASK_SECONDS = 2.0


def missing_blocks(cell: Cell, done: list[tuple[int, int]]) -> list[int]:
    covered = set()
    for first, stop in done:
        covered.update(range(first, stop))
    return [b for b in range(cell.blocks) if b not in covered]


def block_seconds(spec: SweepSpec, cell: Cell) -> float:
    cost = spec.family.cost(cell.n, cell.policy, spec.generations)
    return cost.seconds_per_chain_generation * cell.block_size * spec.generations


def plan_tasks(
    spec: SweepSpec,
    cells: list[Cell],
    done: dict[int, list[tuple[int, int]]],
    *,
    workers: int,
    blocks_per_task: int | None = None,
    target_seconds: float = TARGET_TASK_SECONDS,
) -> list[Task]:
    """Tasks covering every block not in ``done``, each a contiguous run of one cell's blocks.

    Parameters
    ----------
    blocks_per_task : int, optional
        Force this many blocks per task (tests and benchmarks); by default sized from the
        family's cost model to about ``target_seconds``, and small enough to give every worker
        several tasks.
    """
    missing = {cell.index: missing_blocks(cell, done.get(cell.index, [])) for cell in cells}
    total_blocks = sum(len(m) for m in missing.values())
    tasks: list[Task] = []
    for cell in cells:
        blocks = missing[cell.index]
        if not blocks:
            continue
        if blocks_per_task is not None:
            size = blocks_per_task
        else:
            size = max(1, int(target_seconds / max(block_seconds(spec, cell), 1e-9)))
            size = min(size, max(1, math.ceil(total_blocks / (4 * max(workers, 1)))))
        run: list[int] = []
        for block in blocks + [None]:
            if run and (block is None or block != run[-1] + 1 or len(run) == size):
                tasks.append(Task(cell.index, run[0], run[-1] + 1))
                run = []
            if block is not None:
                run.append(block)
    return tasks


def expected_rows(spec: SweepSpec, cells: list[Cell]):
    """A function (kind, cell, first, stop) -> rows a valid part has, or None if not in the grid."""
    recorded = len(spec.record.generations(spec.generations))
    events_per_chain = spec.family.events(1, spec.generations, spec.events).set.per_chain

    def rows(kind: str, cell: int, first: int, stop: int) -> int | None:
        if cell >= len(cells) or not 0 <= first < stop <= cells[cell].blocks:
            return None
        chains = cells[cell].chains(first, stop)
        return chains * (recorded if kind == "trajectories" else events_per_chain)

    return rows
