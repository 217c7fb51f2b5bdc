"""One task: a contiguous range of blocks of one cell, simulated and written as two Parquet parts.

Fault injection (for tests of failure handling only): when the environment variable
``COLLAPSE_SWEEP_FAIL_CELLS`` holds a comma-separated list of cell indices, every task of those
cells raises ``FloatingPointError`` after simulating its first block, as a numerical error in a
chain would. The driver forwards the variable from its own environment to the tasks, so it works
on any cluster; unset, it costs one dictionary lookup per task.
"""

from __future__ import annotations

import json
import os
import pickle
import resource
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sweep.axes import FAMILY_PREFIX, column_name
from sweep.engine import BlockRun, BlockState
from sweep.grid import Cell, block_rng
from sweep.spec import SweepSpec
from sweep.store import Store, part_name, with_horizon

FAIL_CELLS_ENV = "COLLAPSE_SWEEP_FAIL_CELLS"


def _injected_fault(cell: Cell) -> None:
    value = os.environ.get(FAIL_CELLS_ENV, "")
    if str(cell.index) in (v.strip() for v in value.split(",")):
        raise FloatingPointError(f"non-finite value in cell {cell.index} (injected by {FAIL_CELLS_ENV}={value})")


@dataclass(frozen=True)
class Task:
    """Blocks [first, stop) of cell ``cell``; ``extend_from``: the horizon its parts were computed
    to, when they are extended to the sweep's (longer) horizon."""

    cell: int
    first: int
    stop: int
    extend_from: int | None = None

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


#: A block's final state is kept (to extend the sweep later) only up to this size; a larger one
#: (a long accumulate pool of samples) is recomputed from generation 0 when the sweep is extended,
#: which gives the same values since streams do not depend on the horizon.
STATE_LIMIT_BYTES = 64 * 2**20


def _constant(value: object, rows: int, type_: pa.DataType) -> pa.Array:
    # Dictionary-encoded: no per-row copy in memory, and Parquet stores it as one run.
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, dtype=np.int8)), pa.array([value], type=type_))


def axis_types(spec: SweepSpec) -> dict[str, pa.DataType]:
    """The Parquet type of each family-axis column, the same for every cell of the sweep: int64,
    float64, bool or string (JSON text for lists and mixed kinds, e.g. bandwidth scott | 0.2)."""
    types: dict[str, pa.DataType] = {}
    for field in spec.grid.family_axes:
        values = [dict(point.family)[field] for point in spec.grid.points]
        if all(isinstance(v, bool) for v in values):
            types[field] = pa.bool_()
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            types[field] = pa.int64()
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            types[field] = pa.float64()
        else:
            types[field] = pa.string()
    return types


def _axis_value(value: object, type_: pa.DataType) -> object:
    if pa.types.is_string(type_):
        return value if isinstance(value, str) else json.dumps(value)
    if pa.types.is_floating(type_):
        return float(value)
    return value


def coordinate_columns(spec: SweepSpec, cell: Cell, root_entropy: int, rows: int) -> dict[str, pa.Array]:
    """The cell-coordinate columns shared by both tables (docs/schema.md): one per grid axis."""
    policy = cell.policy.columns()
    columns = {
        "family": _constant(spec.family_name, rows, pa.string()),
        "cell": _constant(cell.index, rows, pa.int32()),
        "cell_key": _constant(cell.key, rows, pa.int64()),
        "n": _constant(cell.n, rows, pa.int64()),
        "policy": _constant(policy["policy"], rows, pa.string()),
        "policy_kind": _constant(policy["policy_kind"], rows, pa.string()),
        "keep": _constant(policy["keep"], rows, pa.float64()),
        "synthetic": _constant(policy["synthetic"], rows, pa.float64()),
        "real": _constant(policy["real"], rows, pa.float64()),
        "temperature": _constant(cell.temperature, rows, pa.float64()),
    }
    if getattr(cell, "trial", None) is not None:  # a cell of 'sweep search': the trial that asked for it
        columns["trial"] = _constant(cell.trial, rows, pa.int32())
    values = dict(cell.point.family)
    for field, type_ in axis_types(spec).items():
        columns[column_name(FAMILY_PREFIX + field)] = _constant(_axis_value(values[field], type_), rows, type_)
    columns["seed"] = _constant(str(root_entropy), rows, pa.string())
    return columns


def _column(values: np.ndarray | list[np.ndarray]) -> pa.Array | pa.ChunkedArray:
    """A metric column; several values per row (a d-dimensional mean, k component weights) become a
    list column, variable-length so that cells with different k or d share one schema. A list of
    arrays (consecutive rows) becomes a chunked column, without copying the values."""
    if isinstance(values, list):
        return pa.chunked_array([_column(v) for v in values])
    if values.ndim == 2:
        rows, width = values.shape
        offsets = pa.array(np.arange(rows + 1, dtype=np.int32) * np.int32(width))  # width 0: empty lists
        return pa.ListArray.from_arrays(offsets, pa.array(values.ravel()))
    return pa.array(values)


