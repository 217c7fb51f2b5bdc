"""GPUs: tasks that ask for none see none, and a request no node can meet is refused before anything runs."""

from __future__ import annotations

import os

import pytest

from sweep.cluster import check_gpus, largest_gpu_count
from sweep.errors import SpecError
from sweep.runner import run_sweep, task_options, worker_env
from sweep.spec import parse_spec

BASE = {
    "name": "gpus",
    "seed": 1,
    "generations": 3,
    "replicates": 4,
    "family": {"name": "gaussian"},
    "grid": {"n": [10]},
}


def _visible() -> str | None:
    return os.environ.get("CUDA_VISIBLE_DEVICES")


def test_zero_gpu_tasks_get_an_empty_device_list(ray_session):
    """A task with the runner's options (num_cpus 1, no num_gpus) runs with CUDA_VISIBLE_DEVICES set
    empty, so that on a GPU node it sees no GPU; Ray 2.60 left it unset (every GPU visible) while
    the driver set RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO=0."""
    options = task_options()
    assert "num_gpus" not in options
    assert worker_env()["RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO"] == "1"
    assert options["runtime_env"]["env_vars"]["RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO"] == "1"
    assert ray_session.get(ray_session.remote(**options)(_visible).remote()) == ""


def test_gpu_request_options():
    """resources.num_gpus reaches the task options; a zero request adds no num_gpus option."""
    spec = parse_spec({**BASE, "resources": {"num_gpus": 0.5, "num_cpus": 2}})
    assert spec.task_resources().options() == {"num_cpus": 2.0, "num_gpus": 0.5}
    assert "num_gpus" not in parse_spec({**BASE, "resources": {"num_gpus": 0}}).task_resources().options()


def test_gpu_request_on_a_cluster_without_gpus_is_refused(ray_session, tmp_path, cli, write_spec):
    """resources: {num_gpus: 1} on a Ray without GPUs: one line naming the field, exit 2, no folder
    (Ray would otherwise keep the tasks pending for ever)."""
    assert largest_gpu_count() == 0.0
    status, _, err = cli(
        "run", write_spec({**BASE, "resources": {"num_gpus": 1}}), "--out", tmp_path / "out", "--no-progress"
    )
    assert status == 2, err
    assert err == (
        "error: spec field 'resources.num_gpus': expected at most 0 GPUs per task (no node of this Ray "
        "cluster has a GPU), got 1 (asked by the spec)\n"
    )
    assert not (tmp_path / "out").exists()


def test_gpu_request_declared_by_the_family_is_refused_too(ray_session, tmp_path):
    """A family whose declared resources ask for a GPU is refused the same way, naming the family."""
    spec = parse_spec({**BASE, "family": {"name": "tests.contract_families:GPUGaussian"}})
    with pytest.raises(SpecError, match=r"got 1 \(asked by the gpu-gaussian family\)"):
        run_sweep(spec, str(tmp_path / "out"), progress=False)
    assert not (tmp_path / "out").exists()


def test_check_gpus_accepts_no_request(ray_session):
    """No GPU asked: nothing to check, whatever the cluster."""
    check_gpus(0.0, "the spec")
