"""``sweep submit``, ``sweep status`` and ``sweep logs``: a sweep as a Ray Job on a remote cluster.

``submit`` validates the spec here (bad input fails before anything is sent), ships the working
directory to the cluster as the job's ``runtime_env`` ``working_dir``, and runs
``python -m sweep run SPEC ...`` there with the same options, joining the cluster through the
``RAY_ADDRESS`` that Ray sets for a job's driver. The results must go where the cluster writes and
the researcher reads: an absolute path on shared storage or a filesystem URI (``s3://...``); a
relative path would land in the job's temporary copy of the working directory and vanish.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from sweep.cluster import AUTH_HINT
from sweep.errors import UsageError

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
#: Never shipped: version control, environments, local results, caches.
EXCLUDES = [".git", ".venv", "venv", "results", "__pycache__", "*.pyc", ".pytest_cache"]


def add_commands(commands: Any, spec_arguments: Any) -> None:
    """Add ``submit``, ``status`` and ``logs`` to the CLI's subcommands."""
    address = dict(
        default=None,
        help="the head's job server, http://HEAD:8265 (default: $RAY_API_SERVER_ADDRESS, "
        f"else $RAY_ADDRESS if it is http, else {DEFAULT_ADDRESS})",
    )
    submit = commands.add_parser(
        "submit",
        help="run a sweep as a Ray Job on a cluster",
        description=(
            "Validate the spec here, then submit 'python -m sweep run SPEC ...' as a Ray Job, shipping the working "
            "directory. Follows the job's logs and exits with its status, unless --no-wait."
        ),
    )
    spec_arguments(submit)
    submit.add_argument("--address", **address)
    submit.add_argument(
        "--out", required=True, help="absolute path every node sees, or a filesystem URI (s3://bucket/prefix)"
    )
    submit.add_argument(
        "--working-dir", default=".", help="folder shipped to the cluster; the spec must be inside (default: .)"
    )
    submit.add_argument(
        "--overwrite", action="store_true", help="replace a results folder that holds a different sweep"
    )
    submit.add_argument("--blocks-per-task", type=int, default=None, help="force the task size in blocks")
    submit.add_argument("--task-seconds", type=float, default=None, help="target seconds of work per task")
    submit.add_argument("--no-wait", action="store_true", help="print the job id and return at once")
    for name, text in (("status", "print a sweep job's status"), ("logs", "print a sweep job's logs")):
        command = commands.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        command.add_argument("job", help="job id printed by 'sweep submit'")
        command.add_argument("--address", **address)
        if name == "logs":
            command.add_argument("--follow", action="store_true", help="keep printing until the job ends")


def _address(given: str | None) -> str:
    address = given or os.environ.get("RAY_API_SERVER_ADDRESS") or ""
    if not address and os.environ.get("RAY_ADDRESS", "").startswith("http"):
        address = os.environ["RAY_ADDRESS"]
    address = address or DEFAULT_ADDRESS
    if address.startswith("ray://") or address == "auto":
        raise UsageError(
            f"--address: expected the head's job server http://HEAD:8265, got '{address}' "
            "(that address is for 'sweep run --address')"
        )
    return address if "://" in address else f"http://{address}"


def client(given: str | None) -> Any:
    """A JobSubmissionClient for the head, with its connection errors as one line."""
    from ray.exceptions import AuthenticationError
    from ray.job_submission import JobSubmissionClient

    address = _address(given)
    try:
        return JobSubmissionClient(address)
    except AuthenticationError:
        raise UsageError(f"--address '{address}': the cluster requires token authentication; {AUTH_HINT}") from None
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise UsageError(
            f"--address '{address}': expected a Ray job server (the head's dashboard, started with "
            f"--include-dashboard=true), got {' '.join(str(error).split())[:200]}"
        ) from None


def _job_call(job: str, address: str, call: Any) -> Any:
    try:
        return call()
    except RuntimeError as error:
        if "404" in str(error) or "does not exist" in str(error):
            raise UsageError(
                f"job '{job}': expected a job id of the cluster at {address} (see 'ray job list'), got none such"
            ) from None
        raise


