"""The driver: check the results folder, join Ray, resume, plan, run (sweep.execute), verify, record.

It never holds results in memory: each task writes its own parts, and the driver takes small
summaries with ``ray.wait`` as tasks finish, so one failed task never loses the others. At the end
it checks the folder itself, not the tasks' word, before it calls a sweep complete.
"""

from __future__ import annotations

import datetime as _dt
import functools
import os
import time
import warnings
from typing import Any

import numpy as np

from sweep import __version__
from sweep.axes import column_name
from sweep.cluster import check_gpus, connect, warn_if_not_shared
from sweep.errors import SweepWarning, UsageError
from sweep.execute import WORKER_ENV, RunReport, execute, task_options, worker_env
from sweep.grid import Cell
from sweep.grid import cells as grid_cells
from sweep.lock import FolderLock
from sweep.plan import expected_rows, plan_tasks
from sweep.spec import SweepSpec
from sweep.store import Store, join_location
from sweep.task import Task


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _first_difference(a: Any, b: Any, path: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else str(key))
    text = f"{path or 'spec'}: {b!r} in the folder, {a!r} now"
    if path.endswith(".kernel"):
        # kernel: auto resolves to what is installed, so the same YAML can name another kernel
        # than the folder's (written only when numba: absent means numpy)
        text += f"; continue it with its own kernel: --set {path}={b or 'numpy'}"
    return text


def _cell_table(cells: list[Cell]) -> list[dict[str, Any]]:
    return [
        {
            "cell": c.index,
            "n": c.n,
            "policy": c.policy.label,
            "cell_key": c.key,
            "block_size": c.block_size,
            "blocks": c.blocks,
            **({"label": c.label} if c.label != f"n={c.n}, {c.policy.label}" else {}),
        }
        for c in cells
    ]


#: Spec fields a rerun may change without --overwrite: a longer horizon continues every chain,
#: more replicates add chains (existing ones are unchanged; a partial last block is recomputed).
GROWABLE = ("generations", "replicates")


def _compatible(now: dict[str, Any], before: dict[str, Any]) -> str | None:
    """Why ``now`` cannot continue the folder's spec ``before`` (None if it can)."""
    if not isinstance(before, dict):
        return "spec: none in the folder"
    for key in GROWABLE:
        if isinstance(before.get(key), int) and isinstance(now.get(key), int) and now[key] < before[key]:
            return f"{key}: {before[key]!r} in the folder, {now[key]!r} now (only a larger value continues it)"
    same = {k: v for k, v in now.items() if k not in GROWABLE}
    old = {k: v for k, v in before.items() if k not in GROWABLE}
    return None if same == old else _first_difference(same, old)


def family_info(spec: SweepSpec) -> dict[str, Any]:
    """What the family declares, for readers of the folder that do not import it (the report)."""
    cls = spec.family_class
    return {
        "name": spec.family_name,
        "events": [
            {
                "name": k.name,
                "event": k.event,
                "description": k.description,
                "thresholds": k.thresholds,
                "per_symbol": k.per_symbol,
                "collapse": k.collapse,
                "descending": k.descending,
            }
            for k in cls.declared_events()
        ],
        "metrics": dict(cls.metric_columns),
        "side_tables": {
            table: {"metric": metric, "index": index, "value": value}
            for metric, (table, index, value) in cls.side_metrics.items()
        },
        "distance_metric": cls.distance_metric,
        "spread_metric": cls.spread_metric,
        "theory_overlays": list(cls.theory_overlays),
        "axes": {axis: column_name(axis) for axis in spec.grid.axes},
        "events_every": spec.events.every,
    }


def library_versions() -> dict[str, str]:
    """numpy's and scipy's versions: numpy does not promise the same streams across versions."""
    import scipy

    return {"numpy": np.__version__, "scipy": scipy.__version__}


def _writable(location: str, error: OSError) -> UsageError:
    return UsageError(
        f"output folder '{location}': expected a writable location, got "
        f"{error.__class__.__name__}: {' '.join(str(error).split())}"
    )


