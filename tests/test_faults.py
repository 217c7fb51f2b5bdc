"""Faults a sweep survives, with real Ray processes: a worker killed mid-task, a node removed, the
driver killed again and again. Each ends in the same rows as an uninterrupted run of the spec."""

from __future__ import annotations

import random
import subprocess
import threading
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

import analysis
from sweep.runner import run_sweep
from sweep.spec import parse_spec
from tests.raynodes import env, kill_group, names, sweep, sweep_command

#: 4 cells x 6 blocks of 8 chains; with 2 blocks per task, 12 tasks of about 0.3 s each. The
#: kill points assume tasks of that length, so the kernel is numpy's wherever numba is installed:
#: the compiled sampler's tasks took a third of that, and three kills then found the sweep done.
RAW = {
    "name": "faults",
    "seed": 7,
    "generations": 600,
    "replicates": 48,
    "block_size": 8,
    "family": {"name": "gaussian", "dim": 1, "path": "sample", "kernel": "numpy"},
    "grid": {"n": [200, 800], "policy": ["replace", {"fresh_real": 0.2}]},
    "events": {"spread_below": [0.5], "distance_above": [1.0]},
    "record": {"every": 20},
}
TASKS = 12
AGENTS = {"ray::DashboardAgent", "ray::RuntimeEnvAgent"}


@pytest.fixture(scope="module")
def reference(ray_session, tmp_path_factory):
    """The uninterrupted run every faulty one must match row for row."""
    report = run_sweep(parse_spec(RAW), str(tmp_path_factory.mktemp("reference")), blocks_per_task=2, progress=False)
    assert report.tasks_run == TASKS and not report.failures
    return report.location


def same_data(location, reference: str) -> None:
    pd.testing.assert_frame_equal(analysis.load(location), analysis.load(reference))
    pd.testing.assert_frame_equal(analysis.load_events(location), analysis.load_events(reference))


def parts(location, kind: str = "trajectories") -> list[Path]:
    return sorted(Path(location, kind).rglob("part-*.parquet"))


def leftovers(location) -> list[Path]:
    return [p for p in Path(location).rglob(".*") if p.is_file()]


def test_worker_killed_mid_task(reference, tmp_path):
    """SIGKILL the worker process running a task: Ray retries the task, nothing is lost or doubled."""
    killed: list[int] = []

    def kill_first_running_task():
        me, deadline = psutil.Process(), time.monotonic() + 60
        while not killed and time.monotonic() < deadline:
            for proc in me.children(recursive=True):
                try:
                    # Ray names a worker's process after the task it is executing.
                    if " ".join(proc.cmdline()).startswith("ray::run_task"):
                        time.sleep(0.05)  # well inside a task of about 0.3 s
                        proc.kill()
                        killed.append(proc.pid)
                        return
                except psutil.Error:
                    continue
            time.sleep(0.02)

    killer = threading.Thread(target=kill_first_running_task)
    killer.start()
    report = run_sweep(parse_spec(RAW), str(tmp_path), blocks_per_task=2, progress=False)
    killer.join()
    assert killed, "no worker was seen running a task"
    assert not psutil.pid_exists(killed[0]) or psutil.Process(killed[0]).status() == psutil.STATUS_ZOMBIE
    assert report.failures == [] and report.tasks_run == TASKS and report.chains_run == 4 * 48
    assert leftovers(report.location) == []  # the killed task's temporary file is cleaned at the end
    same_data(report.location, reference)


def test_node_removed_mid_sweep(reference, tmp_path, write_spec):
    """A 3-node Cluster (head without CPUs, two 1-CPU workers) loses a worker mid-sweep: its tasks rerun
    on the other, the result is complete and identical, and the local-path warning is one line."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        connect=False,
        head_node_args={
            "num_cpus": 0,
            "include_dashboard": False,
            # Notice a dead node within seconds rather than the default half minute.
            "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3},
        },
    )
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    driver = None
    try:
        cluster.wait_for_nodes()
        driver = subprocess.Popen(
            sweep_command(
                "run",
                write_spec(RAW),
                "--address",
                cluster.address,
                "--out",
                tmp_path,
                "--blocks-per-task",
                "2",
                "--no-progress",
            ),
            env=env(),
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 90
        while len(parts(tmp_path / "faults")) < 2 and time.monotonic() < deadline and driver.poll() is None:
            time.sleep(0.05)
        assert len(parts(tmp_path / "faults")) < TASKS, "the sweep ended before the node could be removed"
        cluster.remove_node(workers[0], allow_graceful=False)
        out, err = driver.communicate(timeout=180)
    finally:
        if driver is not None:
            kill_group(driver.pid)
        cluster.shutdown()
    assert driver.returncode == 0, err
    assert f"computed {4 * 48} chains in {TASKS} tasks" in out
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: results '{tmp_path}/faults' are a local path but tasks run on 3 nodes: every node "
        "must see it (a shared filesystem), or use an object-store URI such as s3://bucket/results"
    ]
    same_data(tmp_path / "faults", reference)


@pytest.mark.parametrize("kills", [1, pytest.param(3, marks=pytest.mark.slow)])
def test_driver_killed_repeatedly(kills, reference, tmp_path, write_spec):
    """SIGKILL the driver at random points, then run again: only missing parts are computed.

    A kill point is "k more parts written, then a random delay" (k and the delay from a fixed seed):
    on a busy machine Ray's start-up time varies too much for a clock alone to land mid-sweep."""
    rng = random.Random(20261121)
    spec, location = write_spec(RAW), tmp_path / "faults"
    args = ("run", spec, "--out", tmp_path, "--num-cpus", "1", "--blocks-per-task", "2", "--no-progress")
    for _ in range(kills):
        target = len(parts(location)) + rng.randint(1, 2)
        driver = subprocess.Popen(
            sweep_command(*args),
            env=env(),
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while len(parts(location)) < target and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0.0, 0.4))  # somewhere inside the next task, or writing its parts
        assert driver.poll() is None, "the driver ended before it could be killed"
        driver.kill()  # the driver alone: its embedded Ray must cope with losing it
        driver.wait()
        # Raylet, GCS and workers die with their driver; Ray's two agents notice only after up to
        # half a minute, so they are killed once the rest is gone.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not names(driver.pid) <= AGENTS:
            time.sleep(0.2)
        assert names(driver.pid) <= AGENTS
        kill_group(driver.pid)
        assert names(driver.pid) == set()
    assert '"status": "running"' in (location / "sweep.json").read_text()  # no run got to the end
    kept = len(parts(location))
    assert kills <= kept < TASKS
    final = sweep(*args)
    assert final.returncode == 0, final.stderr
    assert f"computed {4 * 48 - 16 * kept} chains in {TASKS - kept} tasks, kept {kept} complete parts" in final.stdout
    assert leftovers(location) == []
    assert '"status": "complete"' in (location / "sweep.json").read_text()
    same_data(location, reference)
