"""One task: a contiguous range of blocks of one cell, simulated and written as two Parquet parts.

Fault injection (for tests of failure handling only): when the environment variable
``COLLAPSE_SWEEP_FAIL_CELLS`` holds a comma-separated list of cell indices, every task of those
cells raises ``FloatingPointError`` after simulating its first block, as a numerical error in a
chain would. The driver forwards the variable from its own environment to the tasks, so it works
on any cluster; unset, it costs one dictionary lookup per task.
"""
from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from sweep.engine import simulate_block
from sweep.grid import Cell, block_rng
from sweep.spec import SweepSpec
from sweep.store import Store, part_name


FAIL_CELLS_ENV = "COLLAPSE_SWEEP_FAIL_CELLS"


def _injected_fault(cell: Cell) -> None:
    value = os.environ.get(FAIL_CELLS_ENV, "")
    if str(cell.index) in (v.strip() for v in value.split(",")):
        raise FloatingPointError(f"non-finite value in cell {cell.index} (injected by {FAIL_CELLS_ENV}={value})")


@dataclass(frozen=True)
class Task:
    """Blocks [first, stop) of cell ``cell``."""

    cell: int
    first: int
    stop: int

    @property
    def name(self) -> str:
        return part_name(self.cell, self.first, self.stop)


@dataclass(frozen=True)
class TaskResult:
    task: Task
    chains: int
    rows: int
    seconds: float  # wall-clock inside the task
    cpu_seconds: float = 0.0  # this process's CPU time inside the task (less when cores are shared)
    #: High-water mark of the worker process's resident memory after the task, MiB.
    peak_rss_mib: float = 0.0


def _constant(value: object, rows: int, type_: pa.DataType) -> pa.Array:
    # Dictionary-encoded: no per-row copy in memory, and Parquet stores it as one run.
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, dtype=np.int8)), pa.array([value], type=type_))


def coordinate_columns(spec: SweepSpec, cell: Cell, root_entropy: int, rows: int) -> dict[str, pa.Array]:
    """The cell-coordinate columns shared by both tables (docs/schema.md)."""
    policy = cell.policy.columns()
    return {
        "family": _constant(spec.family_name, rows, pa.string()),
        "cell": _constant(cell.index, rows, pa.int32()),
        "cell_key": _constant(cell.key, rows, pa.int64()),
        "n": _constant(cell.n, rows, pa.int64()),
        "policy": _constant(policy["policy"], rows, pa.string()),
        "policy_kind": _constant(policy["policy_kind"], rows, pa.string()),
        "keep": _constant(policy["keep"], rows, pa.float64()),
        "synthetic": _constant(policy["synthetic"], rows, pa.float64()),
        "real": _constant(policy["real"], rows, pa.float64()),
        "seed": _constant(str(root_entropy), rows, pa.string()),
    }


def _column(values: np.ndarray) -> pa.Array:
    if values.ndim == 2:  # several values per row, e.g. a d-dimensional mean
        return pa.FixedSizeListArray.from_arrays(pa.array(values.ravel()), values.shape[1])
    return pa.array(values)


def build_tables(spec: SweepSpec, cell: Cell, root_entropy: int, trajectories: dict, events: dict) -> tuple[pa.Table, pa.Table]:
    """Arrow tables of one task from the engine's columns."""
    traj = coordinate_columns(spec, cell, root_entropy, len(trajectories["replicate"]))
    traj.update({name: _column(values) for name, values in trajectories.items()})
    ev = coordinate_columns(spec, cell, root_entropy, len(events["replicate"]))
    ev["replicate"] = pa.array(events["replicate"])
    ev["event"] = pa.array(events["event"], type=pa.string())
    ev["threshold"] = pa.array(events["threshold"], mask=np.isnan(events["threshold"]))
    ev["symbol"] = pa.array(events["symbol"], mask=events["symbol"] < 0)
    ev["initial_count"] = pa.array(events["initial_count"], mask=events["initial_count"] < 0)
    ev["generation"] = pa.array(events["generation"])
    ev["observed"] = pa.array(events["observed"])
    return pa.table(traj), pa.table(ev)


def run_task(spec: SweepSpec, cells: list[Cell], root_entropy: int, location: str, task: Task) -> TaskResult:
    """Simulate a task's blocks and write its two parts; the events part first, so a part pair
    is complete exactly when the trajectories part exists (both are validated on resume)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    cell = cells[task.cell]
    family = spec.family
    recorded = spec.record.generations(spec.generations)
    trajectory_parts, event_parts = [], []
    for block in range(task.first, task.stop):
        rng = block_rng(root_entropy, cell, block)
        traj, ev = simulate_block(
            family, cell, block, generations=spec.generations, recorded=recorded, events_spec=spec.events, rng=rng
        )
        trajectory_parts.append(traj)
        event_parts.append(ev)
        _injected_fault(cell)
    traj = {k: np.concatenate([p[k] for p in trajectory_parts]) for k in trajectory_parts[0]}
    ev = {k: np.concatenate([p[k] for p in event_parts]) for k in event_parts[0]}
    traj_table, events_table = build_tables(spec, cell, root_entropy, traj, ev)
    store = Store(location)
    events_path = store.write_part("events", cell.index, task.name, events_table)
    try:
        store.write_part("trajectories", cell.index, task.name, traj_table)
    except BaseException:
        # Take the events part back, so that readers never see events of chains without
        # trajectories (resume would remove the orphan anyway, but readers may come first).
        store.delete_quietly(events_path)
        raise
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    return TaskResult(task, cell.chains(task.first, task.stop), traj_table.num_rows, time.perf_counter() - started,
                      time.process_time() - cpu_started, peak)
