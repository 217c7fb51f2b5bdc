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
#: Ray's own cost per task (scheduling, argument and result transfer, the driver's loop), in
#: core-seconds: 2-3 ms measured with no-op tasks by ``bench/bench_load.py`` on a busy 2-core machine.
RAY_TASK_OVERHEAD_SECONDS = 0.002
#: Smallest task the planner makes (unless a cell has less work in all), so that Ray's overhead
#: stays under 2% of the work even at 3 ms per task.
MIN_TASK_SECONDS = 0.15
#: Fixed cost inside a task: two Parquet writes and their renames (about 6 ms measured).
TASK_FIXED_SECONDS = 0.006
#: numpy's per-call overhead, paid once per block and generation whatever the block size; the
#: families' cost models count only the per-chain part (about 50 us measured for 1-D Gaussians).
BLOCK_GENERATION_SECONDS = 5e-5


def missing_blocks(cell: Cell, done: list[tuple[int, int]]) -> list[int]:
    covered = set()
    for first, stop in done:
        covered.update(range(first, stop))
    return [b for b in range(cell.blocks) if b not in covered]


def block_seconds(spec: SweepSpec, cell: Cell, generations: int | None = None) -> float:
    """Estimated seconds of one block of ``cell`` over ``generations`` (default: the whole
    horizon), from the family's cost model plus numpy's overhead."""
    generations = spec.generations if generations is None else generations
    cost = cell.family.cost(cell.n, cell.policy, spec.generations)
    return (cost.seconds_per_chain_generation * cell.block_size + BLOCK_GENERATION_SECONDS) * generations


def task_size(seconds_per_block: float, total_blocks: int, workers: int, target_seconds: float) -> int:
    """Blocks per task: about ``target_seconds`` of work, fewer if that leaves a worker fewer than
    four tasks (so the cores stay busy to the end), but never under :data:`MIN_TASK_SECONDS`."""
    per_block = max(seconds_per_block, 1e-9)
    target = max(1, int((target_seconds - TASK_FIXED_SECONDS) / per_block))
    balanced = max(1, math.ceil(total_blocks / (4 * max(workers, 1))))
    floor = max(1, math.ceil((MIN_TASK_SECONDS - TASK_FIXED_SECONDS) / per_block))
    return max(min(target, balanced), floor)


def plan_tasks(
    spec: SweepSpec,
    cells: list[Cell],
    done: dict[int, list[tuple[int, int]]],
    *,
    workers: int,
    shorter: dict[tuple[int, int, int], int] | None = None,
    blocks_per_task: int | None = None,
    target_seconds: float | None = None,
) -> list[Task]:
    """Tasks covering every block not in ``done``, each a contiguous run of one cell's blocks.

    Parameters
    ----------
    blocks_per_task : int, optional
        Force this many blocks per task (tests and benchmarks); by default sized from the
        family's cost model by :func:`task_size`.
    target_seconds : float, optional
        Target work per task, default :data:`TARGET_TASK_SECONDS`.
    shorter : dict, optional
        Kept parts (cell, first, stop) computed to a shorter horizon: one task each extends it
        (the part is rewritten whole, so its block range is kept).
    """
    target_seconds = TARGET_TASK_SECONDS if target_seconds is None else target_seconds
    missing = {cell.index: missing_blocks(cell, done.get(cell.index, [])) for cell in cells}
    total_blocks = sum(len(m) for m in missing.values())
    tasks: list[Task] = [Task(c, first, stop, extend_from=h) for (c, first, stop), h in sorted((shorter or {}).items())]
    for cell in cells:
        blocks = missing[cell.index]
        if not blocks:
            continue
        if blocks_per_task is not None:
            size = blocks_per_task
        else:
            size = task_size(block_seconds(spec, cell), total_blocks, workers, target_seconds)
        run: list[int] = []
        for block in blocks + [None]:
            if run and (block is None or block != run[-1] + 1 or len(run) == size):
                tasks.append(Task(cell.index, run[0], run[-1] + 1))
                run = []
            if block is not None:
                run.append(block)
    return tasks


def expected_rows(spec: SweepSpec, cells: list[Cell]):
    """A function (kind, cell, first, stop, horizon) -> rows a valid part computed to ``horizon``
    has, or None if the range is not in the grid or the horizon is longer than the sweep's."""
    events_per_chain = [cell.family.events(1, spec.generations, spec.events).set.per_chain for cell in cells]

    def rows(kind: str, cell: int, first: int, stop: int, horizon: int) -> int | None:
        if cell >= len(cells) or not 0 <= first < stop <= cells[cell].blocks or not 1 <= horizon <= spec.generations:
            return None
        chains = cells[cell].chains(first, stop)
        if kind == "trajectories":
            return chains * len(spec.record.generations(horizon))
        return chains * events_per_chain[cell]

    return rows
