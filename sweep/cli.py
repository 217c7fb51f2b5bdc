"""The ``sweep`` command: run, validate, show, report and replay sweeps; submit them to a cluster
(sweep.jobs).

Exit status: 0 on success, 1 when some tasks failed (the rest is kept; rerun to retry them),
2 for bad input (spec, options, results folder), with one line on stderr saying what and why.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from sweep.errors import ResultsError, SpecError, SweepWarning, UsageError

#: Failed tasks listed on stderr; sweep.json lists them all.
SHOWN_FAILURES = 10

EXAMPLES = """examples:
  sweep run experiments/quickstart.yaml
  sweep run experiments/quickstart.yaml --set generations=500 --set grid.n=[10,100]
  sweep validate experiments/quickstart.yaml
  sweep show results/quickstart
  sweep report results/quickstart
  sweep replay results/quickstart --cell 2 --replicate 17 --check
  sweep search experiments/critical_real_fraction.yaml --trials 40
  sweep run experiments/quickstart.yaml --address auto --out /shared/results      # on a cluster's head
  sweep submit experiments/quickstart.yaml --address http://HEAD:8265 --out s3://bucket/results
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's usage errors, as one line with exit 2
        raise UsageError(f"{self.prog}: {message} (see --help)")


def _spec_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", help="sweep spec (YAML file)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a spec field, dotted key and YAML value, e.g. --set grid.n=[10,100] (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="sweep",
        description="Run model-collapse sweeps: recursive fit-sample-refit chains, batched, on Ray, into Parquet.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    run = commands.add_parser(
        "run",
        help="run or resume a sweep",
        description=(
            "Validate the spec, then run every chain of the grid on Ray and write Parquet parts to OUT/NAME. "
            "Rerunning the same command resumes: complete parts are kept, missing or damaged ones recomputed."
        ),
    )
    _spec_arguments(run)
    run.add_argument(
        "--out", default="results", help="parent folder or filesystem URI of the results (default: results)"
    )
    run.add_argument(
        "--address",
        default=None,
        help="Ray cluster address (auto, HOST:PORT, ray://HOST:PORT); "
        "default: $RAY_ADDRESS if set, else an embedded local Ray",
    )
    run.add_argument("--num-cpus", type=int, default=None, help="CPUs for the embedded local Ray (default: all cores)")
    run.add_argument("--overwrite", action="store_true", help="replace a results folder that holds a different sweep")
    run.add_argument(
        "--blocks-per-task", type=int, default=None, help="force the task size in blocks (results do not depend on it)"
    )
    run.add_argument(
        "--task-seconds",
        type=float,
        default=None,
        help="target seconds of work per task (default 2; at least 0.15, so that Ray's overhead stays under 2%%)",
    )
    run.add_argument("--no-progress", action="store_true", help="no progress bar")

    validate = commands.add_parser(
        "validate",
        help="check a spec and print its resolved grid",
        description=(
            "Validate a spec (with overrides) and print the resolved cells, without running or writing anything."
        ),
    )
    _spec_arguments(validate)

    show = commands.add_parser(
        "show",
        help="summarise a results folder",
        description=("Print a results folder's sweep, its cells, chains done, rows and run time."),
    )
    show.add_argument("results", help="results folder (OUT/NAME)")

    report = commands.add_parser(
        "report",
        help="write figures and a markdown summary of a results folder",
        description=(
            "Read a results folder (never re-running the simulation) and write the figures that apply to its "
            "families plus report.md: per cell, chains, censored share, Kaplan-Meier median collapse time with CI, "
            "divergence probability at the horizon with CI, fitted rates, fan charts and final medians (with CIs) of every "
            "declared metric, and the sample grids the run saved under samples/."
        ),
    )
    report.add_argument("results", help="results folder (OUT/NAME)")
    report.add_argument(
        "--out",
        default=None,
        help="local folder to write in (default: RESULTS/report; required when RESULTS is a URI such as s3://...)",
    )
    report.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for rate CIs (default: 1000)")
    report.add_argument(
        "--no-regression",
        action="store_true",
        help="leave out the censored regression (AFT models "
        "over every chain) of each collapse event, which takes seconds per event on large folders",
    )

    replay = commands.add_parser(
        "replay",
        help="recompute one chain of a results folder and print it",
        description=(
            "Rerun one chain from the results folder's spec and root seed, alone (it has its own random stream, so "
            "its rows are the stored ones, bit for bit), and print its events and first and last recorded "
            "generations. Nothing in the folder is written; 'sweep show' lists the cells."
        ),
    )
    replay.add_argument("results", help="results folder (OUT/NAME)")
    replay.add_argument("--cell", type=int, required=True, help="the chain's cell (see 'sweep show')")
    replay.add_argument("--replicate", type=int, required=True, help="the chain's replicate, 0 .. replicates-1")
    replay.add_argument("--check", action="store_true", help="compare with the stored rows; exit 1 if they differ")
    replay.add_argument(
        "--out",
        default=None,
        metavar="FILE",
        help="also write every trajectory row to FILE (.csv or "
        ".parquet; a path or a URI such as s3://bucket/chain.csv)",
    )

    from sweep.jobs import add_commands
    from sweep.search.command import add_command

    add_commands(commands, _spec_arguments)
    add_command(commands, _spec_arguments)
    return parser


