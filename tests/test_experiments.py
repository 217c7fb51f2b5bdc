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
    frame = analysis.load(tmp_path / "quickstart", filters=[("generation", "=", 1000)])
    assert len(frame) == 6 * 500
    medians = frame.groupby(["n", "policy"])["spread_ratio"].median()
    assert medians[(10, "replace")] < 0.01 < medians[(10, "fresh_real(0.1)")]


def test_report_command(ray_session, tmp_path, cli, write_spec):
    """sweep report writes report.md and PNG figures for a small sweep, and says where."""
    spec = write_spec(
        {
            "name": "small",
            "seed": 3,
            "generations": 60,
            "replicates": 60,
            "family": {"name": "gaussian"},
            "grid": {"n": [5, 10], "policy": ["replace", {"fresh_real": 0.2}]},
            "events": {"spread_below": [0.5]},
        }
    )
    assert cli("run", spec, "--out", tmp_path, "--no-progress")[0] == 0
    status, out, _ = cli("report", tmp_path / "small", "--bootstrap", "50")
    assert status == 0 and f"wrote {tmp_path}/small/report/report.md" in out
    text = (tmp_path / "small" / "report" / "report.md").read_text()
    assert "| n=5, replace |" in text
    assert len(list((tmp_path / "small" / "report" / "figures").glob("*.png"))) >= 4


@pytest.mark.parametrize("kind", ["empty", "foreign"])
def test_report_refuses_non_results(kind, tmp_path, cli):
    """sweep report on an empty or foreign folder is one line on stderr with exit 2."""
    folder = tmp_path / "x"
    folder.mkdir()
    if kind == "foreign":
        (folder / "notes.txt").write_text("hello")
    status, _, err = cli("report", folder)
    assert status == 2 and err.startswith("error: results folder") and err.count("\n") == 1
