"""Resume: complete parts are kept, missing or damaged ones recomputed, other sweeps refused."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import analysis
from sweep.runner import run_sweep
from sweep.spec import parse_spec

RAW = {
    "name": "resume",
    "seed": 99,
    "generations": 20,
    "replicates": 40,
    "block_size": 10,
    "family": {"name": "categorical", "k": 8, "probs": "uniform"},
    "grid": {"n": [10, 30], "policy": ["replace", {"fresh_real": 0.1}]},
}


def parts(location: str, kind: str) -> list[Path]:
    return sorted(Path(location, kind).rglob("part-*.parquet"))


def test_resume_recomputes_exactly_what_is_damaged(ray_session, tmp_path):
    """Delete one part, truncate another, leave a temporary file: the rerun redoes exactly two tasks."""
    spec = parse_spec(RAW)
    reference = run_sweep(spec, str(tmp_path / "reference"), blocks_per_task=1, progress=False)
    damaged = run_sweep(spec, str(tmp_path / "damaged"), blocks_per_task=1, progress=False)
    assert damaged.tasks_run == 16
    trajectories, events = parts(damaged.location, "trajectories"), parts(damaged.location, "events")
    trajectories[3].unlink()
    data = events[9].read_bytes()
    events[9].write_bytes(data[: len(data) // 2])
    leftover = trajectories[0].parent / f".{trajectories[0].name}.tmp-deadbeef"
    leftover.write_bytes(b"half a file")

    rerun = run_sweep(spec, str(tmp_path / "damaged"), blocks_per_task=1, progress=False)
    assert rerun.tasks_run == 2 and rerun.chains_run == 20
    assert rerun.parts_kept == 14
    assert rerun.parts_removed == 4  # the truncated part, both orphaned halves, the temporary file
    assert not leftover.exists()
    pd.testing.assert_frame_equal(analysis.load(reference.location), analysis.load(damaged.location))
    pd.testing.assert_frame_equal(analysis.load_events(reference.location), analysis.load_events(damaged.location))

    again = run_sweep(spec, str(tmp_path / "damaged"), progress=False)
    assert again.tasks_run == 0 and again.parts_kept == 16


def test_resume_keeps_a_drawn_seed(ray_session, tmp_path, cli, write_spec):
    """Without a seed the root entropy is drawn once, stored, and reused when the sweep resumes."""
    raw = {k: v for k, v in RAW.items() if k != "seed"}
    spec_path = write_spec(raw)
    status, out, _ = cli("run", spec_path, "--out", tmp_path, "--no-progress", "--blocks-per-task", "1")
    assert status == 0
    meta = json.loads((tmp_path / "resume" / "sweep.json").read_text())
    assert meta["spec"]["seed"] is None and int(meta["root_entropy"]) > 2**64
    first = analysis.load(tmp_path / "resume")
    parts(str(tmp_path / "resume"), "trajectories")[0].unlink()
    status, out, _ = cli("run", spec_path, "--out", tmp_path, "--no-progress", "--blocks-per-task", "1")
    assert status == 0 and "computed 10 chains in 1 tasks, kept 15 complete parts" in out
    pd.testing.assert_frame_equal(first, analysis.load(tmp_path / "resume"))
    assert first["seed"].unique().tolist() == [meta["root_entropy"]]


def test_resume_by_another_version_warns_once(ray_session, tmp_path, cli, write_spec):
    """A folder started by another collapse-sweep version: resuming it with chains to compute
    prints one warning line naming both versions and records both; a complete folder does not."""
    from sweep import __version__

    spec_path = write_spec(RAW)
    args = ("run", spec_path, "--out", tmp_path, "--no-progress", "--blocks-per-task", "1")
    assert cli(*args)[0] == 0
    meta_path = tmp_path / "resume" / "sweep.json"
    meta = json.loads(meta_path.read_text())
    meta["package_version"], meta["package_versions"] = "0.0.1", ["0.0.1"]
    meta_path.write_text(json.dumps(meta))
    parts(str(tmp_path / "resume"), "trajectories")[0].unlink()
    status, _, err = cli(*args)
    assert status == 0
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "started by collapse-sweep 0.0.1, this is " + __version__ in warnings[0]
    assert json.loads(meta_path.read_text())["package_versions"] == ["0.0.1", __version__]
    status, _, err = cli(*args)  # now recorded, and nothing left to compute: silent
    assert status == 0 and "warning:" not in err


def test_other_spec_refused_unless_overwrite(ray_session, tmp_path, cli, write_spec):
    """A folder written by another spec is refused with exit 2 and left intact; --overwrite replaces it."""
    status, _, _ = cli("run", write_spec(RAW), "--out", tmp_path, "--no-progress")
    assert status == 0
    before = (tmp_path / "resume" / "sweep.json").read_text()
    status, _, err = cli("run", write_spec(RAW), "--out", tmp_path, "--set", "generations=15", "--no-progress")
    assert status == 2
    assert err == (
        f"error: results folder '{tmp_path}/resume' holds a different sweep (generations: 20 in the folder, "
        "15 now (only a larger value continues it)); pass --overwrite to replace it, or choose another --out\n"
    )
    assert (tmp_path / "resume" / "sweep.json").read_text() == before
    status, out, _ = cli(
        "run", write_spec(RAW), "--out", tmp_path, "--set", "generations=25", "--overwrite", "--no-progress"
    )
    assert status == 0
    assert analysis.load(tmp_path / "resume")["generation"].max() == 25


def test_unwritable_output(ray_session, tmp_path, cli, write_spec):
    """An output location that cannot be written is one line, exit 2."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    status, _, err = cli("run", write_spec(RAW), "--out", blocker, "--no-progress")
    assert status == 2
    assert err.startswith(f"error: output folder '{blocker}/resume': expected a writable location, got ")


