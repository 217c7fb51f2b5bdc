"""Shared fixtures: one real local Ray for the session, and helpers to run sweeps through the CLI."""

from __future__ import annotations

import os
import uuid

import pytest
import yaml

os.environ.setdefault("MPLBACKEND", "Agg")
# Ray 2.60 turns token authentication on for local clusters by default and keeps the token in
# ~/.ray. Pin both here, before anything starts Ray, so that every Ray process the tests start
# (embedded, `ray start`, Cluster nodes, job drivers) agrees on them whatever ~/.ray holds.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", uuid.uuid4().hex + uuid.uuid4().hex)


@pytest.fixture(scope="session")
def ray_session():
    """A real embedded Ray with 2 CPUs, shared by every test that runs a sweep."""
    import ray

    if not ray.is_initialized():
        # address="local" always starts a new Ray, as the runner does: a stale
        # /tmp/ray/ray_current_cluster from a killed `ray start` must not be joined.
        # log_to_driver=False, as the runner's embedded Ray: workers' internal log lines under load
        # ("(run_task pid=...) [mutex.cc : 452] RAW: Lock blocking") must not mix into the CLI's stderr.
        # lean_local_start: the runner's lean embedded Ray (no autoscaler or log monitor, no dashboard API
        # server, metrics off), which every test that runs a sweep then exercises.
        from sweep.cluster import lean_local_start

        with lean_local_start():
            ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING", log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def write_spec(tmp_path):
    """Write a spec mapping to a YAML file and return its path."""

    def write(raw: dict, name: str = "spec.yaml"):
        path = tmp_path / name
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return path

    return write


@pytest.fixture
def cli(capsys):
    """Run ``sweep`` in-process; return (exit status, stdout, stderr)."""
    from sweep.cli import main

    def run(*args: str):
        status = main([str(a) for a in args])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run
