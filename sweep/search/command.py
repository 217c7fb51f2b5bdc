"""The ``sweep search`` subcommand: parse, run or resume, print the result."""

from __future__ import annotations

import argparse
from typing import Any

from sweep.errors import UsageError


def add_command(commands: Any, spec_arguments: Any) -> None:
    """Add ``search`` to the CLI's subcommands."""
    search = commands.add_parser(
        "search",
        help="search a boundary or a Pareto front with optuna",
        description=(
            "Run an optuna search over grid coordinates (policy.fresh_real, policy.mix.*, n, temperature, "
            "family.<field>): each trial is a cell of the sweep, run as Ray tasks and stored in OUT/NAME with a "
            "'trial' column. Rerunning the same command resumes the study (its journal is in the folder). Prints "
            "the boundary where the collapse probability meets its target, with a confidence interval, or the "
            "Pareto front; writes search.json."
        ),
    )
    spec_arguments(search)
    search.add_argument(
        "--trials",
        type=int,
        default=None,
        help="trial budget (default: the spec's search.trials; a larger one continues a finished search)",
    )
    search.add_argument("--out", default="results", help="parent folder of the results (default: results)")
    search.add_argument(
        "--address",
        default=None,
        help="Ray cluster address (auto, HOST:PORT, ray://HOST:PORT); "
        "default: $RAY_ADDRESS if set, else an embedded local Ray",
    )
    search.add_argument(
        "--num-cpus", type=int, default=None, help="CPUs for the embedded local Ray (default: all cores)"
    )
    search.add_argument("--overwrite", action="store_true", help="replace a results folder that holds something else")
    search.add_argument("--task-seconds", type=float, default=None, help="target seconds of work per task")
    search.add_argument("--no-progress", action="store_true", help="no line per finished trial")


def search(args: argparse.Namespace) -> int:
    """Run the command; exit 0, 1 (some tasks failed: rerun to retry) or 2 (bad input)."""
    import sys

    from sweep.search import format_summary, load_search_spec, run_search

    setup = load_search_spec(args.spec, args.overrides)
    if args.trials is not None and args.trials < 1:
        raise UsageError(f"--trials: expected an integer >= 1, got {args.trials}")
    if args.num_cpus is not None and args.num_cpus < 1:
        raise UsageError(f"--num-cpus: expected an integer >= 1, got {args.num_cpus}")
    if args.task_seconds is not None and not args.task_seconds > 0:
        raise UsageError(f"--task-seconds: expected a number of seconds > 0, got {args.task_seconds}")
    report = run_search(
        setup,
        args.out,
        trials=args.trials,
        address=args.address,
        num_cpus=args.num_cpus,
        overwrite=args.overwrite,
        task_seconds=args.task_seconds,
        progress=not args.no_progress,
    )
    if not report.computed:
        print(
            f"{setup.name}: the budget of {report.budget} trials is spent; nothing computed (pass --trials N to go on)"
        )
    else:
        print(
            f"{setup.name}: told {report.trials_told} trials; computed {report.chains_run} chains in "
            f"{report.tasks_run} tasks ({report.seconds:.1f} s)"
        )
    print(format_summary(report.summary))
    print(f"results: {report.location} (search.json, study.journal; 'sweep report {report.location}' draws it)")
    for failure in report.failures[:10]:
        print(
            f"failed: cell {failure['cell']} (n={failure['n']}, {failure['policy']}) replicates "
            f"{failure['replicates'][0]}-{failure['replicates'][1] - 1}: {failure['error']}",
            file=sys.stderr,
        )
    if report.failures:
        print(f"{len(report.failures)} tasks failed; rerun the same command to retry their trials", file=sys.stderr)
        return 1
    return 0
