"""A sweep against a real external Ray head: `run --address`, `submit`/`status`/`logs` as Ray Jobs,
one thread per task, and bad addresses, job ids and versions as one line with exit 2."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import warnings

import pandas as pd
import pytest

import analysis
from sweep.cluster import AUTH_HINT
from sweep.runner import run_sweep
from sweep.spec import parse_spec
from tests.raynodes import ROOT, env, free_port, kill_group, start_head, start_worker, sweep

RAW = {
    "name": "remote",
    "seed": 5,
    "generations": 30,
    "replicates": 32,
    "block_size": 8,
    "family": {"name": "categorical", "k": 6, "probs": "uniform"},
    "grid": {"n": [10, 20], "policy": ["replace"]},
}
NO_TOKEN = {"RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN": ""}


@pytest.fixture(scope="module")
def head():
    """A head with 1 CPU and the dashboard (the job server), stopped by its own process group."""
    head = start_head(dashboard=True, num_cpus=1)
    yield head
    head.stop()


@pytest.fixture(scope="module")
def reference(ray_session, tmp_path_factory):
    return run_sweep(parse_spec(RAW), str(tmp_path_factory.mktemp("reference")), progress=False).location


def same_data(location: str, reference: str) -> None:
    pd.testing.assert_frame_equal(analysis.load(location), analysis.load(reference))
    pd.testing.assert_frame_equal(analysis.load_events(location), analysis.load_events(reference))


def test_run_with_address(head, reference, tmp_path, write_spec):
    """`run --address HOST:PORT` computes on the external head, resumes there (`--address auto`), and
    refuses another spec."""
    spec = write_spec(RAW)
    first = sweep("run", spec, "--address", head.address, "--out", tmp_path, "--no-progress")
    assert first.returncode == 0, first.stderr
    assert "computed 64 chains" in first.stdout and "warning" not in first.stderr  # one node: no warning
    same_data(str(tmp_path / "remote"), reference)
    # `auto` takes $RAY_ADDRESS first (as inside a Ray job); it never scans for other clusters then.
    again = sweep("run", spec, "--address", "auto", "--out", tmp_path, "--no-progress", RAY_ADDRESS=head.address)
    assert again.returncode == 0 and "computed 0 chains in 0 tasks, kept 2 complete parts" in again.stdout
    other = sweep("run", spec, "--address", head.address, "--out", tmp_path, "--set", "generations=29")
    assert other.returncode == 2
    assert other.stderr == (
        f"error: results folder '{tmp_path}/remote' holds a different sweep (generations: 30 in the "
        "folder, 29 now (only a larger value continues it)); pass --overwrite to replace it, or "
        "choose another --out\n"
    )


def test_run_through_ray_client(head, reference, tmp_path, write_spec):
    """`run --address ray://HOST:PORT` (Ray Client) computes the same rows, and warns that a local path
    must be one the cluster's nodes see too."""
    result = sweep("run", write_spec(RAW), "--address", head.client, "--out", tmp_path, "--no-progress")
    if result.returncode == 2 and "Initialization failure from server" in result.stderr:
        # Ray's client proxier starts one server process per client; on a loaded 2-core machine
        # that start can fail (seen once in three full runs). It is Ray's, not ours: retry once.
        result = sweep("run", write_spec(RAW), "--address", head.client, "--out", tmp_path, "--no-progress")
    assert result.returncode == 0, result.stderr
    assert (
        f"warning: results '{tmp_path}/remote' are a local path but tasks run on a remote cluster through Ray "
        "Client: every node must see it" in result.stderr
    )
    same_data(str(tmp_path / "remote"), reference)


PROBE = """
import os, threadpoolctl
def probe():
    import numpy, threadpoolctl  # numpy loads the BLAS whose threads are counted
    return {k: os.environ.get(k) for k in WORKER_ENV}, sorted({p["num_threads"] for p in threadpoolctl.threadpool_info()})
"""


def test_tasks_run_one_thread(ray_session):
    """A task started with the runner's options (a runtime_env, on a Ray it did not start) sees one
    thread for every numeric library."""
    from sweep.runner import WORKER_ENV, task_options

    scope = {"WORKER_ENV": WORKER_ENV}
    exec(PROBE, scope)
    env, threads = ray_session.get(ray_session.remote(**task_options())(scope["probe"]).remote())
    assert env == {k: "1" for k in WORKER_ENV} and "OMP_NUM_THREADS" in env and threads == [1]


