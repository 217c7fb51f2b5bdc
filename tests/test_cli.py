"""The sweep command: --help everywhere, bad input as one line with exit 2 and nothing written."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.test_spec import BASE


@pytest.mark.parametrize(
    "command", [[], ["run"], ["validate"], ["show"], ["report"], ["replay"], ["submit"], ["status"], ["logs"]]
)
def test_help(command, capsys):
    """Every command answers --help with a usage text and exit status 0."""
    from sweep.cli import main

    with pytest.raises(SystemExit) as info:
        main(command + ["--help"])
    assert info.value.code == 0
    assert "usage: sweep" in capsys.readouterr().out


def test_validate_prints_cells(cli, write_spec):
    """validate prints the resolved cells and writes nothing."""
    status, out, _ = cli("validate", write_spec(BASE), "--set", "grid.n=[10,20]")
    assert status == 0
    assert "2 cells x 4 replicates = 8 chains" in out and "cell 1: n=20, replace" in out


BAD_FILES = [
    ("missing", None, "error: spec file '{path}': expected an existing YAML file, got no such file"),
    ("not yaml", "name: [unclosed\n  x: {", "error: spec file '{path}': expected valid YAML, got "),
    ("a list", "- 1\n- 2\n", "error: spec file '{path}': expected a YAML mapping of fields"),
    (
        "python tag",
        "name: !!python/object/apply:os.system ['echo hacked']\n",
        "error: spec file '{path}': expected valid YAML, got could not determine a constructor",
    ),
]


@pytest.mark.parametrize("label, content, message", BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_files(label, content, message, cli, tmp_path):
    """Missing, malformed, non-mapping and tagged YAML files give one line and exit 2."""
    path = tmp_path / "spec.yaml"
    if content is not None:
        path.write_text(content)
    status, out, err = cli("run", path, "--out", tmp_path / "results")
    assert status == 2
    assert err.startswith(message.format(path=path)), err
    assert err.count("\n") == 1
    assert not (tmp_path / "results").exists()


def test_bad_spec_writes_nothing(cli, write_spec, tmp_path):
    """A spec error in run exits 2 with one line before anything is created."""
    raw = dict(BASE, grid={"n": [10], "policy": [{"mix": {"keep": 0.3, "synthetic": 0.3, "real": 0.3}}]})
    status, _, err = cli("run", write_spec(raw), "--out", tmp_path / "results")
    assert status == 2
    assert (
        err
        == "error: spec field 'grid.policy[0].mix': expected ratios keep + synthetic + real summing to 1, got 0.3 + 0.3 + 0.3 = 0.9\n"
    )
    assert not (tmp_path / "results").exists()


def test_bad_override(cli, write_spec, tmp_path):
    """A malformed --set is one line, exit 2."""
    status, _, err = cli("validate", write_spec(BASE), "--set", "generations")
    assert status == 2 and err.startswith("error: --set 'generations': expected KEY=VALUE")


def test_unknown_option_is_one_line(cli, write_spec):
    """argparse errors become one line with exit 2 too."""
    status, _, err = cli("run", write_spec(BASE), "--frobnicate")
    assert status == 2 and err.startswith("error: sweep: unrecognized arguments: --frobnicate (see --help)")


def test_show_foreign_folder(cli, tmp_path):
    """show on a folder that sweep did not write is a one-line error, exit 2."""
    status, _, err = cli("show", tmp_path)
    assert status == 2 and "expected a folder written by 'sweep run'" in err


def test_console_script_exit_status(write_spec, tmp_path):
    """The installed console script exits 2 on a bad spec (checked in a real process)."""
    raw = dict(BASE, family={"name": "gaussian", "estimator": "median"})
    result = subprocess.run(
        [sys.executable, "-m", "sweep", "validate", str(write_spec(raw))], capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr == "error: spec field 'family.estimator': expected one of unbiased, ml, got 'median'\n"


def test_bad_task_options(cli, write_spec, tmp_path):
    """--task-seconds and --blocks-per-task out of range: one line, exit 2, for run and submit alike."""
    spec = write_spec(BASE)
    status, _, err = cli("run", spec, "--out", tmp_path, "--task-seconds", "0")
    assert status == 2 and err == "error: --task-seconds: expected a number of seconds > 0, got 0.0\n"
    status, _, err = cli("submit", spec, "--out", tmp_path, "--blocks-per-task", "0")
    assert status == 2 and err == "error: --blocks-per-task: expected an integer >= 1, got 0\n"
    assert not any(tmp_path.iterdir()) or list(tmp_path.iterdir()) == [spec]


def test_submit_validates_before_sending(cli, write_spec, tmp_path):
    """A bad spec given to submit fails here, before any job server is contacted."""
    raw = dict(BASE, family={"name": "gaussian", "estimator": "median"})
    status, _, err = cli("submit", write_spec(raw), "--out", tmp_path, "--address", "http://127.0.0.1:9")
    assert status == 2
    assert err == "error: spec field 'family.estimator': expected one of unbiased, ml, got 'median'\n"
