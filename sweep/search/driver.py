"""``sweep search``: optuna's ask-and-tell over cells of a sweep, run as Ray tasks like grid cells.

Each trial is a cell: its coordinates come from the sampler, its chains run as ordinary sweep
tasks (``sweep.task.run_task``: streams keyed by the cell's coordinates, Parquet parts in the same
folder), and when every chain of the cell is stored its objectives are read back from the parts
and told to optuna. Several trials are in flight at once; a new one is asked whenever the queue
of tasks runs short, so the workers never wait for one trial to finish.

Resume: the study's journal holds every trial. A rerun keeps every finished trial, tells the ones
whose chains are all stored without computing anything, computes only the missing blocks of a
trial cut short (the folder is scanned as ``sweep run`` scans it), and asks new trials until the
budget is spent; a search whose budget is already spent prints its result and starts nothing.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from sweep.cluster import connect
from sweep.errors import UsageError
from sweep.execute import _failure, task_options, worker_env
from sweep.plan import expected_rows, plan_tasks
from sweep.search.design import next_value, placed_by_design
from sweep.search.folder import SearchFolder
from sweep.search.measures import measure_cell, told_values, violations
from sweep.search.setup import SearchSetup
from sweep.search.space import drawn_complete, resolve, suggest
from sweep.search.study import CONSTRAINTS_ATTR, open_study
from sweep.search.summary import _by_cell, boundary, outcomes, summarise, trial_rows, write_summary
from sweep.task import Task, run_task

#: Trial user attributes: the cell, its coordinates and what it measured.
CELL_ATTR, COORDS_ATTR, MEASURED_ATTR, ERROR_ATTR = "cell", "coordinates", "measured", "error"


@dataclass
class SearchReport:
    """What one ``sweep search`` did."""

    location: str
    budget: int
    trials_done: int = 0
    trials_told: int = 0
    chains_run: int = 0
    tasks_run: int = 0
    seconds: float = 0.0
    computed: bool = True
    failures: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def run_search(
    setup: SearchSetup,
    out: str = "results",
    *,
    trials: int | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    overwrite: bool = False,
    task_seconds: float | None = None,
    progress: bool = True,
    stream: TextIO | None = None,
) -> SearchReport:
    """Run (or resume) a search into ``<out>/<name>``.

    Parameters
    ----------
    setup : SearchSetup
        A validated search spec (:func:`sweep.search.load_search_spec`).
    out : str
        Parent folder of the results (a path every node and this driver see: the study's
        journal is a file).
    trials : int, optional
        The trial budget (default: the spec's ``search.trials``); a larger one continues a search.
    address, num_cpus, overwrite, task_seconds :
        As for :func:`sweep.runner.run_sweep`.
    progress : bool
        One line on stderr per finished trial: trials done, chains spent, the boundary interval.

    Returns
    -------
    SearchReport
        ``summary`` is what ``search.json`` holds; ``computed`` is False when the budget was
        already spent (nothing started).
    """
    started = time.perf_counter()
    stream = stream or sys.stderr
    if "://" in str(out):
        raise UsageError(
            f"--out: expected a path every node and this driver see (the optuna journal is a file), got '{out}'"
        )
    location = f"{str(out).rstrip('/')}/{setup.name}"
    budget = trials if trials is not None else setup.search.trials
    if budget < 1:
        raise UsageError(f"--trials: expected an integer >= 1, got {budget}")
    folder = SearchFolder(setup, location)
    meta = folder.check(overwrite=overwrite)
    report = SearchReport(location, budget)
    if meta is not None:
        study = open_study(setup, folder.store.root, int(meta["root_entropy"]), create=False)
        if study is not None and _spent(study, budget):
            report.computed = False
            report.summary = summarise(setup, folder, study, budget)
            report.trials_done = report.summary["trials_done"]
            write_summary(folder, report.summary)
            report.seconds = time.perf_counter() - started
            return report
    import ray

    owns_ray = connect(address, num_cpus, worker_env())
    try:
        import numpy as np

        meta = folder.begin(int(np.random.SeedSequence().entropy), budget)
        study = open_study(setup, folder.store.root, int(meta["root_entropy"]))
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        options = {**task_options(runtime_env=not owns_ray), **setup.base.task_resources().options()}
        loop = _Loop(setup, folder, study, budget, report, workers, options, task_seconds, stream if progress else None)
        loop.run()
    finally:
        if owns_ray:
            ray.shutdown()
    report.summary = summarise(setup, folder, study, budget)
    report.trials_done = report.summary["trials_done"]
    write_summary(folder, report.summary)
    report.seconds = time.perf_counter() - started
    folder.finish(
        "failed" if report.failures else "complete",
        failures=report.failures,
        last_run={
            "tasks": report.tasks_run,
            "chains": report.chains_run,
            "trials": report.trials_told,
            "seconds": round(report.seconds, 3),
        },
    )
    return report


def _spent(study: Any, budget: int) -> bool:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    done = sum(t.state == TrialState.COMPLETE for t in trials)
    return done >= budget and not any(t.state == TrialState.RUNNING for t in trials)


class _Loop:
    """The driver's loop: trials in flight, their cells' tasks, and Ray's results as they come."""

    def __init__(
        self,
        setup: SearchSetup,
        folder: SearchFolder,
        study: Any,
        budget: int,
        report: SearchReport,
        workers: int,
        options: dict[str, Any],
        task_seconds: float | None,
        stream: TextIO | None,
    ):
        from optuna.trial import TrialState

        self.setup, self.folder, self.study, self.budget, self.report = setup, folder, study, budget, report
        self.workers, self.options, self.task_seconds, self.stream = workers, options, task_seconds, stream
        self.parallel = setup.search.parallel or max(2, workers)
        self.max_in_flight = 2 * workers + 2
        self.entropy = int(folder.meta["root_entropy"])
        self.completed = sum(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False))
        self.waiting: dict[int, list[Any]] = {}  # cell -> trials waiting for it (a trial object or number)
        self.outstanding: dict[int, int] = {}  # cell -> its tasks not finished yet
        self.failed_cells: dict[int, str] = {}
        self.queue: list[Task] = []
        self.pending: dict[Any, Task] = {}
        self.done: dict[int, list[tuple[int, int]]] = {}
        self.stop = False
        self.refs: tuple[Any, Any] | None = None

    # -- trials -----------------------------------------------------------------------------
    def _resume(self) -> None:
        """Scan the folder (as sweep run does), then restart the trials a killed driver left running."""
        from optuna.trial import TrialState

        if self.folder.cells:
            spec = self.folder.spec
            scan = self.folder.store.scan(expected_rows(spec, self.folder.cells), spec.generations)
            self.done = scan.done
        params = self.setup.search.parameters
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if drawn_complete(trial.params, params):
                self._start(trial.number, resolve(trial.params, params))
            else:  # killed between ask and its draws: nothing of it ran
                self.study.tell(trial.number, state=TrialState.FAIL)

    def _proposal(self) -> dict[str, Any] | None:
        """The coordinates of the next trial of a boundary search when the sequential design places
        it (:mod:`sweep.search.design`: about the current estimate, in turn below, above and at
        it, once the sampler's start-up trials are done; beyond the trials while no trial has a
        rate on each side of the target); None when the sampler places it: a start-up
        trial, the design's share left to the sampler, no estimate yet, or a cell that exists
        already."""
        search = self.setup.search
        if not search.refine or search.target is None or len(search.parameters) != 1:
            return None
        number = len(self.study.get_trials(deepcopy=False))
        if not placed_by_design(number, search.startup_trials):
            return None
        parameter = search.parameters[0]
        cells = _by_cell(trial_rows(self.study))
        if not cells:
            return None
        fit = boundary(self.setup, cells)
        value = next_value(
            fit, outcomes(self.setup, cells), search.target.target, number, search.startup_trials, parameter
        )
        if value is None or self.folder.has_cell(self.setup.part({parameter.name: value})):
            return None
        return {parameter.name: value}

    def _ask(self) -> None:
        proposal = self._proposal()
        if proposal is not None:
            self.study.enqueue_trial(proposal, user_attrs={"proposed_by": "boundary"})
        trial = self.study.ask()
        coords = suggest(trial, self.setup.search.parameters)
        self._start(trial.number, coords)

    def _start(self, number: int, coords: dict[str, Any]) -> None:
        import optuna

        cell_index = self.folder.cell_for(self.setup.part(coords), number)
        trial = optuna.trial.Trial(self.study, self._trial_id(number))
        trial.set_user_attr(CELL_ATTR, cell_index)
        trial.set_user_attr(COORDS_ATTR, coords)
        self.waiting.setdefault(cell_index, []).append(number)
        if cell_index in self.outstanding:  # another trial is computing this very cell
            return
        cell = self.folder.cells[cell_index]
        tasks = plan_tasks(self.folder.spec, [cell], self.done, workers=self.workers, target_seconds=self.task_seconds)
        if not tasks:
            self._cell_done(cell_index)
            return
        self.outstanding[cell_index] = len(tasks)
        self.queue.extend(tasks)
        self.refs = None  # the spec and cells grew: ship them again

    def _trial_id(self, number: int) -> int:
        return self.study.get_trials(deepcopy=False)[number]._trial_id

    def _active(self) -> int:
        return sum(len(v) for v in self.waiting.values())

    def _cell_done(self, cell_index: int) -> None:
        from optuna.trial import TrialState

        numbers = self.waiting.pop(cell_index, [])
        self.outstanding.pop(cell_index, None)
        error = self.failed_cells.get(cell_index)
        measured = None
        if error is None:
            cell = self.folder.cells[cell_index]
            measured = measure_cell(self.folder.location, cell, self.setup.search, self.setup.base.generations)
        for number in numbers:
            import optuna

            trial = optuna.trial.Trial(self.study, self._trial_id(number))
            if measured is None:
                trial.set_user_attr(ERROR_ATTR, error)
                self.study.tell(number, state=TrialState.FAIL)
                continue
            trial.set_user_attr(
                MEASURED_ATTR,
                {"values": measured["values"], "counts": measured["counts"], "chains": measured["chains"]},
            )
            if self.setup.search.constraints:
                trial.set_user_attr(CONSTRAINTS_ATTR, violations(self.setup.search, measured["values"]))
            self.study.tell(number, told_values(self.setup.search, measured["values"]))
            self.completed += 1
            self.report.trials_told += 1
            self._progress(number, cell_index, measured)

    def _progress(self, number: int, cell_index: int, measured: dict[str, Any]) -> None:
        if self.stream is None:
            return
        summary = summarise(self.setup, self.folder, self.study, self.budget, figures=False)
        values = ", ".join(f"{k} {v:.4g}" for k, v in measured["values"].items())
        boundary = summary.get("boundary")
        where = ""
        if boundary and boundary.get("estimate") is not None:
            where = (
                f"; boundary {boundary['parameter']} = {boundary['estimate']:.4g} "
                f"[{boundary['low']:.4g}, {boundary['high']:.4g}]"
            )
        print(
            f"{self.setup.name}: trial {number} (cell {cell_index}): {values}; {summary['trials_done']}/{self.budget} "
            f"trials done, {summary['chains']} chains{where}",
            file=self.stream,
            flush=True,
        )

    # -- tasks ------------------------------------------------------------------------------
    def run(self) -> None:
        import ray

        remote = ray.remote(**self.options)(run_task)
        self._resume()
        started = time.perf_counter()
        while True:
            while (
                not self.stop
                and self._active() < self.parallel
                and self.completed + self._active() < self.budget
                and len(self.queue) < self.workers
            ):
                self._ask()
            if not self.queue and not self.pending:
                if self.waiting:  # cells with nothing left to run (cannot happen: finished on the spot)
                    for cell_index in list(self.waiting):
                        self._cell_done(cell_index)
                    continue
                break
            if self.refs is None:
                self.refs = (ray.put(self.folder.spec), ray.put(self.folder.cells))
            while self.queue and len(self.pending) < self.max_in_flight:
                task = self.queue.pop(0)
                self.pending[remote.remote(*self.refs, self.entropy, self.folder.location, task)] = task
            ready, _ = ray.wait(list(self.pending), num_returns=1)
            for ref in ready:
                self._finished(ref)
        self.report.seconds += time.perf_counter() - started

    def _finished(self, ref: Any) -> None:
        import ray

        task = self.pending.pop(ref)
        try:
            result = ray.get(ref)
        except Exception as error:  # recorded; the trial fails, the others go on, no new trials
            failure = _failure(self.folder.cells, task, error)
            self.report.failures.append(failure)
            self.failed_cells[task.cell] = failure["error"]
            self.stop = True
        else:
            self.report.tasks_run += 1
            self.report.chains_run += result.chains
            self.done.setdefault(task.cell, []).append((task.first, task.stop))
        self.outstanding[task.cell] -= 1
        if self.outstanding[task.cell] == 0:
            self._cell_done(task.cell)
