"""The Gaussian family's ``kernel`` field: numpy draws exactly as before, numba draws through
sweep._fastrng from the same block stream, and the package works without numba."""

from __future__ import annotations

import numpy as np
import pytest

import sweep._numba
from sweep import _fastrng
from sweep.families.gaussian import GaussianFamily
from sweep.spec import parse_spec
from sweep.streams import BlockGenerator

SEQUENCE = np.random.SeedSequence(42, spawn_key=(3, 0))


def _family(**fields) -> GaussianFamily:
    spec = parse_spec(
        {"name": "k", "generations": 2, "replicates": 4, "family": {"name": "gaussian", **fields}, "grid": {"n": [5]}}
    )
    return GaussianFamily(spec.family_spec)


def _params(family: GaussianFamily, batch: int):
    params = family.truth(batch)
    params.mean = params.mean + np.linspace(-1, 1, batch)
    params.cov = params.cov * np.linspace(0.5, 2, batch)
    return params


def test_numpy_kernel_draws_as_before():
    """kernel numpy: the exact draw is numpy's N(0, 1) then Gamma((m - 1) / 2) of the block,
    scaled as it always was, and sample is numpy's normals: bit for bit."""
    family = _family(kernel="numpy")
    params = _params(family, 6)
    rng, ref = BlockGenerator(SEQUENCE), BlockGenerator(SEQUENCE)
    stats = family.draw(params, 10, rng=rng, temperature=0.7)
    var = params.cov * 0.7
    mean = ref.standard_normal(6) * np.sqrt(var * (1.0 / 10)) + params.mean
    scatter = ref.standard_gamma(4.5, 6) * (2.0 * var)
    np.testing.assert_array_equal(stats.mean, mean)
    np.testing.assert_array_equal(stats.scatter, scatter)
    z = ref.standard_normal((6, 7)) * np.sqrt(params.cov)[:, None] + params.mean[:, None]
    np.testing.assert_array_equal(family.sample(params, 7, rng=rng), z)
    assert rng.draws == ref.draws == 3


def test_numba_kernel_draws_from_fastrng():
    """kernel numba: the same draws of the block, from sweep._fastrng (one draw each, as numpy's)."""
    pytest.importorskip("numba")
    family = _family(kernel="numba")
    params = _params(family, 6)
    rng, ref = BlockGenerator(SEQUENCE), BlockGenerator(SEQUENCE)
    stats = family.draw(params, 10, rng=rng)
    np.testing.assert_array_equal(stats.mean, _fastrng.standard_normal(ref, 6) * np.sqrt(params.cov / 10) + params.mean)
    np.testing.assert_array_equal(stats.scatter, _fastrng.standard_gamma(ref, 4.5, 6) * (2.0 * params.cov))
    z = _fastrng.standard_normal(ref, (6, 7)) * np.sqrt(params.cov)[:, None] + params.mean[:, None]
    np.testing.assert_array_equal(family.sample(params, 7, rng=rng), z)
    assert rng.draws == ref.draws == 3
    numpy_stats = _family(kernel="numpy").draw(params, 10, rng=BlockGenerator(SEQUENCE))
    assert not np.array_equal(numpy_stats.mean, stats.mean)  # the kernels' values do differ


def test_kernel_recorded_only_when_numba():
    """to_raw writes kernel only for numba, so folders written before the field (numpy) resume;
    a spec without the field resolves auto when it is parsed."""
    pytest.importorskip("numba")
    assert "kernel" not in _family(kernel="numpy").spec.to_raw()
    assert _family(kernel="numba").spec.to_raw()["kernel"] == "numba"
    assert _family().spec.kernel == "numba"


def test_auto_without_numba_is_numpy(monkeypatch):
    """Where numba is not installed, auto (the default) is numpy and the spec does not name it."""
    monkeypatch.setattr(sweep._numba, "available", lambda: False)
    family = _family()
    assert family.spec.kernel == "numpy" and not family.compiled
    assert "kernel" not in family.spec.to_raw()
    assert _family(kernel="auto").spec.kernel == "numpy"


def test_numba_without_numba_is_a_spec_error(monkeypatch, cli, write_spec, tmp_path):
    """kernel: numba where numba is not installed: one line naming the field, exit 2, nothing written."""
    monkeypatch.setattr(sweep._numba, "available", lambda: False)
    raw = {
        "name": "k",
        "generations": 3,
        "replicates": 4,
        "family": {"name": "gaussian", "kernel": "numba"},
        "grid": {"n": [5]},
    }
    status, _, err = cli("run", write_spec(raw), "--out", tmp_path / "results")
    assert status == 2
    assert err.count("\n") == 1 and err.startswith(
        "error: spec field 'family.kernel': expected numpy, or numba installed"
    )
    assert "got numba, which is not installed" in err
    assert not (tmp_path / "results").exists()
    status, _, err = cli(
        "run", write_spec(dict(raw, family={"name": "gaussian", "kernel": "cuda"})), "--out", tmp_path / "r"
    )
    assert status == 2 and err.startswith("error: spec field 'family.kernel': expected one of auto, numpy, numba")


def test_numpy_folder_replays_with_numpy(ray_session, tmp_path):
    """A folder computed with kernel numpy (whose sweep.json, like one written before the field,
    names no kernel) replays with numpy, not with the auto default: the chain's rows are equal."""
    import pandas as pd

    import analysis
    from sweep.replay import replay_chain
    from sweep.runner import run_sweep

    spec = parse_spec(
        {
            "name": "k",
            "seed": 5,
            "generations": 6,
            "replicates": 10,
            "family": {"name": "gaussian", "kernel": "numpy"},
            "grid": {"n": [5], "policy": ["replace"]},
        }
    )
    report = run_sweep(spec, str(tmp_path), progress=False)
    replayed, _ = replay_chain(report.location, 0, 3)
    stored = analysis.load(report.location, filters=[("replicate", "=", 3)])
    pd.testing.assert_frame_equal(replayed.drop(columns="cell"), stored.drop(columns="cell"), check_like=True)


def test_block_sizes():
    """The compiled 1-D exact path takes blocks of 16384 chains; numpy's keeps 4096 (its folders
    keep their streams), and sampled or multivariate cells keep the base's rule."""
    pytest.importorskip("numba")
    from sweep.grid import cells

    def size(**fields) -> int:
        spec = parse_spec(
            {
                "name": "k",
                "generations": 2,
                "replicates": 4,
                "family": {"name": "gaussian", **fields},
                "grid": {"n": [100]},
            }
        )
        return cells(spec)[0].block_size

    assert size(kernel="numba") == 16384
    assert size(kernel="numpy") == 4096
    assert size(kernel="numba", path="sample") == size(kernel="numpy", path="sample")
    assert size(kernel="numba", dim=2) == size(kernel="numpy", dim=2)
