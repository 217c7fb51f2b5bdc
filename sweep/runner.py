"""The driver: validate, resume, plan, run tasks on Ray with bounded in-flight work, record.

It never holds results in memory: each task writes its own parts, and the driver takes small
summaries with ``ray.wait`` as tasks finish, so one failed task never loses the others.
"""
from __future__ import annotations

import datetime as _dt
import errno
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sweep import __version__
from sweep.cluster import connect, warn_if_not_shared
from sweep.errors import UsageError
from sweep.grid import Cell, cells as grid_cells
from sweep.plan import expected_rows, plan_tasks
from sweep.progress import Progress
from sweep.spec import SweepSpec
from sweep.store import Store
from sweep.task import FAIL_CELLS_ENV, Task, TaskResult, run_task

#: Numeric libraries run one thread per task: a task is one core's worth of work.
WORKER_ENV = {var: "1" for var in (
    "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS",
)}
#: Attempts after a lost worker or node, per task.
MAX_RETRIES = 3
#: Storage errors every later task would meet too: the run stops starting tasks on the first one.
STORAGE_FULL = tuple(os.strerror(code) for code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS))


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
    workers: int = 1
    #: Seconds the tasks worked (summed) and seconds the driver spent running them: their ratio
    #: is the number of cores effectively used.
    work_seconds: float = 0.0
    cpu_seconds: float = 0.0
    execute_seconds: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)
    #: Why the run stopped starting tasks (storage full or read-only), or None.
    stopped: str | None = None
    #: Tasks not started because of ``stopped``; a rerun computes them.
    not_started: int = 0


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


def _writable(location: str, error: OSError) -> UsageError:
    return UsageError(f"output folder '{location}': expected a writable location, got "
                      f"{error.__class__.__name__}: {' '.join(str(error).split())}")


def inspect(spec: SweepSpec, location: str, *, overwrite: bool = False) -> tuple[Store, dict[str, Any] | None, list[Cell]]:
    """Check, without writing, that the results folder may take ``spec``; return its sweep.json
    (None for a new folder, or one that ``overwrite`` replaces)."""
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
    except OSError as error:
        raise _writable(location, error) from None
    return store, (None if overwrite else meta), cells


def begin(spec: SweepSpec, store: Store, meta: dict[str, Any] | None, cells: list[Cell], *, overwrite: bool = False) -> dict[str, Any]:
    """Mark the folder as running (creating or, with ``overwrite``, emptying it); return sweep.json."""
    try:
        if overwrite:
            store.clear()
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
        raise _writable(store.location, error) from None
    return meta


def prepare(spec: SweepSpec, location: str, *, overwrite: bool = False) -> tuple[Store, dict[str, Any], list[Cell]]:
    """Open (or create) the results folder for ``spec``; refuse a folder of another sweep."""
    store, meta, cells = inspect(spec, location, overwrite=overwrite)
    return store, begin(spec, store, meta, cells, overwrite=overwrite), cells


def worker_env() -> dict[str, str]:
    """Environment variables every task needs: one thread per numeric library, and the test hook."""
    env = dict(WORKER_ENV)
    if os.environ.get(FAIL_CELLS_ENV):  # forward the test hook to workers of any cluster
        env[FAIL_CELLS_ENV] = os.environ[FAIL_CELLS_ENV]
    return env


def task_options(*, runtime_env: bool = True) -> dict[str, Any]:
    """The Ray options every task runs with (also what the tests check a task sees).

    ``runtime_env=False`` when the workers already start with :func:`worker_env` (an embedded Ray
    started by :func:`sweep.cluster.connect`).
    """
    # max_retries covers lost workers and nodes; an exception raised by the task itself is not
    # retried (the simulation is deterministic, so it would fail the same way again).
    options: dict[str, Any] = {"num_cpus": 1, "max_retries": MAX_RETRIES}
    if runtime_env:
        options["runtime_env"] = {"env_vars": worker_env()}
    return options


