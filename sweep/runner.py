"""The driver: validate, resume, plan, run tasks on Ray with bounded in-flight work, record.

It never holds results in memory: each task writes its own parts, and the driver takes small
summaries with ``ray.wait`` as tasks finish, so one failed task never loses the others.
"""
from __future__ import annotations

import datetime as _dt
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sweep import __version__
from sweep.errors import UsageError
from sweep.grid import Cell, cells as grid_cells
from sweep.plan import expected_rows, plan_tasks
from sweep.spec import SweepSpec
from sweep.store import Store
from sweep.task import Task, TaskResult, run_task

#: Numeric libraries run one thread per task: a task is one core's worth of work.
WORKER_ENV = {var: "1" for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


@dataclass
class RunReport:
    """What one ``sweep run`` did."""

    location: str
    cells: int
    chains: int
    tasks_run: int = 0
    chains_run: int = 0
    parts_kept: int = 0
    parts_removed: int = 0
    seconds: float = 0.0
    compute_seconds: float = 0.0
    task_seconds: float = 0.0
    peak_task_rss_mib: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
    return f"{path or 'spec'}: {b!r} in the folder, {a!r} now"


def _cell_table(cells: list[Cell]) -> list[dict[str, Any]]:
    return [
        {"cell": c.index, "n": c.n, "policy": c.policy.label, "cell_key": c.key, "block_size": c.block_size, "blocks": c.blocks}
        for c in cells
    ]


def prepare(spec: SweepSpec, location: str, *, overwrite: bool = False) -> tuple[Store, dict[str, Any], list[Cell]]:
    """Open (or create) the results folder for ``spec``; refuse a folder of another sweep."""
    store = Store(location)
    cells = grid_cells(spec)
    try:
        meta = store.read_meta()
        if meta is None and store.exists() and not store.is_empty() and not overwrite:
            raise UsageError(f"results folder '{location}': expected an empty folder or one written by 'sweep run', got other files; pass --overwrite to replace them or choose another --out")
        if meta is not None and not overwrite:
            if meta.get("spec") != spec.to_raw():
                raise UsageError(
                    f"results folder '{location}' holds a different sweep ({_first_difference(spec.to_raw(), meta.get('spec'))}); "
                    "pass --overwrite to replace it, or choose another --out"
                )
            if meta.get("cells") != _cell_table(cells):
                raise UsageError(f"results folder '{location}': its blocks were planned differently (another collapse-sweep version?); pass --overwrite to recompute it")
        if overwrite:
            store.clear()
            meta = None
        if meta is None:
            entropy = spec.seed if spec.seed is not None else int(np.random.SeedSequence().entropy)
            meta = {
                "spec": spec.to_raw(),
                "root_entropy": str(entropy),
                "package_version": __version__,
                "created": _now(),
                "cells": _cell_table(cells),
                "chains": spec.replicates * len(cells),
            }
        meta.update(status="running", started=_now(), finished=None)
        store.write_meta(meta)
    except OSError as error:
        raise UsageError(f"output folder '{location}': expected a writable location, got {error.__class__.__name__}: {' '.join(str(error).split())}") from None
    return store, meta, cells


def _ray_init(address: str | None, num_cpus: int | None) -> bool:
    """Start or join Ray; return True when this call started it (and so must stop it)."""
    import ray

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = dict(include_dashboard=False, logging_level="WARNING", configure_logging=True, log_to_driver=True)
    if address:
        kwargs["address"] = address
    else:
        # "local" always starts an embedded instance; a bare ray.init() would silently join
        # any cluster a 'ray start' left running on this machine.
        kwargs["address"] = "local"
        kwargs["num_cpus"] = num_cpus or os.cpu_count()
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
    ray.init(**kwargs)
    return True


def run_sweep(
    spec: SweepSpec,
    out: str = "results",
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    overwrite: bool = False,
    blocks_per_task: int | None = None,
    progress: bool = True,
) -> RunReport:
    """Run (or resume) a sweep into ``<out>/<spec.name>``.

    Parameters
    ----------
    spec : SweepSpec
        A validated spec.
    out : str
        Parent folder or filesystem URI of the results folder.
    address : str, optional
        Ray cluster address (``auto``, ``HOST:PORT``, ``ray://...``); default: an embedded local Ray.
    num_cpus : int, optional
        CPUs of the embedded Ray (default: all local cores).
    overwrite : bool
        Replace a results folder that holds a different sweep.
    blocks_per_task : int, optional
        Force the task size (results do not depend on it).
    progress : bool
        Show a progress bar on stderr.

    Returns
    -------
    RunReport
    """
    import ray

    started = time.perf_counter()
    location = f"{out.rstrip('/')}/{spec.name}"
    store, meta, cells = prepare(spec, location, overwrite=overwrite)
    scan = store.scan(expected_rows(spec, cells))
    report = RunReport(location, len(cells), spec.replicates * len(cells), parts_kept=scan.kept_parts, parts_removed=len(scan.removed))
    owns_ray = _ray_init(address, num_cpus)
    try:
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        tasks = plan_tasks(spec, cells, scan.done, workers=workers, blocks_per_task=blocks_per_task)
        computing = time.perf_counter()
        _execute(spec, cells, int(meta["root_entropy"]), location, tasks, workers, report, progress)
        report.compute_seconds = time.perf_counter() - computing
    finally:
        if owns_ray:
            ray.shutdown()
    report.seconds = time.perf_counter() - started
    meta.update(
        status="failed" if report.failures else "complete",
        finished=_now(),
        failures=report.failures,
    )
    store.write_meta(meta)
    return report


def _execute(spec: SweepSpec, cells: list[Cell], entropy: int, location: str, tasks: list[Task], workers: int, report: RunReport, progress: bool) -> None:
    import ray
    from tqdm import tqdm

    remote = ray.remote(num_cpus=1, max_retries=3, runtime_env={"env_vars": WORKER_ENV})(run_task)
    spec_ref, cells_ref = ray.put(spec), ray.put(cells)
    chains_total = sum(cells[t.cell].chains(t.first, t.stop) for t in tasks)
    bar = tqdm(total=chains_total, unit="chain", unit_scale=True, disable=not progress or not tasks, file=sys.stderr, desc=spec.name, dynamic_ncols=True, smoothing=0.05)
    pending: dict[Any, Task] = {}
    queue = list(reversed(tasks))
    max_in_flight = 2 * workers + 2
    try:
        while queue or pending:
            while queue and len(pending) < max_in_flight:
                task = queue.pop()
                pending[remote.remote(spec_ref, cells_ref, entropy, location, task)] = task
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                task = pending.pop(ref)
                try:
                    result: TaskResult = ray.get(ref)
                except Exception as error:  # the task failed after its retries; keep going
                    cell = cells[task.cell]
                    replicates = range(task.first * cell.block_size, task.first * cell.block_size + cell.chains(task.first, task.stop))
                    message = str(getattr(error, "cause", None) or error).strip().splitlines()[-1]
                    report.failures.append({"cell": task.cell, "n": cell.n, "policy": cell.policy.label, "replicates": [replicates.start, replicates.stop], "error": message})
                    continue
                report.tasks_run += 1
                report.chains_run += result.chains
                report.task_seconds += result.seconds
                report.peak_task_rss_mib = max(report.peak_task_rss_mib, result.peak_rss_mib)
                bar.update(result.chains)
    finally:
        bar.close()
