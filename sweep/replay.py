"""Replay one chain of a finished sweep, bit for bit, without touching the results folder."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from sweep.engine import simulate_block
from sweep.errors import UsageError
from sweep.families import FamilyLoadError, resolve_family
from sweep.grid import block_rng
from sweep.grid import cells as grid_cells
from sweep.spec import parse_spec
from sweep.store import Store, plain_table
from sweep.task import build_tables


def stored_cells(location: str) -> tuple[dict, Any, list]:
    """A results folder's ``sweep.json``, its spec and its cells as the folder computed them:
    the block sizes recorded per cell (whatever the defaults are now), and for a folder of
    ``sweep search`` each cell's trial.

    Returns
    -------
    (meta, spec, cells)
    """
    meta = Store(location).read_meta()
    if meta is None:
        raise UsageError(f"results folder '{location}': expected a folder written by 'sweep run', got none")
    spec = parse_spec(_stored_kernel(meta["spec"]))
    stored = meta.get("cells") or []
    if not isinstance(stored, list):
        stored = []
    sizes = [c.get("block_size") for c in stored]
    grid = grid_cells(spec, block_sizes=sizes if len(sizes) == len(spec.grid.points) else None)
    for index, entry in enumerate(stored[: len(grid)]):
        if entry.get("trial") is not None:  # a cell of 'sweep search' carries its trial in every row
            grid[index] = replace(grid[index], trial=int(entry["trial"]))
    return meta, spec, grid


def _stored_kernel(raw: Any) -> Any:
    """The folder's spec with its kernel as computed: a family spec records ``kernel`` only when it
    is not numpy (folders from before the field included), so a missing one is numpy, not the
    ``auto`` default of a new spec."""
    family = raw.get("family") if isinstance(raw, dict) else None
    if not isinstance(family, dict) or "kernel" in family:
        return raw
    try:
        fields = resolve_family(family.get("name")).spec_fields
    except FamilyLoadError:
        return raw  # parse_spec reports it
    return {**raw, "family": {**family, "kernel": "numpy"}} if "kernel" in fields else raw


def replay_chain(location: str, cell: int, replicate: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Recompute one chain's trajectory and events from the folder's spec and root seed.

    The chain's block is rerun from its own stream (``SeedSequence(root, spawn_key=(cell_key,
    block))``), so the rows equal the stored ones exactly.

    Returns
    -------
    (trajectories, events) : tuple of pandas.DataFrame
        The chain's rows, with the same columns as :func:`analysis.load` and
        :func:`analysis.load_events`.
    """
    meta, spec, grid = stored_cells(location)
    if not 0 <= cell < len(grid) or not 0 <= replicate < spec.replicates:
        raise UsageError(
            f"replay: expected cell in [0, {len(grid) - 1}] and replicate in [0, {spec.replicates - 1}], got cell {cell}, replicate {replicate}"
        )
    target = grid[cell]
    block = replicate // target.block_size
    entropy = int(meta["root_entropy"])
    target.family.prepare(location, write=False)
    # one BLAS thread, as the tasks run (sweep.execute.WORKER_ENV): a threaded matrix product
    # rounds in another order, and a family's metrics (gmm's KL) differed in their last bits
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        traj, events = simulate_block(
            target.family,
            target,
            block,
            generations=spec.generations,
            recorded=spec.record.generations(spec.generations),
            events_spec=spec.events,
            rng=block_rng(entropy, target, block),
        )
    tables = build_tables(spec, target, entropy, traj, events)
    frames = [plain_table(t).to_pandas() for t in tables]
    return tuple(f[f["replicate"] == replicate].reset_index(drop=True) for f in frames)


_EVENT_ORDER = ["event", "threshold", "symbol"]


