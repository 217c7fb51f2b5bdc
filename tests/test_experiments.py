"""The specs that ship are valid, and the quickstart runs exactly as the README says."""
from __future__ import annotations

from pathlib import Path

import pytest

import analysis
from sweep.spec import load_spec

EXPERIMENTS = sorted(Path(__file__).resolve().parents[1].joinpath("experiments").glob("*.yaml"))


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_shipped_spec_is_valid(path):
    """Every shipped spec validates."""
    assert load_spec(path).name == path.stem


def test_quickstart_runs(ray_session, tmp_path, cli):
    """The README's quickstart sweep runs, prints where its results are, and loads into pandas."""
    status, out, _ = cli("run", EXPERIMENTS[0].parent / "quickstart.yaml", "--out", tmp_path, "--no-progress")
    assert status == 0
    assert f"results: {tmp_path}/quickstart" in out and "analysis.load(" in out
    frame = analysis.load(tmp_path / "quickstart", filters=[("generation", "=", 300)])
    assert len(frame) == 6 * 500
    medians = frame.groupby(["n", "policy"])["spread_ratio"].median()
    assert medians[(10, "replace")] < 0.01 < medians[(10, "fresh_real(0.1)")]