def test_show_summarises(ray_session, tmp_path, cli, write_spec):
    """show lists each cell with its chains and rows."""
    cli("run", write_spec(RAW), "--out", tmp_path, "--no-progress")
    status, out, _ = cli("show", tmp_path / "resume")
    assert status == 0
    assert "chains done 160 of 160, trajectory rows 3360" in out
    assert "cell 3: n=30 policy=fresh_real(0.1): 40/40 chains, 840 rows" in out


def test_garbage_parts_are_recomputed(ray_session, tmp_path):
    """Parts overwritten with garbage (random bytes; Parquet magic around garbage) are detected and
    recomputed with their other halves; the result matches an undamaged run."""
    import os

    spec = parse_spec(RAW)
    reference = run_sweep(spec, str(tmp_path / "reference"), blocks_per_task=1, progress=False)
    damaged = run_sweep(spec, str(tmp_path / "damaged"), blocks_per_task=1, progress=False)
    trajectories, events = parts(damaged.location, "trajectories"), parts(damaged.location, "events")
    trajectories[5].write_bytes(os.urandom(trajectories[5].stat().st_size))
    size = events[11].stat().st_size
    events[11].write_bytes(b"PAR1" + os.urandom(size - 8) + b"PAR1")
    rerun = run_sweep(spec, str(tmp_path / "damaged"), blocks_per_task=1, progress=False)
    assert rerun.tasks_run == 2 and rerun.parts_kept == 14 and rerun.parts_removed == 4
    pd.testing.assert_frame_equal(analysis.load(reference.location), analysis.load(damaged.location))
    pd.testing.assert_frame_equal(analysis.load_events(reference.location), analysis.load_events(damaged.location))