def compare_with_stored(
    location: str, cell: int, replicate: int, replayed: tuple[pd.DataFrame, pd.DataFrame]
) -> list[str]:
    """Differences (one line each; empty if none) between a replayed chain and its stored rows."""
    import analysis

    where = [("cell", "=", cell), ("replicate", "=", replicate)]
    stored = (analysis.load(location, filters=where), analysis.load_events(location, filters=where))
    problems = []
    for what, mine, theirs in zip(("trajectories", "events"), replayed, stored):
        if theirs.empty:
            problems.append(f"{what}: no stored rows for cell {cell}, replicate {replicate} (not computed yet?)")
            continue
        if what == "events":
            mine, theirs = (f.sort_values(_EVENT_ORDER).reset_index(drop=True) for f in (mine, theirs))
        # the stored 'cell' column is dictionary-typed, the replayed one plain: compare values
        mine, theirs = (f.drop(columns="cell") for f in (mine, theirs))
        try:
            pd.testing.assert_frame_equal(mine, theirs, check_like=True, check_exact=True)
        except AssertionError as error:
            detail = " ".join(str(error).split())
            problems.append(f"{what}: {detail[:300]}")
    return problems


def describe(
    cell_label: str, replicate: int, trajectories: pd.DataFrame, events: pd.DataFrame, *, rows: int = 5
) -> str:
    """A printable account of one chain: its events, then its first and last recorded generations."""
    lines = [f"{cell_label}, replicate {replicate}: {len(trajectories)} recorded generations, {len(events)} events"]
    shown = events[[c for c in ("event", "threshold", "symbol", "generation", "observed") if c in events]]
    shown = shown.dropna(axis=1, how="all")
    lines += [
        "",
        "events (generation = first generation it held, or T when not observed):",
        shown.to_string(index=False) if len(shown) else "  (none)",
    ]
    from analysis._cells import coordinate_columns

    # the cell's coordinates (every axis included) are the same on every row: left out of the printout
    traj = trajectories.drop(
        columns=coordinate_columns(trajectories) + [c for c in ("seed", "replicate") if c in trajectories]
    )
    part = (traj if len(traj) <= 2 * rows else pd.concat([traj.head(rows), traj.tail(rows)])).copy()
    for name in part.columns:  # several values per row (weights, means, ...): short and aligned
        if len(part) and not pd.api.types.is_scalar(part[name].iloc[0]):
            part[name] = part[name].map(lambda values: "[" + ", ".join(f"{v:.5g}" for v in values) + "]")
    with pd.option_context("display.width", 160, "display.max_columns", 30, "display.precision", 5):
        table = part.to_string(index=False)
    lines += [
        "",
        f"trajectory ({'all' if len(traj) <= 2 * rows else f'first and last {rows}'} recorded generations):",
        table,
    ]
    return "\n".join(lines)


FRAME_SUFFIXES = (".csv", ".parquet")


def check_frame_path(path: str) -> str:
    """The suffix of a file name :func:`write_frame` can write, or a UsageError naming it."""
    path = str(path)
    # a URI's options (s3://bucket/chain.csv?endpoint_override=...) follow its file name
    suffix = Path(path.partition("?")[0] if "://" in path else path).suffix.lower()
    if suffix not in FRAME_SUFFIXES:
        raise UsageError(f"--out: expected a file name ending in .csv or .parquet, got '{path}'")
    return suffix


def write_frame(frame: pd.DataFrame, path: str) -> None:
    """Write a chain's rows to .csv or .parquet, by the file name's suffix; ``path`` may be a
    filesystem URI (``s3://bucket/chain.csv``), as the results folder may."""
    path, suffix = str(path), check_frame_path(path)
    if "://" not in path:
        if suffix == ".csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path, index=False)
        return
    # pandas would want fsspec for a URI; pyarrow, which already reads the results, writes it
    # (one chain's rows: built in memory, then one upload).
    store = Store(path)
    data = frame.to_csv(index=False).encode() if suffix == ".csv" else frame.to_parquet(index=False)
    try:
        with store.fs.open_output_stream(store.root) as stream:
            stream.write(data)
    except OSError as error:
        raise UsageError(f"--out: expected a writable file, got {path!r}: {' '.join(str(error).split())}") from None