def check_folder(
    spec: SweepSpec, location: str, *, overwrite: bool = False
) -> tuple[Store, dict[str, Any] | None, list[Cell]]:
    """Check, without writing, that the results folder may take ``spec``; return its sweep.json
    (None for a new folder, or one that ``overwrite`` replaces)."""
    store = Store(location)
    cells = grid_cells(spec)
    try:
        meta = store.read_meta()
        if meta is None and store.exists() and not store.is_empty() and not overwrite:
            raise UsageError(
                f"results folder '{location}': expected an empty folder or one written by 'sweep run', got other files; pass --overwrite to replace them or choose another --out"
            )
        if meta is not None and not overwrite:
            why = _compatible(spec.to_raw(), meta.get("spec"))
            if why is not None:
                raise UsageError(
                    f"results folder '{location}' holds a different sweep ({why}); "
                    "pass --overwrite to replace it, or choose another --out"
                )
            stored = meta.get("cells") or []
            sizes = [c.get("block_size") for c in stored] if isinstance(stored, list) else []
            if len(sizes) != len(cells) or not all(isinstance(v, int) and v > 0 for v in sizes):
                raise UsageError(
                    f"results folder '{location}': its sweep.json has no block size for every cell "
                    "(written by another collapse-sweep version?); pass --overwrite to recompute it"
                )
            # streams follow the block sizes the folder was started with, whatever the defaults now
            cells = grid_cells(spec, block_sizes=sizes)
            if [c.get("cell_key") for c in stored] != [c.key for c in cells]:
                raise UsageError(
                    f"results folder '{location}': its cells were keyed differently (another "
                    "collapse-sweep version?); pass --overwrite to recompute it"
                )
    except OSError as error:
        raise _writable(location, error) from None
    return store, (None if overwrite else meta), cells


def _warn_if_other_libraries(
    earlier: dict[str, str] | None, location: str, kept_parts: int, missing_chains: int
) -> None:
    """A :class:`~sweep.errors.SweepWarning` when chains are added under other numpy/scipy versions than the kept
    ones were computed with (numpy does not promise the same random streams across versions)."""
    now = library_versions()
    if earlier and kept_parts and missing_chains and earlier != now:
        changed = ", ".join(f"{k} {earlier.get(k)} -> {v}" for k, v in now.items() if earlier.get(k) != v)
        warnings.warn(
            f"results folder '{location}' was computed with other library versions ({changed}): the "
            "random streams of chains computed now may differ from the kept ones; pass --overwrite for a "
            "folder computed with one set of versions",
            SweepWarning,
            stacklevel=3,
        )


def _warn_if_other_version(earlier: list[str], location: str, kept_parts: int, missing_chains: int) -> None:
    """A :class:`~sweep.errors.SweepWarning` when this version adds chains to parts only other versions wrote
    (``earlier``: the folder's versions before this run): the random streams and fits are the
    same across versions, but metric code may not be."""
    if earlier and __version__ not in earlier and kept_parts and missing_chains:
        warnings.warn(
            f"results folder '{location}' was started by collapse-sweep {earlier[0]}, this is "
            f"{__version__}: metrics of the chains computed now may differ slightly from the kept ones where "
            "the versions' code differs; pass --overwrite for a folder written by one version",
            SweepWarning,
            stacklevel=3,
        )


def _versions(meta: dict[str, Any] | None) -> list[str]:
    """Every collapse-sweep version that ran on a folder (folders from before 0.2.0 name one)."""
    if meta is None:
        return []
    return list(meta.get("package_versions", [meta.get("package_version", __version__)]))


def begin(
    spec: SweepSpec, store: Store, meta: dict[str, Any] | None, cells: list[Cell], *, overwrite: bool = False
) -> dict[str, Any]:
    """Mark the folder as running (creating or, with ``overwrite``, emptying it); return sweep.json."""
    try:
        if overwrite:
            store.clear()
        if meta is None:
            entropy = spec.seed if spec.seed is not None else int(np.random.SeedSequence().entropy)
            meta = {
                "root_entropy": str(entropy),
                "package_version": __version__,
                "created": _now(),
                "library_versions": library_versions(),
            }
        # a grown spec (longer horizon, more replicates) is recorded as the folder's spec now
        meta.update(
            spec=spec.to_raw(), cells=_cell_table(cells), chains=spec.replicates * len(cells), family=family_info(spec)
        )
        meta.setdefault("library_versions", library_versions())
        versions = _versions(meta)
        meta.update(
            status="running",
            started=_now(),
            finished=None,
            package_versions=versions + [__version__] * (__version__ not in versions),
        )
        store.write_meta(meta)
    except OSError as error:
        raise _writable(store.location, error) from None
    return meta


