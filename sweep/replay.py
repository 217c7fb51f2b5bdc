"""Replay one chain of a finished sweep, bit for bit, without touching the results folder."""
from __future__ import annotations

import pandas as pd

from sweep.engine import simulate_block
from sweep.errors import UsageError
from sweep.grid import block_rng, cells as grid_cells
from sweep.spec import parse_spec
from sweep.store import Store, plain_table
from sweep.task import build_tables


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
    meta = Store(location).read_meta()
    if meta is None:
        raise UsageError(f"results folder '{location}': expected a folder written by 'sweep run', got none")
    spec = parse_spec(meta["spec"])
    grid = grid_cells(spec)
    if not 0 <= cell < len(grid) or not 0 <= replicate < spec.replicates:
        raise UsageError(f"replay: expected cell in [0, {len(grid) - 1}] and replicate in [0, {spec.replicates - 1}], got cell {cell}, replicate {replicate}")
    target = grid[cell]
    block = replicate // target.block_size
    entropy = int(meta["root_entropy"])
    traj, events = simulate_block(
        spec.family, target, block, generations=spec.generations,
        recorded=spec.record.generations(spec.generations), events_spec=spec.events,
        rng=block_rng(entropy, target, block),
    )
    tables = build_tables(spec, target, entropy, traj, events)
    frames = [plain_table(t).to_pandas() for t in tables]
    return tuple(f[f["replicate"] == replicate].reset_index(drop=True) for f in frames)
