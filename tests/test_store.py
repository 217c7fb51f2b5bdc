"""The results folder as storage: one reader of sweep.json for sweep and analysis alike, with one
error for a corrupt file, and one line for a location whose filesystem cannot be reached."""

from __future__ import annotations

import pytest

import analysis
from sweep.errors import ResultsError
from sweep.store import Store
from tests.test_resume import RAW

#: An S3 location whose filesystem is set up without any network call (region and endpoint given);
#: nothing listens at the endpoint.
NOWHERE = "s3://bucket/results/resume?region=us-east-1&endpoint_override=127.0.0.1:9&scheme=http"
CORRUPT = {
    "truncated": b'{"spec": {"name": "resume", "seed"',
    "empty": b"",
    "not utf-8": b"\xff\xfe{}",
    "a list": b"[1, 2]",
}


@pytest.mark.parametrize("content", CORRUPT.values(), ids=CORRUPT.keys())
def test_corrupt_sweep_json_is_one_error_everywhere(content, tmp_path, cli, write_spec):
    """A corrupt sweep.json: run, show, replay and report exit 2 with the same one line, and
    analysis raises that line as a ResultsError (a ValueError), never a JSONDecodeError."""
    location = tmp_path / "resume"
    location.mkdir()
    (location / "sweep.json").write_bytes(content)
    expected = f"results folder '{location}': expected a readable sweep.json, got a corrupt file ("
    for command in (
        ["run", write_spec(RAW), "--out", tmp_path],
        ["show", location],
        ["report", location],
        ["replay", location, "--cell", "0", "--replicate", "0"],
    ):
        status, _, err = cli(*command)
        assert status == 2, command
        assert err.startswith("error: " + expected) and err.count("\n") == 1, (command, err)
        assert err.endswith("); rerun 'sweep run' with --overwrite to start the folder again\n")
    for read in (analysis.read_metadata, analysis.load, analysis.load_events, lambda path: Store(path).read_meta()):
        with pytest.raises(ResultsError) as error:
            read(str(location))
        assert str(error.value).startswith(expected) and isinstance(error.value, ValueError)
    assert (location / "sweep.json").read_bytes() == content  # nothing rewrote it
    assert sorted(p.name for p in location.iterdir()) == ["sweep.json"]


def test_report_of_a_remote_folder_needs_out(cli):
    """`sweep report` on a remote URI without --out: one line asking for --out, exit 2, before any
    read (nothing listens at this endpoint)."""
    status, _, err = cli("report", NOWHERE)
    assert status == 2
    assert err == (
        f"error: results folder '{NOWHERE}' is remote: expected --out (out_dir=) naming a local folder "
        "for the report, got none\n"
    )


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("hdfs://127.0.0.1:9/x", "expected a reachable filesystem, got Unable to load "),
        (
            "nosuch://bucket/x",
            "expected a local path or a filesystem URI (s3://, gs://, hdfs://, file://), got Unrecognized",
        ),
    ],
)
def test_bad_filesystem_uri_is_one_line(uri, expected, tmp_path, cli, write_spec, monkeypatch):
    """A URI whose filesystem cannot be set up (no libhdfs here) or that pyarrow does not take: one
    line naming it, exit 2, and never a local folder named after the URI."""
    monkeypatch.chdir(tmp_path)
    status, _, err = cli("run", write_spec(RAW), "--out", uri, "--no-progress")
    assert status == 2 and err.startswith(f"error: results folder '{uri}/resume': {expected}") and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]