def _holding_the_folder(run: Any) -> Any:
    """Run ``run_sweep`` holding its results folder's lock (sweep.lock), from the first check of the
    folder to the last write of sweep.json, released however it ends, KeyboardInterrupt included.

    A local ``out`` is made absolute first, here on the driver: the tasks write to the location
    they are given, from whatever folder their worker runs in (a ``ray start`` head's, not ours).
    """

    @functools.wraps(run)
    def locked(spec: SweepSpec, out: str = "results", **options: Any) -> RunReport:
        out = str(out) if "://" in str(out) else os.path.abspath(out)
        lock = FolderLock(Store(join_location(out, spec.name)))
        try:
            lock.acquire()
        except OSError as error:
            raise _writable(lock.store.location, error) from None
        try:
            return run(spec, out, **options)
        finally:
            lock.release()

    return locked


@_holding_the_folder
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
    location = join_location(out, spec.name)
    # Refuse a wrong folder before starting Ray, and write nothing before Ray is joined, so
    # neither a bad folder nor a bad address costs the other.
    store, meta, cells = check_folder(spec, location, overwrite=overwrite)
    owns_ray = connect(address, num_cpus, worker_env())
    try:
        # before anything is written: Ray would leave unschedulable GPU tasks pending for ever
        check_gpus(
            spec.task_resources().num_gpus,
            "the spec" if spec.resources is not None else f"the {spec.family_class.name} family",
        )
        earlier = _versions(meta)
        earlier_libraries = None if meta is None else meta.get("library_versions")
        meta = begin(spec, store, meta, cells, overwrite=overwrite)
        rows = expected_rows(spec, cells)
        scan = _scan(store, rows, spec.generations)
        report = RunReport(
            location,
            len(cells),
            spec.replicates * len(cells),
            parts_kept=scan.kept_parts,
            parts_removed=len(scan.removed),
        )
        warn_if_not_shared(location, store.is_local, address)
        _warn_if_other_version(earlier, location, scan.kept_parts, report.chains - _chains(cells, scan.done))
        _warn_if_other_libraries(
            earlier_libraries, location, scan.kept_parts, report.chains - _chains(cells, scan.done) + len(scan.shorter)
        )
        report.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        done, failed, shorter = scan.done, [], scan.shorter
        for _ in range(2):  # run, then repair once whatever the check below finds missing
            tasks = plan_tasks(
                spec,
                cells,
                _union(done, failed),
                workers=report.workers,
                shorter=shorter,
                blocks_per_task=blocks_per_task,
                target_seconds=task_seconds,
            )
            extending = sum(cells[c].chains(first, stop) for c, first, stop in shorter)
            options = {**task_options(runtime_env=not owns_ray), **spec.task_resources().options()}
            failed += execute(
                spec,
                cells,
                int(meta["root_entropy"]),
                location,
                tasks,
                report,
                progress,
                _chains(cells, done) - extending,
                options,
            )
            # Trust the folder, not the tasks' word: a part may be missing (a task of a killed
            # earlier driver overwrote or clashed with it) or invisible here (storage not shared).
            check = _scan(store, rows, spec.generations, verify=False)  # the parts kept were verified above
            report.parts_removed += len(check.removed)
            done, shorter = (
                check.done,
                {k: v for k, v in check.shorter.items() if not any((t.cell, t.first, t.stop) == k for t in failed)},
            )
            if (_chains(cells, _union(done, failed)) == report.chains and not shorter) or report.stopped:
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
    # tasks finish in any order; list their failures in grid order, the same on every run
    report.failures.sort(key=lambda failure: (failure["cell"], failure["replicates"][0]))
    meta.update(
        status="failed" if report.failures else "complete",
        finished=_now(),
        failures=report.failures,
        stopped=report.stopped,
        last_run={
            "tasks": report.tasks_run,
            "chains": report.chains_run,
            "workers": report.workers,
            "seconds": round(report.seconds, 3),
            "work_seconds": round(report.work_seconds, 3),
            "cpu_seconds": round(report.cpu_seconds, 3),
            "execute_seconds": round(report.execute_seconds, 3),
        },
    )
    try:
        store.write_meta(meta)
    except OSError as error:
        raise UsageError(
            f"output folder '{location}': expected a writable location to record the sweep's status, got "
            f"{error.__class__.__name__}: {' '.join(str(error).split())}; complete parts are kept, rerun to resume"
        ) from None
    return report


def _scan(store: Store, rows: Any, horizon: int, *, verify: bool = True) -> Any:
    try:
        return store.scan(rows, horizon, verify=verify)
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


__all__ = ["RunReport", "WORKER_ENV", "begin", "check_folder", "run_sweep", "task_options", "worker_env"]
