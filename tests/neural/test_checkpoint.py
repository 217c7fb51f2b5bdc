"""A neural task killed (SIGKILL) after a checkpoint resumes from it, with results identical to
an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from sweep.families.vae import VAEFamily
from tests.neural.conftest import TINY_VAE, tiny_spec

RAW = tiny_spec({**TINY_VAE, "epochs": 4}, generations=10, replicates=2, policy=({"fresh_real": 0.1},))
ENTROPY = 1234
SCRIPT = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    from sweep.grid import cells
    from sweep.spec import parse_spec
    from sweep.task import Task, run_task
    spec = parse_spec({raw!r})
    run_task(spec, cells(spec), {entropy}, sys.argv[1], Task(0, 0, 1))
""")


def run_in_process(location: str):
    from sweep.grid import cells
    from sweep.spec import parse_spec
    from sweep.task import Task, run_task

    spec = parse_spec(RAW)
    return run_task(spec, cells(spec), ENTROPY, location, Task(0, 0, 1))


def test_killed_task_resumes_from_its_checkpoint(tmp_path, monkeypatch, digits):
    """Kill the task once its generation-5 checkpoint exists; the rerun restores that state (it
    never starts a block from generation 0) and writes the same parts as an uninterrupted run."""
    assert VAEFamily.checkpoint_every == 5
    killed = tmp_path / "killed"
    checkpoint = killed / "state" / "checkpoint" / "cell=0" / "block-0000000.pkl"
    from sweep.families._neural import classifier

    classifier.prepare(digits, str(killed))  # the subprocess reads it instead of training its own
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-c", SCRIPT.format(raw=RAW, entropy=ENTROPY), str(killed)], env=env)
    try:
        deadline = time.monotonic() + 300
        while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert checkpoint.exists(), "no checkpoint was written"
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert not list(killed.glob("trajectories/**/*.parquet")), "the task finished before it was killed"

    from sweep.engine import BlockRun

    def refuse(self, horizon):
        raise AssertionError("the block restarted from generation 0 instead of its checkpoint")

    with monkeypatch.context() as patch:
        patch.setattr(BlockRun, "start", refuse)
        run_in_process(str(killed))
    run_in_process(str(tmp_path / "reference"))
    for kind in ("trajectories", "events"):
        resumed = pq.read_table(next(killed.glob(f"{kind}/**/*.parquet")))
        reference = pq.read_table(next((tmp_path / "reference").glob(f"{kind}/**/*.parquet")))
        assert resumed.schema.equals(reference.schema, check_metadata=True)
        # pandas compares NaN (generation 0's model metrics) as equal; Arrow's equals does not
        pd.testing.assert_frame_equal(resumed.to_pandas(), reference.to_pandas(), check_exact=True)
    assert not checkpoint.exists()  # removed once the parts are written
