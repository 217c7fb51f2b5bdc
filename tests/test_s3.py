"""Results on object storage (``--out s3://...``), end to end against an S3-compatible server on
127.0.0.1 (moto) through pyarrow's S3FileSystem: a sweep, its resume, then
``analysis.load``, ``sweep show``, ``sweep report --out`` and ``sweep replay`` on the bucket. The
driver killed with SIGKILL and rerun costs two Ray starts, so it is a slow test; by default a rerun
that only the driver does (clean-up of what a killed run leaves) stands in for it.

The drivers run as subprocesses with an embedded Ray, whose workers inherit the driver's environment:
the parts are written by the workers, so the access key travels that way (the server refuses requests
without it); the endpoint travels in the URI itself. All S3 traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import random
import subprocess
import time

import pandas as pd
import pyarrow.fs as pafs
import pytest
import yaml

import analysis
from sweep.runner import run_sweep
from sweep.spec import parse_spec
from sweep.store import Store, join_location, parse_part_name
from tests.raynodes import env, kill_group, names, sweep, sweep_command
from tests.s3server import S3Server, s3_server

#: 2 cells x 6 blocks of 8 chains; with 2 blocks per task, 6 tasks of about 0.3 s each on one core.
RAW = {
    "name": "s3sweep",
    "seed": 11,
    "generations": 600,
    "replicates": 48,
    "block_size": 8,
    "family": {"name": "gaussian", "dim": 1, "path": "sample"},
    "grid": {"n": [200, 800], "policy": ["replace"]},
    "events": {"spread_below": [0.5], "distance_above": [1.0]},
    "record": {"every": 20},
}
TASKS, CHAINS_PER_TASK = 6, 16
AGENTS = {"ray::DashboardAgent", "ray::RuntimeEnvAgent"}


@pytest.fixture(scope="module")
def s3():
    """The server, and its access key in this process's environment, for this module only."""
    with s3_server() as server, pytest.MonkeyPatch.context() as patch:
        for key, value in server.env.items():
            patch.setenv(key, value)
        yield server


@pytest.fixture(scope="module")
def reference(ray_session, tmp_path_factory):
    """A clean run of the spec on a local folder: what the bucket must hold, row for row."""
    report = run_sweep(parse_spec(RAW), str(tmp_path_factory.mktemp("reference")), blocks_per_task=2, progress=False)
    assert report.tasks_run == TASKS and not report.failures
    return report.location


def parts(s3: S3Server, path: str) -> list[str]:
    """Complete trajectories parts under ``path`` in the bucket (temporary objects left out)."""
    return [p for p in s3.files(f"{path}/trajectories") if parse_part_name(p.rsplit("/", 1)[-1])]


def run_args(spec, s3: S3Server, prefix: str) -> tuple:
    return ("run", spec, "--out", s3.uri(prefix), "--num-cpus", "1", "--blocks-per-task", "2", "--no-progress")


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "s3sweep.yaml"
    path.write_text(yaml.safe_dump(RAW))
    return path


@pytest.fixture(scope="module")
def swept(s3, spec_file):
    """The sweep run into the bucket by ``sweep run`` in a process of its own (its embedded Ray's workers
    write the parts); returns the results folder's URI."""
    result = sweep(*run_args(spec_file, s3, "results"), **s3.env)
    assert result.returncode == 0, result.stderr
    assert f"computed 96 chains in {TASKS} tasks" in result.stdout
    location = s3.uri("results/s3sweep")
    assert f"results: {location}" in result.stdout
    return location


def same_data(location: str, reference: str) -> None:
    pd.testing.assert_frame_equal(analysis.load(location), analysis.load(reference))
    pd.testing.assert_frame_equal(analysis.load_events(location), analysis.load_events(reference))


def test_run_into_the_bucket_equals_a_clean_local_run(swept, reference, s3):
    """The bucket holds every part, each block's final state (to extend the horizon later) and nothing
    else, sweep.json says complete, and the rows are those of the same spec run on a local folder, exactly."""
    files = [f for f in s3.files("results/s3sweep") if not f.startswith("state/final/")]
    assert files == sorted(
        ["sweep.json"]
        + [f"{kind}/{part}" for kind in ("events", "trajectories") for part in parts(s3, "results/s3sweep")]
    )
    assert any(f.startswith("state/final/cell=0/block-") for f in s3.files("results/s3sweep"))
    assert len(parts(s3, "results/s3sweep")) == TASKS
    assert analysis.read_metadata(swept)["status"] == "complete"
    same_data(swept, reference)