def _run(args: argparse.Namespace) -> int:
    from sweep.runner import run_sweep
    from sweep.spec import load_spec
    from sweep.store import join_location

    spec = load_spec(args.spec, args.overrides)
    if args.num_cpus is not None and args.num_cpus < 1:
        raise UsageError(f"--num-cpus: expected an integer >= 1, got {args.num_cpus}")
    _check_task_options(args)
    report = run_sweep(
        spec,
        args.out,
        address=args.address,
        num_cpus=args.num_cpus,
        overwrite=args.overwrite,
        blocks_per_task=args.blocks_per_task,
        task_seconds=args.task_seconds,
        progress=not args.no_progress,
    )
    resumed = f", kept {report.parts_kept} complete parts" if report.parts_kept else ""
    redone = f", removed {report.parts_removed} damaged or partial files" if report.parts_removed else ""
    running = report.execute_seconds
    speed = ""
    if running > 0:
        speed = (
            f", {running:.1f} s running tasks, {report.chains_run / running:,.0f} chains/s, "
            f"{report.work_seconds / running:.2f} cores busy"
        )
    print(
        f"{spec.name}: {report.cells} cells x {spec.replicates} replicates = {report.chains} chains; "
        f"computed {report.chains_run} chains in {report.tasks_run} tasks{resumed}{redone} "
        f"({report.seconds:.1f} s in all{speed})"
    )
    if report.failures:
        for failure in report.failures[:SHOWN_FAILURES]:
            print(
                f"failed: cell {failure['cell']} (n={failure['n']}, {failure['policy']}) replicates "
                f"{failure['replicates'][0]}-{failure['replicates'][1] - 1}: {failure['error']}",
                file=sys.stderr,
            )
        if len(report.failures) > SHOWN_FAILURES:
            print(
                f"... and {len(report.failures) - SHOWN_FAILURES} more, all listed in {join_location(report.location, 'sweep.json')}",
                file=sys.stderr,
            )
        if report.stopped:
            print(
                f"stopped: the output location says '{report.stopped}', so {report.not_started} more tasks were not "
                "started; make room (or make it writable) and rerun the same command to resume",
                file=sys.stderr,
            )
        print(f"{len(report.failures)} tasks failed; rerun the same command to retry only them", file=sys.stderr)
        return 1
    print(f"results: {report.location}")
    print(f"open with: python -c \"import analysis; print(analysis.load('{report.location}').head())\"")
    return 0