def build_tables(
    spec: SweepSpec, cell: Cell, root_entropy: int, trajectories: dict, events: dict
) -> tuple[pa.Table, pa.Table]:
    """Arrow tables of one task from the engine's columns (per-item metrics the family writes to
    tables of their own are left out: :func:`side_tables`)."""
    side = getattr(cell.family, "side_metrics", {})
    traj = coordinate_columns(spec, cell, root_entropy, len(trajectories["replicate"]))
    traj.update({name: _column(values) for name, values in trajectories.items() if name not in side})
    ev = coordinate_columns(spec, cell, root_entropy, len(events["replicate"]))
    ev["replicate"] = pa.array(events["replicate"])
    ev["event"] = pa.array(events["event"], type=pa.string())
    ev["threshold"] = pa.array(events["threshold"], mask=np.isnan(events["threshold"]))
    ev["symbol"] = pa.array(events["symbol"], mask=events["symbol"] < 0)
    ev["initial_count"] = pa.array(events["initial_count"], mask=events["initial_count"] < 0)
    ev["generation"] = pa.array(events["generation"])
    ev["observed"] = pa.array(events["observed"])
    ev["checked_every"] = pa.array(events["checked_every"])
    return pa.table(traj), pa.table(ev)


def side_tables(spec: SweepSpec, cell: Cell, root_entropy: int, trajectories: dict) -> dict[str, pa.Table]:
    """The family's per-item metrics (``side_metrics``: metric -> (table, index column, value
    column), several values per chain and recorded generation, e.g. one perplexity per generated
    sequence) as long tables: one row per chain, recorded generation and item."""
    tables: dict[str, dict[str, pa.Array]] = {}
    for metric, (table, index, value) in getattr(cell.family, "side_metrics", {}).items():
        if metric not in trajectories:
            continue
        lists = _column(trajectories[metric])
        if isinstance(lists, pa.ChunkedArray):
            lists = lists.combine_chunks()
        parents = pc.list_parent_indices(lists)
        offsets = lists.offsets.to_numpy()
        rows = parents.to_numpy()
        item = np.arange(rows.size, dtype=np.int64) - offsets[:-1][rows]
        columns = tables.setdefault(table, {})
        if not columns:
            columns.update(coordinate_columns(spec, cell, root_entropy, rows.size))
            columns["replicate"] = pa.array(np.asarray(trajectories["replicate"])[rows])
            columns["generation"] = pa.array(np.asarray(trajectories["generation"])[rows])
            columns[index] = pa.array(item.astype(np.int32))
        columns[value] = lists.flatten()
    return {name: pa.table(columns) for name, columns in tables.items()}


def _load_state(store: Store, kind: str, cell: Cell, block: int) -> BlockState | None:
    payload = store.read_state(kind, cell.index, block)
    if payload is None:
        return None
    try:
        return pickle.loads(payload)
    except Exception:  # a damaged or foreign file: recompute, as for a damaged part
        return None


def _old_rows(
    store: Store, task: Task, block: int, cell: Cell, keep: np.ndarray, kind: str = "trajectories"
) -> pa.Table:
    """The stored trajectory (or side-table) rows of one block that the new horizon's schedule keeps."""
    path = f"{store._dir(kind, task.cell)}/{task.name}"
    with store.fs.open_input_file(path) as handle:
        table = pq.read_table(handle)
    span = cell.block_range(block)
    replicate, generation = table["replicate"], table["generation"]
    mask = pc.and_(
        pc.and_(pc.greater_equal(replicate, span.start), pc.less(replicate, span.stop)),
        pc.is_in(generation, pa.array(keep.astype(np.int32))),
    )
    return table.filter(mask)