def run_sweep(
    spec: SweepSpec,
    out: str = "results",
    *,
    address: str | None = None,
    num_cpus: int | None = None,
    overwrite: bool = False,
    blocks_per_task: int | None = None,
    task_seconds: float | None = None,
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
        Ray cluster address (``auto``, ``HOST:PORT``, ``ray://...``); default: ``$RAY_ADDRESS`` if
        set, else an embedded local Ray. An already initialised Ray is used as it is.
    num_cpus : int, optional
        CPUs of the embedded Ray (default: all local cores).
    overwrite : bool
        Replace a results folder that holds a different sweep.
    blocks_per_task : int, optional
        Force the task size (results do not depend on it).
    task_seconds : float, optional
        Target seconds of work per task (default :data:`sweep.plan.TARGET_TASK_SECONDS`); never
        below :data:`sweep.plan.MIN_TASK_SECONDS`, where Ray's per-task overhead would show.
    progress : bool
        Show progress on stderr.

    Returns
    -------
    RunReport
        ``failures`` lists the tasks that raised (cell, replicates, message); they wrote nothing,
        so a rerun computes exactly them.

    Raises
    ------
    UsageError
        A folder of another sweep, an unwritable location, a cluster that cannot be joined, or
        parts that tasks wrote but this driver cannot see (output not shared between nodes).
    """
    import ray

    started = time.perf_counter()
    location = f"{out.rstrip('/')}/{spec.name}"
    # Refuse a wrong folder before starting Ray, and write nothing before Ray is joined, so
    # neither a bad folder nor a bad address costs the other.
    store, meta, cells = inspect(spec, location, overwrite=overwrite)
    owns_ray = connect(address, num_cpus, worker_env())
    try:
        meta = begin(spec, store, meta, cells, overwrite=overwrite)
        rows = expected_rows(spec, cells)
        scan = _scan(store, rows)
        report = RunReport(location, len(cells), spec.replicates * len(cells), parts_kept=scan.kept_parts, parts_removed=len(scan.removed))
        warn_if_not_shared(location, store.is_local, address)
        report.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        done, failed = scan.done, []
        for _ in range(2):  # run, then repair once whatever the check below finds missing
            tasks = plan_tasks(spec, cells, _union(done, failed), workers=report.workers,
                               blocks_per_task=blocks_per_task, target_seconds=task_seconds)
            failed += _execute(spec, cells, int(meta["root_entropy"]), location, tasks, report, progress,
                               _chains(cells, done), task_options(runtime_env=not owns_ray))
            # Trust the folder, not the tasks' word: a part may be missing (a task of a killed
            # earlier driver overwrote or clashed with it) or invisible here (storage not shared).
            check = _scan(store, rows)
            report.parts_removed += len(check.removed)
            done = check.done
            if _chains(cells, _union(done, failed)) == report.chains or report.stopped:
                break
        else:
            lost = report.chains - _chains(cells, _union(done, failed))
            raise UsageError(
                f"results '{location}': {lost} chains that tasks reported written are not there; the output location "
                "must be storage every node and this driver see (a shared filesystem, or s3://...)"
            )
    finally:
        if owns_ray:
            ray.shutdown()
    report.seconds = time.perf_counter() - started
    meta.update(status="failed" if report.failures else "complete", finished=_now(), failures=report.failures,
                stopped=report.stopped,
                last_run={"tasks": report.tasks_run, "chains": report.chains_run, "workers": report.workers,
                          "seconds": round(report.seconds, 3), "work_seconds": round(report.work_seconds, 3),
                          "cpu_seconds": round(report.cpu_seconds, 3), "execute_seconds": round(report.execute_seconds, 3)})
    try:
        store.write_meta(meta)
    except OSError as error:
        raise UsageError(f"output folder '{location}': expected a writable location to record the sweep's status, got "
                         f"{error.__class__.__name__}: {' '.join(str(error).split())}; complete parts are kept, rerun to resume") from None
    return report


def _scan(store: Store, rows: Any) -> Any:
    try:
        return store.scan(rows)
    except OSError as error:  # e.g. a damaged part in a folder that became read-only
        raise _writable(store.location, error) from None


def _union(done: dict[int, list[tuple[int, int]]], tasks: list[Task]) -> dict[int, list[tuple[int, int]]]:
    merged = {cell: list(ranges) for cell, ranges in done.items()}
    for task in tasks:
        merged.setdefault(task.cell, []).append((task.first, task.stop))
    return merged


def _chains(cells: list[Cell], done: dict[int, list[tuple[int, int]]]) -> int:
    """Chains covered by ``done`` (block ranges per cell), each block counted once."""
    total = 0
    for cell in cells:
        blocks = {b for first, stop in done.get(cell.index, []) for b in range(first, stop)}
        total += sum(cell.chains(b, b + 1) for b in blocks)
    return total


def _failure(cells: list[Cell], task: Task, error: BaseException) -> dict[str, Any]:
    cell = cells[task.cell]
    first = task.first * cell.block_size
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):  # the task's own exception, not Ray's wrapper
        lines = str(cause).strip().splitlines()
        message = f"{type(cause).__name__}: {lines[-1] if lines else ''}".rstrip(": ")
    else:  # a lost worker or node after all retries
        lines = str(error).strip().splitlines()
        message = f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
    return {"cell": task.cell, "n": cell.n, "policy": cell.policy.label,
            "replicates": [first, first + cell.chains(task.first, task.stop)], "error": message}


def _execute(spec: SweepSpec, cells: list[Cell], entropy: int, location: str, tasks: list[Task],
             report: RunReport, progress: bool, chains_done: int, options: dict[str, Any]) -> list[Task]:
    """Run ``tasks`` with at most a few in flight per worker; return those that failed."""
    import ray

    if not tasks:
        return []
    remote = ray.remote(**options)(run_task)
    spec_ref, cells_ref = ray.put(spec), ray.put(cells)
    bar = Progress(spec.name, report.chains, chains_done, enabled=progress)
    pending: dict[Any, Task] = {}
    queue = list(reversed(tasks))
    # Bounded in flight: the driver holds a few refs per worker, never the whole plan's.
    max_in_flight = 2 * report.workers + 2
    failed: list[Task] = []
    started = time.perf_counter()
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
                except Exception as error:  # failed after its retries; record it and go on
                    report.failures.append(_failure(cells, task, error))
                    failed.append(task)
                    reason = next((r for r in STORAGE_FULL if r in report.failures[-1]["error"]), None)
                    if reason and queue:  # no point computing results that cannot be written
                        report.stopped, report.not_started = reason, report.not_started + len(queue)
                        failed += queue
                        queue.clear()
                    continue
                report.tasks_run += 1
                report.chains_run += result.chains
                report.work_seconds += result.seconds
                report.cpu_seconds += result.cpu_seconds
                bar.update(result.chains)
    finally:
        bar.close()
        report.execute_seconds += time.perf_counter() - started
    return failed
