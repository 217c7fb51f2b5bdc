"""Rates the bench scripts share: one block's kernel alone, and a whole sweep through ``sweep run``."""

from __future__ import annotations

import time

from sweep.engine import simulate_block
from sweep.grid import block_rng, cells
from sweep.runner import run_sweep


def kernel(spec) -> float:
    """Chain-generations per second of the first cell's first block, simulated in this process."""
    cell = cells(spec)[0]
    recorded = spec.record.generations(spec.generations)
    start = time.perf_counter()
    simulate_block(
        cell.family,
        cell,
        0,
        generations=spec.generations,
        recorded=recorded,
        events_spec=spec.events,
        rng=block_rng(1, cell, 0),
    )
    chains = min(cell.block_size, spec.replicates)
    return chains * spec.generations / (time.perf_counter() - start)


def end_to_end(spec, out: str) -> float:
    """Chain-generations per second of the whole sweep through ``run_sweep`` (Ray start-up included)."""
    report = run_sweep(spec, out, overwrite=True, progress=False)
    return spec.replicates * spec.generations / report.seconds