def test_version_warning_is_a_python_warning(ray_session, tmp_path, capsys):
    """From Python, the other-version warning is a SweepWarning (not a print): it can be caught,
    and filtered away so that nothing reaches stderr."""
    import warnings

    from sweep import __version__
    from sweep.errors import SweepWarning

    spec = parse_spec(RAW)
    report = run_sweep(spec, str(tmp_path), blocks_per_task=1, progress=False)
    meta_path = Path(report.location, "sweep.json")

    def started_by_another_version_with_a_part_missing():
        meta = json.loads(meta_path.read_text())
        meta["package_version"], meta["package_versions"] = "0.0.1", ["0.0.1"]
        meta_path.write_text(json.dumps(meta))
        parts(report.location, "trajectories")[0].unlink()

    started_by_another_version_with_a_part_missing()
    with pytest.warns(SweepWarning, match=f"started by collapse-sweep 0.0.1, this is {__version__}"):
        run_sweep(spec, str(tmp_path), blocks_per_task=1, progress=False)
    started_by_another_version_with_a_part_missing()
    capsys.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any other warning would fail here
        warnings.simplefilter("ignore", SweepWarning)
        assert run_sweep(spec, str(tmp_path), blocks_per_task=1, progress=False).chains_run == 10
    assert capsys.readouterr().err == ""


def flip_bytes_inside_pages(path: Path) -> None:
    """Overwrite 8 bytes in the middle of the largest column chunk's pages, far from the footer, as a
    torn write or a bad disk block would: the footer (row count, schema) stays intact."""
    import pyarrow.parquet as pq

    chunks = [pq.read_metadata(path).row_group(0).column(i) for i in range(pq.read_metadata(path).num_columns)]
    chunk = max(chunks, key=lambda c: c.total_compressed_size)
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    middle = start + chunk.total_compressed_size // 2
    data = bytearray(path.read_bytes())
    footer = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    assert chunk.total_compressed_size > 64 and middle + 8 < footer
    data[middle : middle + 8] = bytes(b ^ 0xFF for b in data[middle : middle + 8])
    path.write_bytes(bytes(data))


def test_part_with_damaged_pages_is_recomputed(ray_session, tmp_path):
    """A part whose footer is intact but whose pages are damaged is found on resume (page checksums)
    and recomputed with its other half; the rows then match an undamaged run."""
    import pyarrow.parquet as pq

    spec = parse_spec(RAW)
    reference = run_sweep(spec, str(tmp_path / "reference"), blocks_per_task=1, progress=False)
    damaged = run_sweep(spec, str(tmp_path / "damaged"), blocks_per_task=1, progress=False)
    trajectories, events = parts(damaged.location, "trajectories"), parts(damaged.location, "events")
    rows = pq.read_metadata(trajectories[6]).num_rows
    flip_bytes_inside_pages(trajectories[6])
    flip_bytes_inside_pages(events[2])
    assert pq.read_metadata(trajectories[6]).num_rows == rows  # what resume used to check
    rerun = run_sweep(spec, str(tmp_path / "damaged"), blocks_per_task=1, progress=False)
    assert rerun.tasks_run == 2 and rerun.chains_run == 20
    assert rerun.parts_kept == 14 and rerun.parts_removed == 4  # both damaged parts and their other halves
    pd.testing.assert_frame_equal(analysis.load(reference.location), analysis.load(damaged.location))
    pd.testing.assert_frame_equal(analysis.load_events(reference.location), analysis.load_events(damaged.location))


def test_folder_of_another_kernel_says_how_to_continue(ray_session, tmp_path, cli, write_spec):
    """A folder computed by the numpy kernel (as every folder before the kernel field was), run
    again with the compiled one (what ``kernel: auto`` picks where numba is installed), is refused
    with exit 2 and an error naming the setting that continues it; that setting does."""
    pytest.importorskip("numba")
    raw = {**RAW, "family": {"name": "gaussian"}}
    status, _, _ = cli("run", write_spec(raw), "--out", tmp_path, "--set", "family.kernel=numpy", "--no-progress")
    assert status == 0
    status, _, err = cli("run", write_spec(raw), "--out", tmp_path, "--set", "family.kernel=numba", "--no-progress")
    assert status == 2
    assert err == (
        f"error: results folder '{tmp_path}/resume' holds a different sweep (family.kernel: None in the folder, "
        "'numba' now; continue it with its own kernel: --set family.kernel=numpy); pass --overwrite to replace it, "
        "or choose another --out\n"
    )
    status, _, _ = cli("run", write_spec(raw), "--out", tmp_path, "--set", "family.kernel=numpy", "--no-progress")
    assert status == 0
