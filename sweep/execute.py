"""Running a plan's tasks on Ray: the options every task gets, bounded in-flight work taken with
``ray.wait`` as tasks finish, and failures recorded instead of raised.

The driver holds a few object references per worker at any time, never the plan's results: each
task writes its own parts and returns a small :class:`~sweep.task.TaskResult`.
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass, field
from typing import Any

from sweep.grid import Cell
from sweep.progress import Progress
from sweep.spec import SweepSpec
from sweep.task import FAIL_CELLS_ENV, Task, TaskResult, run_task

#: Numeric libraries run one thread per task: a task is one core's worth of work.
WORKER_ENV = {
    var: "1"
    for var in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "VECLIB_MAXIMUM_THREADS",
        "NUMEXPR_NUM_THREADS",
    )
}
#: Tasks that ask for no GPU see none. Recent Ray (2.60 here; ray-project/ray#54868) leaves
#: ``CUDA_VISIBLE_DEVICES`` and its kin untouched for a task granted zero accelerators, so on a GPU
#: node a CPU task would see, and a torch family would initialise, every GPU; "1" makes Ray set
#: them empty for such tasks, as older versions did by default.
ACCELERATOR_ENV = {"RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "1"}
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
    #: Largest resident memory a worker reached after one of its tasks, MiB.
    peak_task_rss_mib: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)
    #: Why the run stopped starting tasks (storage full or read-only), or None.
    stopped: str | None = None
    #: Tasks not started because of ``stopped``; a rerun computes them.
    not_started: int = 0


def worker_env() -> dict[str, str]:
    """Environment variables every task needs: one thread per numeric library, no GPU unless the
    task asks for one, and the test hook."""
    env = {**WORKER_ENV, **ACCELERATOR_ENV}
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
    return {
        "cell": task.cell,
        "n": cell.n,
        "policy": cell.policy.label,
        "replicates": [first, first + cell.chains(task.first, task.stop)],
        "error": message,
    }


def execute(
    spec: SweepSpec,
    cells: list[Cell],
    entropy: int,
    location: str,
    tasks: list[Task],
    report: RunReport,
    progress: bool,
    chains_done: int,
    options: dict[str, Any],
) -> list[Task]:
    """Run ``tasks`` with at most ``2 * workers + 2`` in flight, counting into ``report``.

    Parameters
    ----------
    entropy : int
        The sweep's root entropy. ``location``: the results folder.
    report : RunReport
        Updated in place: tasks, chains, seconds, failures, and ``stopped`` when the storage is
        full or read-only (the tasks not yet started are then not started).
    chains_done : int
        Chains already done before this call, for the progress figure.
    options : dict
        Ray options of the tasks (:func:`task_options`).

    Returns
    -------
    list of Task
        The tasks that failed or were not started; they wrote nothing.
    """
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
                report.peak_task_rss_mib = max(report.peak_task_rss_mib, result.peak_rss_mib)
                bar.update(result.chains)
    finally:
        bar.close()
        report.execute_seconds += time.perf_counter() - started
    return failed
