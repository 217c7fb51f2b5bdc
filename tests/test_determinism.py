"""Results do not depend on how chains are split into tasks, and any chain replays alone."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pytest

import analysis
from sweep.replay import replay_chain
from sweep.runner import run_sweep
from sweep.spec import parse_spec

SPECS = {
    "gaussian": {
        "family": {"name": "gaussian", "path": "sample", "dim": 2},
        "grid": {
            "n": [6, 9],
            "policy": ["replace", "accumulate_subsample", {"mix": {"keep": 0.5, "synthetic": 0.3, "real": 0.2}}],
        },
        "events": {"distance_above": [0.5]},
    },
    "gmm1d": {
        "family": {"name": "gmm1d", "weights": [0.3, 0.7], "means": [-1.0, 2.0], "sigmas": [0.5, 1.0]},
        "grid": {"n": [40], "policy": ["replace", {"mix": {"keep": 0.5, "synthetic": 0.4, "real": 0.1}}]},
    },
    "categorical": {
        "family": {"name": "categorical", "k": 12, "probs": {"zipf": 1.0}},
        "grid": {
            "n": [15],
            "policy": [
                "replace",
                "accumulate",
                "accumulate_subsample",
                {"fresh_real": 0.2},
                {"mix": {"keep": 0.4, "synthetic": 0.4, "real": 0.2}},
            ],
        },
        "events": {"distance_above": [0.3]},
    },
}


def make_spec(family: str):
    return parse_spec(
        {"name": f"det-{family}", "seed": 123, "generations": 30, "replicates": 37, "block_size": 8, **SPECS[family]}
    )


@pytest.mark.parametrize("family", sorted(SPECS))
def test_partition_independence(family, ray_session, tmp_path):
    """The same spec run as one task per block and as one task per cell gives identical tables."""
    spec = make_spec(family)
    small = run_sweep(spec, str(tmp_path / "small"), blocks_per_task=1, progress=False)
    large = run_sweep(spec, str(tmp_path / "large"), blocks_per_task=1000, progress=False)
    assert small.tasks_run == len(spec.grid.points) * 5
    assert large.tasks_run == len(spec.grid.points)
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
        stored_events.drop(columns="cell"),
        check_like=True,
    )


def test_replay_command_checks_and_saves(ray_session, tmp_path, cli):
    """`sweep replay --check --out` prints the chain, finds it identical to the stored rows and
    saves exactly those rows; after a stored value is altered, --check reports it and exits 1."""
    import pyarrow.parquet as pq

    report = run_sweep(make_spec("gmm1d"), str(tmp_path), progress=False)
    saved = tmp_path / "chain.parquet"
    status, out, err = cli("replay", report.location, "--cell", 1, "--replicate", 19, "--check", "--out", saved)
    assert status == 0, err
    assert "replicate 19: 31 recorded generations" in out and "identical to the stored rows" in out
    stored = analysis.load(report.location, filters=[("cell", "=", 1), ("replicate", "=", 19)])
    pd.testing.assert_frame_equal(
        pd.read_parquet(saved).drop(columns="cell"), stored.drop(columns="cell"), check_like=True
    )

    # alter one stored value of that chain: the check must notice
    part = next(
        p
        for p in (tmp_path / report.location).rglob("*.parquet")
        if "trajectories" in str(p)
        and "cell=1" in str(p)
        and 19 in pq.read_table(p, columns=["replicate"]).column("replicate").to_pylist()
    )
    table = pq.read_table(part)
    w2 = table.column("w2").to_numpy().copy()
    w2[table.column("replicate").to_numpy() == 19] += 1e-9
    pq.write_table(table.set_column(table.schema.get_field_index("w2"), "w2", pa.array(w2)), part)
    status, _, err = cli("replay", report.location, "--cell", 1, "--replicate", 19, "--check")
    assert status == 1 and "differs from the stored rows: trajectories" in err and "w2" in err


def test_replay_command_bad_input(ray_session, tmp_path, cli):
    """A cell or replicate out of range, or an --out of unknown type: one line, exit 2."""
    report = run_sweep(make_spec("categorical"), str(tmp_path), progress=False)
    status, _, err = cli("replay", report.location, "--cell", 5, "--replicate", 0)
    assert status == 2 and "expected cell in [0, 4] and replicate in [0, 36], got cell 5" in err
    status, _, err = cli("replay", report.location, "--cell", 0, "--replicate", 0, "--out", tmp_path / "x.txt")
    assert status == 2 and "--out: expected a file name ending in .csv or .parquet" in err
    assert not (tmp_path / "x.txt").exists()
