"""Load (slow): 100,000 chains in over 2,000 tasks on this machine, driver memory bounded, no chain
lost or doubled, progress honest, Ray's per-task overhead a small share of the work."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from tests.raynodes import ROOT, env, kill_group


def bench():
    spec = importlib.util.spec_from_file_location("bench_load", ROOT / "bench" / "bench_load.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def noop_task_seconds() -> float:
    """bench_load's measure of Ray's cost per task, in a process of its own: it starts a Ray of its
    own, which this process cannot while the tests' session Ray is up (``RAY_ADDRESS=local`` keeps
    it from joining any other Ray on the machine)."""
    code = "import runpy, sys; print(runpy.run_path(sys.argv[1])['noop_task_seconds']())"
    process = subprocess.Popen(
        [sys.executable, "-c", code, str(ROOT / "bench" / "bench_load.py")],
        env=env(RAY_ADDRESS="local"),
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = process.communicate(timeout=300)
    finally:
        kill_group(process.pid)
    assert process.returncode == 0, err
    return float(out.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.timeout(1800)  # 2-3 minutes on an idle 2-core machine, 8 under a load average of 14
def test_hundred_thousand_chains(tmp_path):
    """Every chain once; RSS flat while thousands of tasks pass; progress ends at the total."""
    load = bench()
    figures = load.load(tmp_path)
    print("\n" + "\n".join(load.report(figures, noop_task_seconds())))
    assert figures["chains"] >= 100_000 and figures["tasks"] >= 2_000
    assert figures["unique_chains"] == figures["chains"]
    assert figures["rows_per_chain"] == 5 and figures["duplicated_rows"] == 0
    # Bounded: the driver holds a few task references per worker, never the plan's results.
    assert figures["peak_rss"] < 1024 * 2**20
    assert figures["quarter_rss"][2] < 1.2 * figures["quarter_rss"][0]
    done = [d for d, _ in figures["progress"]]
    assert done == sorted(done) and figures["progress"][-1] == (figures["chains"], figures["chains"])
    assert all(total == figures["chains"] for _, total in figures["progress"])
