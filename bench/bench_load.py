"""Load: 100,000 chains in over 2,000 tasks through ``sweep run`` on this machine's cores.

Runs the driver as a real ``python -m sweep run`` process (embedded Ray with 2 CPUs), samples its
resident memory every 0.1 s, then checks the results folder: every (cell, replicate) exactly once,
the progress lines honest (never past the total, ending at it). Prints the driver's peak RSS (and
at quarter points of the run, to show it does not grow with the number of tasks), Ray's cost per
task measured with no-op tasks, and what the planner's task size leaves of it: the overhead share
of the sweep's work.

Usage: python bench/bench_load.py [--out DIR]    (about 2-3 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: 4 cells x 25,000 chains in blocks of 4: with tasks of the smallest size the planner allows
#: (sweep.plan.MIN_TASK_SECONDS), 12 blocks each, that is 2,084 tasks.
LOAD = {
    "name": "load",
    "seed": 2026,
    "generations": 240,
    "replicates": 25_000,
    "block_size": 4,
    "family": {"name": "gaussian", "dim": 1, "path": "exact"},
    "grid": {"n": [10, 100], "policy": ["replace", {"fresh_real": 0.1}]},
    "events": {"spread_below": [0.5, 0.1], "distance_above": [1.0]},
    "record": {"every": 60},
}
TASK_SECONDS = 0.15


def run_driver(args: list[str], cpus: int = 2) -> dict:
    """Run ``python -m sweep run ARGS``; return its output, wall time and RSS samples (bytes)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "sweep", "run", *args, "--num-cpus", str(cpus)],
        env=env,
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    samples: list[tuple[float, int]] = []

    def sample() -> None:
        driver = psutil.Process(process.pid)
        while process.poll() is None:
            try:
                samples.append((time.monotonic() - started, driver.memory_info().rss))
            except psutil.Error:
                break
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out, err = process.communicate()
    finally:
        _kill_group(process.pid)
    sampler.join()
    return {
        "returncode": process.returncode,
        "stdout": out,
        "stderr": err,
        "wall": time.monotonic() - started,
        "rss": samples,
    }


def _kill_group(pgid: int) -> None:
    """Kill what the driver's embedded Ray left in its process group (Ray's agents linger)."""
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid:
                proc.kill()
        except (psutil.Error, ProcessLookupError):
            continue


def noop_task_seconds(tasks: int = 2000, cpus: int = 2) -> float:
    """Ray's own cost per task: no-op tasks with the runner's options through a bounded ray.wait loop."""
    import ray

    from sweep.runner import task_options

    ray.init(num_cpus=cpus, include_dashboard=False, logging_level="WARNING")
    try:
        noop = ray.remote(**task_options())(lambda: None)
        ray.get([noop.remote() for _ in range(4 * cpus)])  # workers started and warm
        started, pending, left = time.perf_counter(), [], tasks
        while left or pending:
            while left and len(pending) < 2 * cpus + 2:
                pending.append(noop.remote())
                left -= 1
            _, pending = ray.wait(pending, num_returns=1)
        return (time.perf_counter() - started) * cpus / tasks
    finally:
        ray.shutdown()


def load(out: Path) -> dict:
    """Run the load sweep into ``out``; return the figures and checks."""
    import analysis

    spec = out / "load.yaml"
    spec.write_text(yaml.safe_dump(LOAD, sort_keys=False))
    run = run_driver([str(spec), "--out", str(out), "--task-seconds", str(TASK_SECONDS)])
    if run["returncode"] != 0:
        raise RuntimeError(f"sweep run failed ({run['returncode']}):\n{run['stderr'][-3000:]}")
    meta = json.loads((out / "load" / "sweep.json").read_text())
    last = meta["last_run"]
    events = analysis.load_events(out / "load", columns=["cell", "replicate"])
    trajectories = analysis.load(out / "load", columns=["cell", "replicate", "generation"])
    chains = len(LOAD["grid"]["n"]) * len(LOAD["grid"]["policy"]) * LOAD["replicates"]
    progress = [tuple(map(int, m.groups())) for m in re.finditer(r"^load: (\d+)/(\d+) chains", run["stderr"], re.M)]
    rss = [r for _, r in run["rss"]]
    quarter = [rss[min(len(rss) - 1, int(len(rss) * q))] for q in (0.25, 0.5, 0.75)]
    return {
        "chains": chains,
        "tasks": last["tasks"],
        "unique_chains": int(len(events.drop_duplicates())),
        "trajectory_rows": len(trajectories),
        "rows_per_chain": len(trajectories) / chains,
        "duplicated_rows": int(trajectories.duplicated().sum()),  # the same (cell, replicate, generation) twice
        "progress": progress,
        "wall": run["wall"],
        "execute_seconds": last["execute_seconds"],
        "work_seconds": last["work_seconds"],
        "workers": last["workers"],
        "peak_rss": max(rss),
        "quarter_rss": quarter,
        "summary": run["stdout"].splitlines()[0],
    }


def report(figures: dict, noop: float) -> list[str]:
    f = figures
    busy = f["execute_seconds"] * f["workers"]
    overhead = busy - f["work_seconds"]
    mib = 2**20
    return [
        f"load: {f['chains']:,} chains in {f['tasks']:,} tasks; {f['unique_chains']:,} unique (cell, replicate) in the "
        f"events, {f['trajectory_rows']:,} trajectory rows ({f['rows_per_chain']:.2f} per chain, {f['duplicated_rows']} duplicated)",
        f"wall {f['wall']:.1f} s (executing {f['execute_seconds']:.1f} s on {f['workers']} workers), work {f['work_seconds']:.1f} s "
        f"summed over tasks = {f['work_seconds'] / f['tasks'] * 1e3:.0f} ms per task, "
        f"{f['work_seconds'] / f['execute_seconds']:.2f} cores busy",
        f"Ray per task (no-op tasks): {noop * 1e3:.2f} ms = {noop / (f['work_seconds'] / f['tasks']):.1%} of a task's work; "
        f"all overhead while executing (scheduling, start-up, idle tail): {overhead / f['tasks'] * 1e3:.1f} ms per task "
        f"= {overhead / f['work_seconds']:.1%} of the work",
        f"driver RSS: peak {f['peak_rss'] / mib:.0f} MiB; at 25/50/75% of the run "
        + "/".join(f"{r / mib:.0f}" for r in f["quarter_rss"])
        + " MiB",
        f"progress lines: {len(f['progress'])}, last {f['progress'][-1][0]:,}/{f['progress'][-1][1]:,}"
        if f["progress"]
        else "progress lines: none",
        f["summary"],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="results parent folder (default: a temporary folder, removed)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        figures = load(Path(args.out or tmp))
    noop = noop_task_seconds()
    print("\n".join(report(figures, noop)))


if __name__ == "__main__":
    main()