def _entrypoint(args: argparse.Namespace, spec_path: str) -> str:
    command = ["python", "-m", "sweep", "run", spec_path, "--out", args.out]
    for override in args.overrides:
        command += ["--set", override]
    if args.overwrite:
        command.append("--overwrite")
    if args.blocks_per_task is not None:
        command += ["--blocks-per-task", str(args.blocks_per_task)]
    if args.task_seconds is not None:
        command += ["--task-seconds", str(args.task_seconds)]
    return shlex.join(command)


def submit(args: argparse.Namespace) -> int:
    """Submit the sweep; follow it unless ``--no-wait``; return the exit status."""
    from sweep.runner import WORKER_ENV
    from sweep.spec import load_spec

    spec = load_spec(args.spec, args.overrides)  # fail here, not minutes later on the cluster
    working_dir = Path(args.working_dir).resolve()
    if not working_dir.is_dir():
        raise UsageError(f"--working-dir: expected an existing folder, got '{args.working_dir}'")
    try:
        spec_path = Path(args.spec).resolve().relative_to(working_dir).as_posix()
    except ValueError:
        raise UsageError(
            f"spec file '{args.spec}': expected a file inside --working-dir '{working_dir}', which is "
            "what the cluster receives; move it there or pass --working-dir"
        ) from None
    if "://" not in args.out and not os.path.isabs(args.out):
        raise UsageError(
            f"--out: expected an absolute path every node sees or a URI such as s3://bucket/results, got "
            f"'{args.out}' (relative to the job's temporary copy of the working directory, it would vanish)"
        )
    jobs = client(args.address)
    job = jobs.submit_job(
        entrypoint=_entrypoint(args, spec_path),
        runtime_env={"working_dir": str(working_dir), "excludes": EXCLUDES, "env_vars": dict(WORKER_ENV)},
        metadata={"sweep": spec.name, "out": args.out},
    )
    address = _address(args.address)
    if args.no_wait:
        print(job)
        print(f"follow with: sweep logs {job} --follow --address {address}", file=sys.stderr)
        return 0
    print(f"submitted {job}; following its logs (Ctrl-C stops following, not the job)", file=sys.stderr)
    return _follow(jobs, job, address)


def _follow(jobs: Any, job: str, address: str) -> int:
    async def tail() -> None:
        async for chunk in jobs.tail_job_logs(job):
            print(chunk, end="", flush=True)

    try:
        asyncio.run(tail())
    except KeyboardInterrupt:
        print(f"stopped following; the job goes on: sweep status {job} --address {address}", file=sys.stderr)
        return 130
    info = _job_call(job, address, lambda: jobs.get_job_info(job))
    status = str(info.status.value if hasattr(info.status, "value") else info.status)
    if status == "SUCCEEDED":
        return 0
    print(f"job {job} {status}: {' '.join(str(info.message or '').split())}", file=sys.stderr)
    # The driver's own exit status says what kind of failure: 1 some tasks failed, 2 bad input.
    code = getattr(info, "driver_exit_code", None)
    return code if isinstance(code, int) and 0 < code < 128 else 1


def status(args: argparse.Namespace) -> int:
    """Print one line: the job's status and Ray's message about it."""
    jobs = client(args.address)
    address = _address(args.address)
    info = _job_call(args.job, address, lambda: jobs.get_job_info(args.job))
    state = str(info.status.value if hasattr(info.status, "value") else info.status)
    print(f"{args.job}: {state}" + (f" ({' '.join(str(info.message).split())})" if info.message else ""))
    return 0


def logs(args: argparse.Namespace) -> int:
    """Print the job's logs so far, or follow them with ``--follow``."""
    jobs = client(args.address)
    address = _address(args.address)
    _job_call(args.job, address, lambda: jobs.get_job_status(args.job))
    if args.follow:
        return _follow(jobs, args.job, address)
    print(_job_call(args.job, address, lambda: jobs.get_job_logs(args.job)), end="")
    return 0
