"""The report's sample grids: the results folder's samples/ layout is read as written, and the
generations shown keep the first and the last."""

from __future__ import annotations

from analysis._report_samples import pick_generations, sample_files


def test_sample_files_reads_the_layout_and_skips_other_names(tmp_path):
    """Real data and each chain's generations are found per cell; a temporary file being written,
    a stray name and a folder without a cell number are skipped; no samples/ gives {}."""
    assert sample_files(tmp_path) == {}
    grids = tmp_path / "samples" / "cell=3"
    (grids / "replicate=1").mkdir(parents=True)
    (grids / "real.png").write_bytes(b"png")
    for name in ("generation-1.png", "generation-10.png", ".generation-20.png.tmp-ab", "notes.txt"):
        (grids / "replicate=1" / name).write_bytes(b"png")
    (tmp_path / "samples" / "other").mkdir()
    (tmp_path / "samples" / "other" / "real.png").write_bytes(b"png")
    found = sample_files(tmp_path)
    assert list(found) == [3]
    assert found[3]["real"].endswith("samples/cell=3/real.png")
    assert {g: p.rsplit("/", 1)[1] for g, p in found[3]["chains"][1].items()} == {
        1: "generation-1.png",
        10: "generation-10.png",
    }


def test_pick_generations_keeps_first_and_last():
    """Up to the limit every saved generation is shown; past it the first and last stay and the
    rest are spread evenly in rank."""
    saved = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 1500]
    assert pick_generations([5, 1, 2, 2], limit=8) == [1, 2, 5]
    picked = pick_generations(saved, limit=5)
    assert picked == [1, 5, 50, 500, 1500]