def test_resume_cleans_the_bucket(swept, reference, s3, spec_file, cli, ray_session):
    """Rerunning on the complete bucket computes nothing and removes what a killed run can leave there: a
    temporary object and a part of no planned range; the rows stay the same. (The driver alone touches
    the bucket here, so this runs in-process; the slow test below kills a real driver.)"""
    folder = f"{s3.bucket}/results/s3sweep"
    stray = [
        f"{folder}/trajectories/cell=0/.part-c00000-b0000000-0000002.parquet.tmp-0123abcd",
        f"{folder}/events/cell=1/part-c00001-b0000006-0000008.parquet",
    ]
    for path in stray:
        with s3.fs.open_output_stream(path) as stream:
            stream.write(b"half a part")
    status, out, err = cli(*run_args(spec_file, s3, "results"))
    assert status == 0, err
    assert "computed 0 chains in 0 tasks, kept 6 complete parts, removed 2 damaged or partial files" in out
    assert all(s3.fs.get_file_info(p).type == pafs.FileType.NotFound for p in stray)
    assert len([f for f in s3.files("results/s3sweep") if not f.startswith("state/")]) == 1 + 2 * TASKS
    same_data(swept, reference)


@pytest.mark.slow
def test_driver_killed_then_rerun_on_the_bucket(s3, spec_file, reference):
    """SIGKILL a `sweep run` driver writing to the bucket once some parts exist, then rerun the same command:
    only the missing chains are computed, nothing temporary or orphaned is left, and the rows are the
    clean run's."""
    args = run_args(spec_file, s3, "killed")
    driver = subprocess.Popen(
        sweep_command(*args),
        env=env(**s3.env),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not parts(s3, "killed/s3sweep") and driver.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(random.Random(11).uniform(0.0, 0.3))  # somewhere inside the next task
        assert driver.poll() is None, "the driver ended before it could be killed"
        driver.kill()  # the driver alone: its embedded Ray and its workers die with it
        driver.wait()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not names(driver.pid) <= AGENTS:
            time.sleep(0.2)
        assert names(driver.pid) <= AGENTS  # no worker is left that could still write a part
    finally:
        kill_group(driver.pid)
    location = s3.uri("killed/s3sweep")
    assert analysis.read_metadata(location)["status"] == "running"  # the killed run did not finish
    kept = len(parts(s3, "killed/s3sweep"))
    assert 1 <= kept < TASKS
    final = sweep(*args, **s3.env)
    assert final.returncode == 0, final.stderr
    assert (
        f"computed {CHAINS_PER_TASK * (TASKS - kept)} chains in {TASKS - kept} tasks, kept {kept} complete parts"
        in final.stdout
    ), final.stdout
    kept = [f for f in s3.files("killed/s3sweep") if not f.startswith("state/")]
    assert len(kept) == 1 + 2 * TASKS  # sweep.json and the parts: nothing left over
    assert analysis.read_metadata(location)["status"] == "complete"
    same_data(location, reference)


def test_the_server_refuses_other_keys(swept, s3, monkeypatch):
    """Negative control: the server serves only its key's signed requests, so the parts above were written
    by workers that inherited the driver's key (without it pyarrow would have gone unsigned)."""
    assert analysis.read_metadata(swept)["status"] == "complete"  # with the key
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(OSError, match="ACCESS_DENIED"):
        analysis.load_events(swept)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(OSError, match="ACCESS_DENIED"):
        analysis.load_events(swept)


def test_load_filters_prune_on_the_bucket(swept, reference):
    """Filters on cell and generation select the same rows from the bucket as from the local folder."""
    where = [("cell", "=", 1), ("generation", "=", 600)]
    mine = analysis.load(swept, filters=where)
    assert len(mine) == 48 and set(mine["n"]) == {800}
    pd.testing.assert_frame_equal(mine, analysis.load(reference, filters=where))


def test_endpoint_from_the_environment(swept, reference, s3, monkeypatch):
    """A plain s3://bucket/path URI with the endpoint in AWS_ENDPOINT_URL reads the same folder."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3.endpoint)
    pd.testing.assert_frame_equal(
        analysis.load_events(f"s3://{s3.bucket}/results/s3sweep"), analysis.load_events(reference)
    )


def test_show_and_report_on_the_bucket(swept, cli, tmp_path):
    """`sweep show` counts the bucket's chains; `sweep report --out DIR` reads the bucket and writes the
    report and its figures into the local DIR (what it computes is the loaded rows', checked above)."""
    status, out, _ = cli("show", swept)
    assert status == 0 and "chains done 96 of 96, trajectory rows 2976" in out
    assert "status complete" in out
    status, out, err = cli("report", swept, "--out", tmp_path / "report", "--bootstrap", "20")
    assert status == 0, err
    report = (tmp_path / "report" / "report.md").read_text()
    assert f"- results: `{swept}`" in report and "- cells: 2; chains: 96;" in report
    figures = sorted(p.name for p in (tmp_path / "report" / "figures").iterdir())
    assert "survival_gaussian_spread_below_0.5.png" in figures and "fan_gaussian.svg" in figures


def test_report_needs_a_local_out(swept, s3, cli, tmp_path, monkeypatch):
    """A remote folder without --out, or an --out URI, is one line and exit 2, and nothing is written:
    neither in the bucket nor as a local folder named after the URI."""
    monkeypatch.chdir(tmp_path)
    before = s3.files("")
    status, out, err = cli("report", swept)
    assert (status, out) == (2, "")
    assert err == (
        f"error: results folder '{swept}' is remote: expected a local folder to write the report in "
        "(--out DIR, or out_dir=), got none\n"
    )
    target = s3.uri("reports")
    status, out, err = cli("report", swept, "--out", target)
    assert (status, out) == (2, "")
    assert err == (
        f"error: report folder '{target}': expected a local folder, got a URI; write the report locally "
        "and copy it to object storage if needed\n"
    )
    assert s3.files("") == before and list(tmp_path.iterdir()) == []


def test_replay_from_the_bucket(swept, reference, s3, cli, tmp_path):
    """`sweep replay --check` finds a chain identical to its rows in the bucket, and --out writes the same
    CSV to the bucket as to a local file."""
    status, out, err = cli("replay", swept, "--cell", 1, "--replicate", 17, "--check", "--out", tmp_path / "chain.csv")
    assert status == 0, err
    assert "check: identical to the stored rows (trajectories and events)" in out
    remote = s3.uri("chains/chain.csv")
    status, out, err = cli("replay", swept, "--cell", 1, "--replicate", 17, "--out", remote)
    assert status == 0, err
    assert f"wrote 31 trajectory rows to {remote}" in out
    with s3.fs.open_input_stream(f"{s3.bucket}/chains/chain.csv") as stream:
        assert stream.read() == (tmp_path / "chain.csv").read_bytes()
    stored = analysis.load(reference, filters=[("cell", "=", 1), ("replicate", "=", 17)])
    assert len(stored) == 31 and stored["generation"].tolist() == list(range(0, 601, 20))


def test_unusable_uri_is_one_line(s3, cli, write_spec, tmp_path, monkeypatch):
    """An --out URI pyarrow cannot open is one line naming it, exit 2, and nothing written anywhere
    (before: a fall-back to a local path and a traceback)."""
    monkeypatch.chdir(tmp_path)
    spec = write_spec(RAW)
    before = s3.files("")
    out = f"s3://{s3.bucket}/results?endpoint_override={s3.host}:{s3.port}&scheme=http&bogus=1"
    status, printed, err = cli("run", spec, "--out", out, "--no-progress")
    assert (status, printed) == (2, "")
    assert err == (
        f"error: results location '{join_location(out, 's3sweep')}': expected a local path or a filesystem "
        "URI pyarrow can open (s3://bucket/path, gs://bucket/path), got Unexpected query parameter in S3 "
        "URI: 'bogus'\n"
    )
    assert s3.files("") == before and sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]
    with pytest.raises(analysis.ResultsError, match="^results location 'foo://x/y': expected a local path"):
        analysis.load("foo://x/y")


def test_missing_bucket_is_one_line(ray_session, s3, cli, write_spec):
    """A bucket that does not exist is one line naming the location, exit 2, and no bucket is created."""
    out = f"s3://nobucket/results?endpoint_override={s3.host}:{s3.port}&scheme=http"
    status, printed, err = cli("run", write_spec(RAW), "--out", out, "--no-progress")
    assert (status, printed) == (2, "")
    assert (
        err.startswith(
            f"error: output folder '{join_location(out, 's3sweep')}': expected a writable location, "
            "got OSError: Bucket 'nobucket' not found"
        )
        and err.count("\n") == 1
    )
    assert s3.fs.get_file_info("nobucket").type == pafs.FileType.NotFound  # still no such bucket


@pytest.mark.parametrize(
    "base, joined",
    [
        ("results", "results/s"),
        ("/tmp/results/", "/tmp/results/s"),
        ("s3://b/results", "s3://b/results/s"),
        ("s3://b/results/?endpoint_override=h:1&scheme=http", "s3://b/results/s?endpoint_override=h:1&scheme=http"),
        ("odd?name", "odd?name/s"),  # a '?' in a local path is part of the name
    ],
)
def test_join_location_keeps_the_query_last(base, joined):
    """A name goes into a URI's path, before its query string, where pyarrow still reads the options."""
    assert join_location(base, "s") == joined


def test_store_of_a_query_uri_is_the_bucket_path(s3):
    """The Store of a URI with options is an S3 filesystem rooted at bucket/path, not a local path."""
    store = Store(s3.uri("results/s3sweep"))
    assert not store.is_local and store.root == f"{s3.bucket}/results/s3sweep"
