"""Results do not depend on how chains are split into tasks, and any chain replays alone."""
from __future__ import annotations

import pandas as pd
import pytest

import analysis
from sweep.replay import replay_chain
from sweep.runner import run_sweep
from sweep.spec import parse_spec

SPECS = {
    "gaussian": {
        "family": {"name": "gaussian", "path": "sample", "dim": 2},
        "grid": {"n": [6, 9], "policy": ["replace", "accumulate_subsample", {"mix": {"keep": 0.5, "synthetic": 0.3, "real": 0.2}}]},
        "events": {"distance_above": [0.5]},
    },
    "gmm1d": {
        "family": {"name": "gmm1d", "weights": [0.3, 0.7], "means": [-1.0, 2.0], "sigmas": [0.5, 1.0]},
        "grid": {"n": [40], "policy": ["replace", {"mix": {"keep": 0.5, "synthetic": 0.4, "real": 0.1}}]},
    },
    "categorical": {
        "family": {"name": "categorical", "k": 12, "probs": {"zipf": 1.0}},
        "grid": {"n": [15], "policy": ["replace", "accumulate", "accumulate_subsample", {"fresh_real": 0.2}, {"mix": {"keep": 0.4, "synthetic": 0.4, "real": 0.2}}]},
        "events": {"distance_above": [0.3]},
    },
}


def make_spec(family: str):
    return parse_spec({"name": f"det-{family}", "seed": 123, "generations": 30, "replicates": 37, "block_size": 8, **SPECS[family]})


@pytest.mark.parametrize("family", sorted(SPECS))
def test_partition_independence(family, ray_session, tmp_path):
    """The same spec run as one task per block and as one task per cell gives identical tables."""
    spec = make_spec(family)
    small = run_sweep(spec, str(tmp_path / "small"), blocks_per_task=1, progress=False)
    large = run_sweep(spec, str(tmp_path / "large"), blocks_per_task=1000, progress=False)
    assert small.tasks_run == len(spec.grid.points()) * 5
    assert large.tasks_run == len(spec.grid.points())
    pd.testing.assert_frame_equal(analysis.load(small.location), analysis.load(large.location))
    pd.testing.assert_frame_equal(analysis.load_events(small.location), analysis.load_events(large.location))


@pytest.mark.parametrize("family", sorted(SPECS))
def test_replay_one_chain(family, ray_session, tmp_path):
    """Replaying one chain from the folder's seed reproduces its stored rows exactly."""
    spec = make_spec(family)
    report = run_sweep(spec, str(tmp_path), progress=False)
    cell, replicate = 1, 19
    trajectories, events = replay_chain(report.location, cell, replicate)
    stored = analysis.load(report.location, filters=[("cell", "=", cell), ("replicate", "=", replicate)])
    stored_events = analysis.load_events(report.location, filters=[("cell", "=", cell), ("replicate", "=", replicate)])
    pd.testing.assert_frame_equal(trajectories.drop(columns="cell"), stored.drop(columns="cell"), check_like=True)
    pd.testing.assert_frame_equal(
        events.sort_values(["event", "threshold", "symbol"]).reset_index(drop=True).drop(columns="cell"),
        stored_events.drop(columns="cell"), check_like=True,
    )