def simulate_task_block(
    spec: SweepSpec, cell: Cell, block: int, root_entropy: int, store: Store | None, task: Task
) -> tuple[pa.Table, pa.Table, BlockState, dict[str, pa.Table]]:
    """One block of a task as Arrow tables: from generation 0, from a checkpoint, or extended from
    its final state at ``task.extend_from`` (old rows kept, new generations appended); the last
    item: the family's side tables (:func:`side_tables`)."""
    horizon = spec.generations
    recorded = spec.record.generations(horizon)
    mask = np.zeros(horizon + 1, dtype=bool)
    mask[recorded] = True
    run = BlockRun(cell.family, cell, block, rng=block_rng(root_entropy, cell, block), events_spec=spec.events)
    old = None
    saved = None
    if store is not None and task.extend_from is not None:
        saved = _load_state(store, "final", cell, block)
        if saved is not None and saved.generation == task.extend_from:
            old_kept = recorded[recorded <= task.extend_from]
            old = _old_rows(store, task, block, cell, old_kept)
            old_side = {
                kind: _old_rows(store, task, block, cell, old_kept, kind)
                for kind in {table for table, _, _ in getattr(cell.family, "side_metrics", {}).values()}
            }
            saved.snapshots = []
        else:
            saved = None
    if saved is None and store is not None and cell.family.checkpoint_every:
        saved = _load_state(store, "checkpoint", cell, block)
        # usable only mid-horizon and for the block's chains as they are now: a run with fewer
        # replicates leaves a smaller last block, whose checkpoint cannot give the new chains
        if saved is not None and not (0 < saved.generation < horizon and saved.tracker.set.batch == run.batch):
            saved = None
    if saved is not None:
        run.restore(saved, horizon)
    else:
        run.start(horizon)
    every = cell.family.checkpoint_every
    while run.state.generation < horizon:
        stop = horizon if not every else min(horizon, (run.state.generation // every + 1) * every)
        run.advance(stop, horizon, mask)
        if every and stop < horizon and store is not None:
            store.write_state("checkpoint", cell.index, block, pickle.dumps(run.state, protocol=5))
    first_new = task.extend_from if old is not None else -1
    traj, events = run.result(recorded[recorded > first_new], join=False)
    traj_table, events_table = build_tables(spec, cell, root_entropy, traj, events)
    side = side_tables(spec, cell, root_entropy, traj)
    if old is not None:
        # coordinates are rebuilt (constants per cell); measured columns are taken as stored
        coordinates = coordinate_columns(spec, cell, root_entropy, old.num_rows)
        columns = [
            coordinates[name] if name in coordinates else old[name].cast(field.type)
            for name, field in zip(traj_table.schema.names, traj_table.schema)
        ]
        traj_table = pa.concat_tables([pa.table(columns, schema=traj_table.schema), traj_table])
        for kind, table in side.items():
            kept = old_side[kind]
            coordinates = coordinate_columns(spec, cell, root_entropy, kept.num_rows)
            side[kind] = pa.concat_tables(
                [
                    pa.table(
                        [
                            coordinates[name] if name in coordinates else kept[name].cast(f.type)
                            for name, f in zip(table.schema.names, table.schema)
                        ],
                        schema=table.schema,
                    ),
                    table,
                ]
            )
    return traj_table, events_table, run.state, side


def _save_final_state(store: Store, cell: Cell, block: int, state: BlockState) -> None:
    """Keep a block's final state for a later extension, after its parts are written; best effort:
    without it (too large, or the disk is full) an extension recomputes the block from generation 0,
    with the same result."""
    state.snapshots = []
    payload = pickle.dumps(state, protocol=5)
    try:
        if len(payload) <= STATE_LIMIT_BYTES:
            store.write_state("final", cell.index, block, payload)
            return
    except OSError:
        pass
    store.delete_state("final", cell.index, block)


def run_task(spec: SweepSpec, cells: list[Cell], root_entropy: int, location: str, task: Task) -> TaskResult:
    """Simulate a task's blocks and write its two parts; the events part first, so a part pair
    is complete exactly when the trajectories part exists (both are validated on resume).

    Each block's final state is then saved next to the parts (when small enough), so that a later,
    longer horizon continues the chains instead of recomputing them."""
    started, cpu_started = time.perf_counter(), time.process_time()
    cell = cells[task.cell]
    store = Store(location)
    cell.family.prepare(location)
    trajectory_parts, event_parts, states, side_parts = [], [], [], {}
    for block in range(task.first, task.stop):
        traj, ev, state, side = simulate_task_block(spec, cell, block, root_entropy, store, task)
        trajectory_parts.append(traj)
        event_parts.append(ev)
        states.append((block, state))
        for kind, table in side.items():
            side_parts.setdefault(kind, []).append(table)
        _injected_fault(cell)
    traj_table = with_horizon(pa.concat_tables(trajectory_parts), spec.generations)
    events_table = with_horizon(pa.concat_tables(event_parts), spec.generations)
    # side tables first: a complete pair of parts then always has its side parts (the same name)
    for kind, tables in side_parts.items():
        store.write_part(kind, cell.index, task.name, with_horizon(pa.concat_tables(tables), spec.generations))
    events_path = store.write_part("events", cell.index, task.name, events_table)
    try:
        store.write_part("trajectories", cell.index, task.name, traj_table)
    except BaseException:
        # Take the events part back, so that readers never see events of chains without
        # trajectories (resume would remove the orphan anyway, but readers may come first).
        if task.extend_from is None:
            store.delete_quietly(events_path)
        raise
    for block, state in states:
        cell.family.block_finished(location, cell, np.asarray(cell.block_range(block)), state)
        _save_final_state(store, cell, block, state)
        store.delete_state("checkpoint", cell.index, block)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
    return TaskResult(
        task,
        cell.chains(task.first, task.stop),
        traj_table.num_rows,
        time.perf_counter() - started,
        time.process_time() - cpu_started,
        peak,
    )
