"""A search survives its driver's SIGKILL: the rerun keeps every stored part and finished trial,
finishes the trial cut short, computes nothing twice; a spent budget prints without computing."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sweep.search import parse_search_spec, run_search
from tests.raynodes import env, kill_group, sweep_command

#: 6 trials of 64 chains in blocks of 8, about 4 tasks per trial at one CPU.
RAW = {
    "name": "resumed",
    "seed": 3,
    "generations": 2000,
    "block_size": 8,
    "family": {"name": "gaussian", "path": "exact"},
    "grid": {"n": [300]},
    "events": {"spread_below": [0.5]},
    "record": {"every": 500},
    "search": {
        "parameters": {"policy.fresh_real": {"low": 0.0, "high": 0.05}},
        "objectives": {"collapse_probability": {"event": "spread_below", "threshold": 0.5, "target": 0.2}},
        "trials": 6,
        "replicates": 64,
        "parallel": 1,
    },
}


def parts(location: Path) -> dict[str, tuple[int, int]]:
    """Every trajectory part: (inode, mtime) by name."""
    return {
        str(p.relative_to(location)): (p.stat().st_ino, p.stat().st_mtime_ns)
        for p in sorted(location.glob("trajectories/*/part-*.parquet"))
    }


def test_a_larger_budget_continues_and_a_spent_one_computes_nothing(ray_session, tmp_path, cli, write_spec):
    """--trials 5 after 3: the three finished trials and their parts are kept, two trials are
    added; rerunning with the budget spent prints the result and computes nothing."""
    raw = {**RAW, "generations": 200, "record": {"every": 100}}
    spec = write_spec(raw)
    first = run_search(parse_search_spec(raw), str(tmp_path), trials=3, progress=False)
    location = Path(first.location)
    kept = parts(location)
    assert first.summary["trials_done"] == 3 and first.chains_run == 64 * first.summary["cells"]
    status, out, err = cli("search", spec, "--out", tmp_path, "--trials", "5", "--no-progress")
    assert status == 0, err
    summary = json.loads((location / "search.json").read_text())
    assert summary["trials_done"] == 5 and summary["budget"] == 5
    after = parts(location)
    assert all(after[name] == kept[name] for name in kept)
    new_cells = summary["cells"] - first.summary["cells"]
    assert f"computed {64 * new_cells} chains" in out
    status, out, err = cli("search", spec, "--out", tmp_path, "--trials", "5", "--no-progress")
    assert status == 0 and "the budget of 5 trials is spent; nothing computed" in out
    assert "5 of 5 trials done" in out and parts(location) == after


@pytest.mark.slow
def test_resume_after_driver_sigkill(ray_session, tmp_path, write_spec, cli):
    """Kill the driver mid-search, rerun: kept parts untouched, only the missing chains computed,
    every trial told once; a third run with the budget spent prints the result and computes nothing."""
    spec, location = write_spec(RAW), tmp_path / "resumed"
    driver = subprocess.Popen(
        sweep_command("search", spec, "--out", tmp_path, "--num-cpus", "1", "--no-progress"),
        env=env(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 180
        while len(parts(location)) < 6 and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)  # inside a task, or between trials
        assert driver.poll() is None, "the search ended before it could be killed"
        driver.kill()
        driver.wait()
    finally:
        time.sleep(1.0)
        kill_group(driver.pid)  # what the killed driver's embedded Ray left
    kept = parts(location)
    assert 6 <= len(kept) < 6 * 4
    recorded = 5  # generations 0, 500, ..., 2000
    kept_chains = sum(pq.read_metadata(location / name).num_rows for name in kept) // recorded

    report = run_search(parse_search_spec(RAW), str(tmp_path), progress=False)
    summary = report.summary
    assert report.computed and not report.failures
    assert summary["trials_done"] == 6
    complete = [t for t in summary["trials"] if t["state"] == "COMPLETE"]
    assert len(complete) == 6 and all(t["chains"] == 64 for t in complete)
    # nothing lost or computed twice: the kept parts are the very same files, and the rerun
    # computed exactly the chains they did not hold
    after = parts(location)
    assert all(after[name] == kept[name] for name in kept)
    assert report.chains_run + kept_chains == summary["chains"] == 64 * summary["cells"]
    journal_told = [t for t in summary["trials"] if t["state"] in ("COMPLETE", "FAIL")]
    assert len({t["trial"] for t in journal_told}) == len(journal_told)

    status, out, err = cli("search", spec, "--out", tmp_path, "--no-progress")
    assert status == 0, err
    assert "the budget of 6 trials is spent; nothing computed" in out
    assert "boundary: policy.fresh_real = " in out or "boundary of policy.fresh_real" in out
    assert parts(location) == after
    assert json.loads((location / "search.json").read_text())["trials_done"] == 6