@pytest.fixture(scope="module")
def embedded():
    """One driver that starts an embedded Ray as the runner does, runs a probe task, and reports
    the processes Ray started (command lines, and the raylet's environment) and those left after
    ``ray.shutdown``."""
    code = (
        PROBE
        + """
import json, psutil, ray
from sweep.cluster import LEAN_ENV, connect
from sweep.runner import WORKER_ENV, task_options, worker_env
before = {k: os.environ.get(k) for k in {**WORKER_ENV, **LEAN_ENV}}
connect(None, 1, worker_env())
task = ray.get(ray.remote(**task_options(runtime_env=False))(probe).remote())
started = psutil.Process().children(recursive=True)
raylet = next(p for p in started if p.name() == "raylet")
processes = [" ".join(p.cmdline()) for p in started]
raylet_env = {k: raylet.environ().get(k) for k in LEAN_ENV}
ray.shutdown()
left = [p.pid for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
print(json.dumps([task, before == {k: os.environ.get(k) for k in before}, processes, raylet_env, left]))
"""
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env(OPENBLAS_NUM_THREADS=""),
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_embedded_workers_run_one_thread(embedded):
    """An embedded Ray's workers start with one thread each (no runtime_env needed), and the
    driver's own environment is left as it was."""
    (task_env, threads), restored, *_ = embedded
    assert set(task_env.values()) == {"1"} and threads == [1] and restored


def test_embedded_ray_starts_lean_and_leaves_nothing(embedded):
    """An embedded Ray starts without the autoscaler monitor, the log monitor and the dashboard's
    API server, with its dashboard agent on a free port (not 52365, which another Ray here may hold) and metrics
    collection off, still with its raylet, GCS and both agents; nothing it started outlives
    ``ray.shutdown``."""
    _, _, processes, raylet_env, left = embedded
    joined = "\n".join(processes)
    assert "autoscaler/_private/monitor.py" not in joined and "log_monitor.py" not in joined
    assert "dashboard/dashboard.py" not in joined
    raylet = next(p for p in processes if "/raylet/raylet " in p)
    assert "--listen-port=0 " in raylet and "--listen-port=52365" not in raylet
    assert "gcs_server" in joined and "dashboard/agent.py" in raylet and "runtime_env/agent/main.py" in raylet
    assert raylet_env == {"RAY_enable_metrics_collection": "0"}
    assert left == []


def test_lean_start_sets_ray_parameters_only_inside(monkeypatch):
    """Inside lean_local_start, Ray's node parameters default to the lean ones (an explicit
    argument still wins), its node class is the lean one, and its processes' environment has
    LEAN_ENV and the given variables; on leaving, all are as they were, a variable the caller had
    set included."""
    from ray._private import node, parameter

    from sweep.cluster import LEAN_ENV, LEAN_PARAMS, lean_local_start

    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.delenv("RAY_enable_metrics_collection", raising=False)
    before, node_before = parameter.RayParams, node.Node
    with lean_local_start({"OMP_NUM_THREADS": "1"}):
        lean, explicit = parameter.RayParams(), parameter.RayParams(no_monitor=False)
        lean_node = node.Node
        inside = {k: os.environ.get(k) for k in [*LEAN_ENV, "OMP_NUM_THREADS"]}
    assert {k: getattr(lean, k) for k in LEAN_PARAMS} == LEAN_PARAMS and explicit.no_monitor is False
    assert issubclass(lean_node, node_before) and lean_node is not node_before
    assert inside == {**LEAN_ENV, "OMP_NUM_THREADS": "1"}
    assert parameter.RayParams is before and before().no_monitor is False and node.Node is node_before
    assert os.environ["OMP_NUM_THREADS"] == "7" and "RAY_enable_metrics_collection" not in os.environ


def test_lean_start_leaves_another_ray_alone(monkeypatch):
    """A Ray whose node parameters lack one of LEAN_PARAMS, or whose node starts its API server
    without an include_dashboard argument, keeps its own classes (ray.init then starts
    everything, as before); the environment is still set inside and restored after, and a
    metrics setting the caller chose is kept."""
    from ray._private import node, parameter

    from sweep.cluster import lean_local_start

    class OtherRayParams:
        def __init__(self, include_log_monitor=None, dashboard_agent_listen_port=52365):
            self.include_log_monitor = include_log_monitor

    class OtherNode:
        def start_api_server(self, *, dashboard: bool):
            pass

    monkeypatch.setattr(parameter, "RayParams", OtherRayParams)
    monkeypatch.setattr(node, "Node", OtherNode)
    monkeypatch.setenv("RAY_enable_metrics_collection", "1")
    with lean_local_start():
        assert parameter.RayParams is OtherRayParams and parameter.RayParams().include_log_monitor is None
        assert node.Node is OtherNode
        assert os.environ["RAY_enable_metrics_collection"] == "1"
    assert os.environ["RAY_enable_metrics_collection"] == "1"


def project(tmp_path, raw: dict):
    """A researcher's working folder: the package source and a spec, as `submit` ships it."""
    folder = tmp_path / "project"
    for package in ("sweep", "analysis"):
        shutil.copytree(ROOT / package, folder / package, ignore=shutil.ignore_patterns("__pycache__"))
    import yaml

    (folder / "spec.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return folder


def test_submit_follows_the_job(head, reference, tmp_path, cli):
    """submit ships the folder, follows the logs to the end, exits 0 with the results in --out."""
    folder, out = project(tmp_path, RAW), tmp_path / "out"
    status, stdout, err = cli(
        "submit", folder / "spec.yaml", "--address", head.dashboard, "--out", out, "--working-dir", folder
    )
    assert status == 0, stdout + err
    assert "remote: 2 cells x 32 replicates = 64 chains; computed 64 chains in" in stdout
    assert err.startswith("submitted raysubmit_")
    same_data(str(out / "remote"), reference)


def test_failed_job_no_wait_status_logs(head, tmp_path, cli):
    """--no-wait prints the id; status says FAILED; logs --follow prints the job's error and exits with
    the driver's status (2: its results folder holds another sweep)."""
    folder, out = project(tmp_path, RAW), tmp_path / "out"
    (out / "remote").mkdir(parents=True)
    (out / "remote" / "notes.txt").write_text("not a sweep")
    status, stdout, _ = cli(
        "submit", folder / "spec.yaml", "--address", head.dashboard, "--out", out, "--working-dir", folder, "--no-wait"
    )
    job = stdout.strip()
    assert status == 0 and job.startswith("raysubmit_")
    status, stdout, err = cli("logs", job, "--address", head.dashboard, "--follow")
    assert status == 2
    assert f"error: results folder '{out}/remote': expected an empty folder or one written by 'sweep run'" in stdout
    assert err.startswith(f"job {job} FAILED: ")
    status, stdout, _ = cli("status", job, "--address", head.dashboard)
    assert status == 0 and stdout.startswith(f"{job}: FAILED")
    status, stdout, _ = cli("logs", job, "--address", head.dashboard)
    assert status == 0 and "expected an empty folder" in stdout


def test_job_errors(head, tmp_path, cli, write_spec):
    """A job id that does not exist, a silent job server, a relative --out, a spec outside the shipped folder."""
    status, _, err = cli("status", "raysubmit_nosuchjob", "--address", head.dashboard)
    assert status == 2 and err == (
        f"error: job 'raysubmit_nosuchjob': expected a job id of the cluster at "
        f"{head.dashboard} (see 'ray job list'), got none such\n"
    )
    status, _, err = cli("logs", "raysubmit_nosuchjob", "--address", head.dashboard)
    assert status == 2 and "expected a job id of the cluster" in err
    silent = f"http://127.0.0.1:{free_port()}"
    status, _, err = cli("status", "raysubmit_x", "--address", silent)
    assert (
        status == 2
        and err.startswith(f"error: --address '{silent}': expected a Ray job server")
        and err.count("\n") == 1
    )
    spec = write_spec(RAW)
    status, _, err = cli("submit", spec, "--address", head.dashboard, "--out", "results", "--working-dir", tmp_path)
    assert status == 2 and err.startswith("error: --out: expected an absolute path every node sees")
    status, _, err = cli("submit", spec, "--address", head.dashboard, "--out", tmp_path, "--working-dir", ROOT)
    assert status == 2 and err.startswith(f"error: spec file '{spec}': expected a file inside --working-dir")
    status, _, err = cli("status", "raysubmit_x", "--address", "ray://127.0.0.1:10001")
    assert status == 2 and "expected the head's job server http://HEAD:8265" in err


def token_home(tmp_path, token: str | None) -> dict[str, str]:
    """A home folder whose ~/.ray/auth_token holds ``token`` (none if None), as `ray start` leaves on a head."""
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True, exist_ok=True)
    if token is not None:
        (home / ".ray" / "auth_token").write_text(token + "\n")
    return {"HOME": str(home), "RAY_AUTH_TOKEN_PATH": ""}


def test_missing_token(head, write_spec, tmp_path):
    """Without the cluster's token anywhere, run and status say how to provide it (instead of retrying
    for long)."""
    run = sweep(
        "run", write_spec(RAW), "--address", head.address, "--out", tmp_path, **NO_TOKEN, **token_home(tmp_path, None)
    )
    assert run.returncode == 2
    assert run.stderr.startswith(
        f"error: --address '{head.address}': the cluster requires token authentication; set RAY_AUTH_MODE=token"
    )
    assert not (tmp_path / "remote").exists()
    status = sweep("status", "raysubmit_x", "--address", head.dashboard, **NO_TOKEN, **token_home(tmp_path, None))
    assert status.returncode == 2
    assert status.stderr.startswith(f"error: --address '{head.dashboard}': the cluster requires token authentication")


def test_local_token_file_is_used_by_job_commands(head, tmp_path):
    """On a head machine, with the token only in ~/.ray/auth_token and RAY_AUTH_MODE unset, the job
    commands (status here) use that token, say so in one warning line, and reach the job server."""
    home = token_home(tmp_path, os.environ["RAY_AUTH_TOKEN"])
    status = sweep("status", "raysubmit_nosuchjob", "--address", head.dashboard, **NO_TOKEN, **home)
    assert status.returncode == 2
    assert status.stderr.splitlines() == [  # authenticated: the job server itself answers
        f"warning: the cluster at {head.dashboard} requires token authentication; using the token in "
        f"{home['HOME']}/.ray/auth_token",
        f"error: job 'raysubmit_nosuchjob': expected a job id of the cluster at {head.dashboard} (see 'ray job "
        "list'), got none such",
    ]


@pytest.mark.slow
def test_local_token_file_is_used_by_run_and_a_wrong_one_refused(head, reference, write_spec, tmp_path):
    """`run --address HOST:PORT` with the token only in ~/.ray/auth_token computes the sweep and says
    which token it used; a wrong token is refused in one line, by run and by the job commands."""
    home = token_home(tmp_path, os.environ["RAY_AUTH_TOKEN"])
    run = sweep(
        "run", write_spec(RAW), "--address", head.address, "--out", tmp_path, "--no-progress", **NO_TOKEN, **home
    )
    assert run.returncode == 0, run.stderr
    assert run.stderr.splitlines()[0] == (
        f"warning: the cluster at {head.address} requires token authentication; "
        f"using the token in {home['HOME']}/.ray/auth_token"
    )
    same_data(str(tmp_path / "remote"), reference)
    wrong = token_home(tmp_path, "0" * 32)
    for command, address in (("status", head.dashboard), ("run", head.address)):
        args = ("raysubmit_x",) if command == "status" else (write_spec(RAW), "--out", tmp_path / "other")
        result = sweep(command, *args, "--address", address, **NO_TOKEN, **wrong)
        assert result.returncode == 2
        assert result.stderr == (
            f"error: --address '{address}': the cluster refused the token in "
            f"{wrong['HOME']}/.ray/auth_token; {AUTH_HINT}\n"
        )


@pytest.mark.slow
def test_relative_out_is_the_drivers_folder(head, reference, tmp_path, write_spec):
    """`run --address auto --out results` in a folder other than the one the head was started in: the
    results land in the driver's folder (tasks get an absolute path), not in the workers' one."""
    here = tmp_path / "here"
    here.mkdir()
    result = sweep(
        "run",
        write_spec(RAW),
        "--address",
        "auto",
        "--out",
        "results",
        "--no-progress",
        cwd=here,
        RAY_ADDRESS=head.address,
    )
    assert result.returncode == 0, result.stderr
    assert f"results: {here}/results/remote" in result.stdout
    same_data(str(here / "results" / "remote"), reference)


def test_not_shared_warning_is_a_python_warning(ray_session):
    """From Python, the local-path-on-a-cluster warning is a SweepWarning one can catch or filter;
    one node with a local path, or an object store, warns nothing."""
    from sweep.cluster import warn_if_not_shared
    from sweep.errors import SweepWarning

    with pytest.warns(SweepWarning, match="are a local path but tasks run on a remote cluster through Ray Client"):
        warn_if_not_shared("/data/results", True, "ray://head:10001")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_not_shared("/data/results", True, None)
        warn_if_not_shared("s3://bucket/results", False, "ray://head:10001")


def test_bad_run_addresses(ray_session, write_spec, tmp_path, cli):
    """Nothing listening (GCS or Ray Client port), a dashboard URL, a malformed address: one line each,
    exit 2, nothing written."""
    spec = write_spec(RAW)
    port = free_port()
    started = time.monotonic()
    silent = sweep("run", spec, "--address", f"127.0.0.1:{port}", "--out", tmp_path)
    assert silent.returncode == 2 and time.monotonic() - started < 30
    assert silent.stderr.startswith(
        f"error: --address '127.0.0.1:{port}': expected a running Ray head there, got no answer"
    )
    assert silent.stderr.count("\n") == 1
    client = sweep("run", spec, "--address", f"ray://127.0.0.1:{port}", "--out", tmp_path)
    assert client.returncode == 2 and client.stderr.startswith(
        f"error: --address 'ray://127.0.0.1:{port}': expected a Ray Client server there (the head's port 10001 by "
        "default), got no answer (Connection refused)"
    )
    status, _, err = cli("run", spec, "--address", "http://127.0.0.1:8265", "--out", tmp_path)
    assert status == 2 and "got the dashboard's http address; use it with 'sweep submit'" in err
    status, _, err = cli("run", spec, "--address", "nohost", "--out", tmp_path)
    assert status == 2 and err == "error: --address: expected auto, HOST:PORT or ray://HOST:PORT, got 'nohost'\n"
    assert not (tmp_path / "remote").exists()


def test_ray_version_mismatch(head, write_spec, tmp_path):
    """A driver whose Ray version differs from the cluster's: one line naming both, exit 2, nothing written.

    The driver process reports Ray 2.0.0 (its ``ray.__version__`` is set before Ray connects), so
    Ray's own check against the version the head stored fails, as with a second Ray install."""
    import ray

    result = sweep("run", write_spec(RAW), "--address", head.address, "--out", tmp_path, ray_version="2.0.0")
    assert result.returncode == 2
    assert result.stderr.startswith(
        f"error: --address '{head.address}': expected a cluster running Ray 2.0.0 with Python "
    )
    assert f"got Ray {ray.__version__} with Python" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "remote").exists()


@pytest.mark.slow
def test_output_not_shared_between_nodes(write_spec, tmp_path):
    """A worker node whose disk the driver cannot see (its own tmpfs over --out): the run warns, then
    stops with an error saying the output must be shared storage, instead of recomputing forever."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode:
        pytest.skip("cannot create a user and mount namespace here (unshare -rm) for a node with a private disk")
    out = tmp_path / "out"
    out.mkdir()
    head = start_head(num_cpus=0)
    worker = None
    try:
        worker = start_worker(head, private_dir=out)
        result = sweep("run", write_spec(RAW), "--address", head.address, "--out", out, "--no-progress")
    finally:
        if worker is not None:
            kill_group(worker)
        head.stop()
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert lines[0] == (
        f"warning: results '{out}/remote' are a local path but tasks run on 2 nodes: every node must "
        "see it (a shared filesystem), or use an object-store URI such as s3://bucket/results"
    )
    assert lines[-1] == (
        f"error: results '{out}/remote': 64 chains that tasks reported written are not there; the "
        "output location must be storage every node and this driver see (a shared filesystem, or s3://...)"
    )
    assert not (out / "remote" / "trajectories").exists()
