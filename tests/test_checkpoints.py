"""Checkpoints inside a task: a task killed mid-horizon resumes from its blocks' last checkpoints and
ends with the rows of an uninterrupted run."""

from __future__ import annotations

import pickle
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

import analysis
from sweep.engine import BlockRun
from sweep.grid import block_rng, cells
from sweep.runner import run_sweep
from sweep.spec import parse_spec
from sweep.store import Store, plain_table
from sweep.task import Task, simulate_task_block
from tests.contract_families import SlowExponential
from tests.raynodes import env, kill_group, sweep, sweep_command

GENERATIONS = 40
#: One task of two blocks of two chains; accumulate_subsample keeps a pool of samples (the data
#: representation) and draws its subsamples from substreams: the most state a checkpoint carries.
RAW = {
    "name": "ckpt",
    "seed": 11,
    "generations": GENERATIONS,
    "replicates": 4,
    "block_size": 2,
    "family": {"name": "tests.contract_families:SlowExponential", "rate": 2.0},
    "grid": {"n": [20], "policy": ["accumulate_subsample"]},
    "events": {"rate_above": [1.5, 3.0]},
    "record": {"every": 3},
}


def with_log(log: Path | None, **changes) -> dict:
    family = dict(RAW["family"], **({"log": str(log)} if log else {}))
    return {**RAW, "family": family, **changes}


def same_rows(location, reference) -> None:
    pd.testing.assert_frame_equal(analysis.load(location), analysis.load(reference))
    pd.testing.assert_frame_equal(analysis.load_events(location), analysis.load_events(reference))


@pytest.fixture(scope="module")
def reference(ray_session, tmp_path_factory):
    """The uninterrupted run (checkpoints written, none read)."""
    report = run_sweep(
        parse_spec(with_log(None)), str(tmp_path_factory.mktemp("reference")), blocks_per_task=2, progress=False
    )
    assert report.tasks_run == 1 and not report.failures
    return report.location


def fits_by_process(log: Path) -> dict[int, int]:
    pids = [int(line) for line in log.read_text().split()]
    return {pid: pids.count(pid) for pid in dict.fromkeys(pids)}


@pytest.mark.slow
def test_worker_killed_mid_task_resumes_from_checkpoints(reference, tmp_path):
    """SIGKILL the worker once block 1 has a checkpoint: Ray retries the task, which continues block 0
    from its last checkpoint (generation 35) and block 1 from its own, instead of generation 0,
    and the rows are those of the uninterrupted run."""
    log = tmp_path / "fits.log"
    location = tmp_path / "out" / "ckpt"
    checkpoint = location / "state" / "checkpoint" / "cell=0" / "block-0000001.pkl"
    killed: list[int] = []

    def kill_once_block_1_is_checkpointed():
        me, deadline = psutil.Process(), time.monotonic() + 60
        while not killed and time.monotonic() < deadline:
            if checkpoint.exists():
                for proc in me.children(recursive=True):
                    try:
                        if " ".join(proc.cmdline()).startswith("ray::run_task"):
                            proc.kill()
                            killed.append(proc.pid)
                            return
                    except psutil.Error:
                        continue
            time.sleep(0.005)

    killer = threading.Thread(target=kill_once_block_1_is_checkpointed)
    killer.start()
    report = run_sweep(parse_spec(with_log(log)), str(tmp_path / "out"), blocks_per_task=2, progress=False)
    killer.join()
    assert killed, "no worker was seen running the task after block 1's first checkpoint"
    assert report.failures == [] and report.tasks_run == 1
    fits = fits_by_process(log)
    assert list(fits)[0] == killed[0] and len(fits) == 2, fits
    before, after = fits.values()
    # the killed process fitted block 0 whole and block 1 up to generation k (5 <= k < 40); the
    # retry fits block 0 from its last checkpoint, 35, and block 1 from a multiple of 5 <= k
    k = before - GENERATIONS
    assert 5 <= k < GENERATIONS
    resumed_at = GENERATIONS + (GENERATIONS - 35) - after
    assert resumed_at % 5 == 0 and 5 <= resumed_at <= k, (before, after)
    assert not checkpoint.exists()  # a finished task leaves no checkpoint behind
    assert [p for p in location.rglob(".*") if p.is_file()] == []
    same_rows(location, reference)


def test_checkpoint_of_a_smaller_block_is_not_used(tmp_path):
    """A checkpoint left by a run with fewer replicates (a partial last block of 3 chains, now 4) is
    ignored: the block is simulated from generation 0 with all its chains."""
    store = Store(str(tmp_path / "ckpt"))
    small, full = parse_spec(with_log(None, replicates=3, block_size=4)), parse_spec(with_log(None, block_size=4))
    cell_small, cell_full = cells(small)[0], cells(full)[0]
    run = BlockRun(cell_small.family, cell_small, 0, rng=block_rng(1, cell_small, 0), events_spec=small.events)
    run.start(GENERATIONS)
    run.advance(10, GENERATIONS, np.zeros(GENERATIONS + 1, dtype=bool))
    store.write_state("checkpoint", 0, 0, pickle.dumps(run.state))
    resumed = simulate_task_block(full, cell_full, 0, 1, store, Task(0, 0, 1))
    fresh = simulate_task_block(full, cell_full, 0, 1, None, Task(0, 0, 1))
    for got, expected in zip(resumed[:2], fresh[:2]):
        pd.testing.assert_frame_equal(plain_table(got).to_pandas(), plain_table(expected).to_pandas())
    assert set(resumed[0]["replicate"].to_pylist()) == {0, 1, 2, 3}


def test_scan_removes_temporary_state_files(tmp_path):
    """A task killed while saving a checkpoint leaves a temporary file; the next run's scan removes
    it, and keeps the checkpoints themselves."""
    store = Store(str(tmp_path))
    store.write_state("checkpoint", 0, 0, b"state")
    folder = tmp_path / "state" / "checkpoint" / "cell=0"
    (folder / ".block-0000000.pkl.tmp-0123").write_bytes(b"half")
    scan = store.scan(lambda *args: None)
    assert scan.removed == [str(folder / ".block-0000000.pkl.tmp-0123")]
    assert [p.name for p in folder.iterdir()] == ["block-0000000.pkl"]


@pytest.mark.slow
def test_driver_killed_then_rerun_resumes_from_checkpoints(reference, tmp_path, write_spec):
    """SIGKILL the whole driver (and its embedded Ray) once block 1 has a checkpoint; the rerun picks
    the checkpoints up (fewer fits than from generation 0) and ends with the uninterrupted rows."""
    log = tmp_path / "fits.log"
    spec = write_spec(with_log(log))
    location = tmp_path / "ckpt"
    checkpoint = location / "state" / "checkpoint" / "cell=0" / "block-0000001.pkl"
    args = ("run", spec, "--out", tmp_path, "--num-cpus", "1", "--blocks-per-task", "2", "--no-progress")
    driver = psutil.Popen(sweep_command(*args), env=env(), start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not checkpoint.exists() and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert driver.poll() is None, "the driver ended before it could be killed"
    finally:
        kill_group(driver.pid)
    assert '"status": "running"' in (location / "sweep.json").read_text()
    state = pickle.loads(checkpoint.read_bytes())
    assert 5 <= state.generation < GENERATIONS and state.generation % 5 == 0
    done_before = len(log.read_text().split())
    final = sweep(*args)
    assert final.returncode == 0, final.stderr
    rerun_fits = len(log.read_text().split()) - done_before
    assert rerun_fits == (GENERATIONS - 35) + (GENERATIONS - state.generation)
    assert not checkpoint.exists()
    same_rows(location, reference)
