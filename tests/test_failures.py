"""Failures inside tasks: an exception is recorded and retried alone on the next run, a non-finite fit
is an event, and storage that refuses writes (read-only folder, full disk) leaves only whole parts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import analysis
from sweep.runner import run_sweep
from sweep.spec import parse_spec
from tests.raynodes import ROOT, env, kill_group

RAW = {
    "name": "failures",
    "seed": 11,
    "generations": 20,
    "replicates": 40,
    "block_size": 10,
    "family": {"name": "categorical", "k": 8, "probs": "uniform"},
    "grid": {"n": [10, 30], "policy": ["replace", {"fresh_real": 0.1}]},
}


@pytest.fixture(scope="module")
def reference(ray_session, tmp_path_factory):
    return run_sweep(parse_spec(RAW), str(tmp_path_factory.mktemp("reference")), progress=False).location


def same_data(location, reference: str) -> None:
    pd.testing.assert_frame_equal(analysis.load(location), analysis.load(reference))
    pd.testing.assert_frame_equal(analysis.load_events(location), analysis.load_events(reference))


def leftovers(location) -> list[Path]:
    return [p for p in Path(location).rglob(".*") if p.is_file()]


def test_failing_task_is_recorded_and_retried_alone(reference, tmp_path, cli, write_spec, monkeypatch):
    """A task that raises: its cell and replicates are reported with the message, the rest finishes,
    exit 1; sweep.json lists the failure; the next run computes only the failed chains."""
    spec = write_spec(RAW)
    monkeypatch.setenv("COLLAPSE_SWEEP_FAIL_CELLS", "2")
    status, _, err = cli("run", spec, "--out", tmp_path, "--no-progress", "--blocks-per-task", "2")
    assert status == 1
    message = "FloatingPointError: non-finite value in cell 2 (injected by COLLAPSE_SWEEP_FAIL_CELLS=2)"
    assert err.splitlines() == [
        f"failed: cell 2 (n=30, replace) replicates 0-19: {message}",
        f"failed: cell 2 (n=30, replace) replicates 20-39: {message}",
        "2 tasks failed; rerun the same command to retry only them",
    ]
    meta = json.loads((tmp_path / "failures" / "sweep.json").read_text())
    assert meta["status"] == "failed"
    assert [(f["cell"], f["replicates"], f["error"]) for f in meta["failures"]] == [
        (2, [0, 20], message),
        (2, [20, 40], message),
    ]
    assert not (tmp_path / "failures" / "trajectories" / "cell=2").exists() or not any(
        (tmp_path / "failures" / "trajectories" / "cell=2").iterdir()
    )
    monkeypatch.delenv("COLLAPSE_SWEEP_FAIL_CELLS")
    status, out, _ = cli("run", spec, "--out", tmp_path, "--no-progress", "--blocks-per-task", "2")
    assert status == 0 and "computed 40 chains in 2 tasks, kept 6 complete parts" in out
    assert json.loads((tmp_path / "failures" / "sweep.json").read_text())["status"] == "complete"
    same_data(tmp_path / "failures", reference)


def test_non_finite_fit_is_a_diverged_event(ray_session, tmp_path):
    """A Gaussian whose scatter overflows: those chains end as 'diverged' events, the task succeeds."""
    spec = parse_spec(
        {
            "name": "overflow",
            "seed": 3,
            "generations": 30,
            "replicates": 64,
            "block_size": 32,
            "family": {"name": "gaussian", "dim": 1, "cov": 2e307},
            "grid": {"n": [10], "policy": ["replace"]},
            "events": {"spread_below": [0.5]},
        }
    )
    report = run_sweep(spec, str(tmp_path), progress=False)
    assert report.failures == [] and report.chains_run == 64
    events = analysis.load_events(report.location, filters=[("event", "=", "diverged")]).set_index("replicate")
    diverged = events.index[events["observed"]]
    assert 0 < len(diverged) < 64  # 2e307 * chi2(9) overflows for about 40% of the chains
    final = analysis.load(report.location, filters=[("generation", "=", 30)]).set_index("replicate")
    assert not np.isfinite(final.loc[diverged, "var"]).any()
    assert np.isfinite(final.drop(index=diverged)["var"]).all()


@contextmanager
def unwritable(folder: Path):
    """Make a folder refuse new files. Root ignores permission bits, so as root the immutable
    attribute is used (it binds root too); skip where neither works."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
        pytest.skip("running as root on a filesystem without 'chattr +i': no way to make a folder unwritable")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_folder_becomes_unwritable(reference, tmp_path, cli, write_spec):
    """A cell folder that refuses writes after the sweep began: that cell's tasks fail with the part's
    path and the reason, nothing half-written stays (not even the events half), and a run once the
    folder is writable again completes the sweep."""
    spec = write_spec(RAW)
    assert cli("run", spec, "--out", tmp_path, "--no-progress")[0] == 0
    location = tmp_path / "failures"
    for kind in ("trajectories", "events"):
        for part in (location / kind / "cell=1").iterdir():
            part.unlink()
    with unwritable(location / "trajectories" / "cell=1"):
        status, _, err = cli("run", spec, "--out", tmp_path, "--no-progress")
        assert status == 1
        first = err.splitlines()[0]
        assert first.startswith(
            f"failed: cell 1 (n=10, fresh_real(0.1)) replicates 0-39: OSError: cannot write part "
            f"'{location}/trajectories/cell=1/part-c00001-b0000000-0000004.parquet': "
        )
        assert "Permission denied" in first or "Operation not permitted" in first
        assert leftovers(location) == [] and list((location / "events" / "cell=1").iterdir()) == []
        assert json.loads((location / "sweep.json").read_text())["status"] == "failed"
    status, out, _ = cli("run", spec, "--out", tmp_path, "--no-progress")
    assert status == 0 and "computed 40 chains in 1 tasks, kept 3 complete parts" in out
    same_data(location, reference)


