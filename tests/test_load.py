"""Load (slow): 100,000 chains in over 2,000 tasks on this machine, driver memory bounded, no chain
lost or doubled, progress honest, Ray's per-task overhead a small share of the work."""

from __future__ import annotations

import importlib.util

import pytest

from tests.raynodes import ROOT


def bench():
    spec = importlib.util.spec_from_file_location("bench_load", ROOT / "bench" / "bench_load.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_hundred_thousand_chains(tmp_path):
    """Every chain once; RSS flat while thousands of tasks pass; progress ends at the total."""
    load = bench()
    figures = load.load(tmp_path)
    print("\n" + "\n".join(load.report(figures, load.noop_task_seconds())))
    assert figures["chains"] >= 100_000 and figures["tasks"] >= 2_000
    assert figures["unique_chains"] == figures["chains"]
    assert figures["rows_per_chain"] == 5 and figures["duplicated_rows"] == 0
    # Bounded: the driver holds a few task references per worker, never the plan's results.
    assert figures["peak_rss"] < 1024 * 2**20
    assert figures["quarter_rss"][2] < 1.2 * figures["quarter_rss"][0]
    done = [d for d, _ in figures["progress"]]
    assert done == sorted(done) and figures["progress"][-1] == (figures["chains"], figures["chains"])
    assert all(total == figures["chains"] for _, total in figures["progress"])