def _check_task_options(args: argparse.Namespace) -> None:
    if args.blocks_per_task is not None and args.blocks_per_task < 1:
        raise UsageError(f"--blocks-per-task: expected an integer >= 1, got {args.blocks_per_task}")
    if args.task_seconds is not None and not args.task_seconds > 0:
        raise UsageError(f"--task-seconds: expected a number of seconds > 0, got {args.task_seconds}")


def _validate(args: argparse.Namespace) -> int:
    from sweep.grid import cells
    from sweep.spec import load_spec

    spec = load_spec(args.spec, args.overrides)
    grid = cells(spec)
    recorded = spec.record.generations(spec.generations)
    print(
        f"{spec.name}: valid. family {spec.family_name}, {spec.generations} generations "
        f"({recorded.size} recorded), {len(grid)} cells x {spec.replicates} replicates = {len(grid) * spec.replicates} chains"
    )
    for cell in grid:
        print(f"  cell {cell.index}: {cell.label}; blocks={cell.blocks} x {cell.block_size}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from sweep.show import summarize

    print(summarize(args.results))
    return 0


def _report(args: argparse.Namespace) -> int:
    import analysis

    if args.bootstrap < 10:
        raise UsageError(f"--bootstrap: expected an integer >= 10, got {args.bootstrap}")
    import warnings

    with warnings.catch_warnings():
        # Cells where a statistic is undefined (every chain censored, a variance underflowed to
        # 0) show as '–' in the tables; numpy's empty-slice warnings would only be noise here.
        warnings.simplefilter("ignore", RuntimeWarning)
        paths = analysis.write_report(args.results, args.out, n_boot=args.bootstrap, regression=not args.no_regression)
    figures = [p for p in paths if str(p).endswith(".png") and p.parent.name == "figures"]
    grids = sum(1 for p in paths if str(p).endswith(".png") and p.parent.name != "figures")  # copied samples/
    print(
        f"wrote {paths[-1]} and {len(figures)} figures (PNG and SVG) in {paths[-1].parent / 'figures'}"
        + (f", {grids} sample grids in {paths[-1].parent / 'samples'}" if grids else "")
    )
    return 0


def _replay(args: argparse.Namespace) -> int:
    from sweep.replay import check_frame_path, compare_with_stored, describe, replay_chain, write_frame

    if args.out is not None:
        check_frame_path(args.out)  # before any work
    trajectories, events = replay_chain(args.results, args.cell, args.replicate)
    first = trajectories.iloc[0]
    print(describe(f"cell {args.cell} (n={first['n']}, {first['policy']})", args.replicate, trajectories, events))
    if args.out is not None:
        write_frame(trajectories, args.out)
        print(f"wrote {len(trajectories)} trajectory rows to {args.out}")
    if args.check:
        problems = compare_with_stored(args.results, args.cell, args.replicate, (trajectories, events))
        for problem in problems:
            print(f"differs from the stored rows: {problem}", file=sys.stderr)
        if problems:
            return 1
        print("check: identical to the stored rows (trajectories and events)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sweep`` console script; returns the exit status."""
    with warnings.catch_warnings():
        # Python API users filter SweepWarnings as they like; the command shows each as one line.
        warnings.simplefilter("always", SweepWarning)
        warnings.showwarning = _one_line_warnings(warnings.showwarning)
        return _main(argv)


def _one_line_warnings(show: Any) -> Any:
    def one_line(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, SweepWarning):
            print(f"warning: {message}", file=sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    return one_line


def _main(argv: Sequence[str] | None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command in ("submit", "status", "logs"):
            from sweep import jobs

            if args.command == "submit":
                _check_task_options(args)
            return getattr(jobs, args.command)(args)
        from sweep.search.command import search

        commands = {
            "run": _run,
            "validate": _validate,
            "show": _show,
            "report": _report,
            "replay": _replay,
            "search": search,
        }
        return commands[args.command](args)
    except (SpecError, UsageError, ResultsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: complete parts are kept; rerun the same command to resume", file=sys.stderr)
        return 130