def test_disk_full(reference, tmp_path, write_spec, cli):
    """A disk that fills mid-sweep (a 96 KiB tmpfs in a private mount namespace, so no privilege is
    needed): the error names the part and 'No space left on device', only whole parts remain, and
    the sweep completes elsewhere from what was kept."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode:
        pytest.skip("cannot create a user and mount namespace here (unshare -rm) to mount a small tmpfs")
    small, kept = tmp_path / "small", tmp_path / "kept"
    small.mkdir()
    kept.mkdir()
    # The tmpfs lives as long as the namespace: copy what the run left before leaving it.
    script = (
        'mount -t tmpfs -o size=96k tmpfs "$0" || exit 99; "$@"; status=$?; '
        'cp -a "$0/." "' + str(kept) + '/"; exit $status'
    )
    command = [
        "unshare",
        "-rm",
        "sh",
        "-c",
        script,
        str(small),
        sys.executable,
        "-m",
        "sweep",
        "run",
        str(write_spec(RAW)),
        "--out",
        str(small),
        "--num-cpus",
        "1",
        "--blocks-per-task",
        "1",
        "--no-progress",
    ]
    process = subprocess.Popen(
        command, env=env(), cwd=ROOT, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = process.communicate(timeout=240)
    finally:
        kill_group(process.pid)
    assert process.returncode in (1, 2), out + err  # 2 when even sweep.json could not be updated
    failed = [line for line in err.splitlines() if line.startswith("failed: ")]
    assert failed and all(
        "OSError: cannot write part '" in line and "No space left on device" in line for line in failed
    )
    stopped = [line for line in err.splitlines() if line.startswith("stopped: ")]
    assert stopped and stopped[0].startswith("stopped: the output location says 'No space left on device', so ")
    location = kept / "failures"
    assert leftovers(location) == []
    trajectories = {p.name for p in (location / "trajectories").rglob("part-*.parquet")}
    events = {p.name for p in (location / "events").rglob("part-*.parquet")}
    assert trajectories == events and 0 < len(trajectories) < 16  # whole pairs only, some missing
    assert json.loads((location / "sweep.json").read_text())["status"] != "complete"
    assert "stopped early: No space left on device; rerun to compute the rest" in cli("show", location)[1]
    status, out, _ = cli("run", write_spec(RAW), "--out", kept, "--blocks-per-task", "1", "--no-progress")
    assert status == 0 and f"kept {len(trajectories)} complete parts" in out
    same_data(location, reference)
