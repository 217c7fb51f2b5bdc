"""`sweep report` on a real neural sweep (issue 12): sample grids across generations copied into
the report, the fan charts of the declared metrics, Kaplan-Meier survival of `classes_below`,
and the per-method table of final medians, checked against the Parquet rows themselves."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

pytest.importorskip("torch", reason="the neural families need the 'neural' extra (pip install torch==2.13.0)")

from lifelines import KaplanMeierFitter  # noqa: E402

from analysis import _markdown as md  # noqa: E402
from sweep.cli import main  # noqa: E402

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
#: Two cells that differ in the WGAN's Lipschitz method: the "table per method" of the issue.
TINY = {
    "name": "wgan-report",
    "seed": 11,
    "generations": 2,
    "replicates": 3,
    "family": {"name": "wgan", "steps": 3, "n_critic": 2, "hidden": [16], "latent_dim": 2, "eval_samples": 64},
    "grid": {"n": [100], "family.lipschitz": ["clip", "spectral_norm"], "policy": ["replace"]},
    "events": {"classes_below": [9, 5], "distance_above": [50.0]},
    "record": {"every": 1},
}


def _run_and_report(folder_root: Path, spec: Path, *overrides: str) -> tuple[Path, str]:
    status = main(["run", str(spec), "--out", str(folder_root), "--no-progress", *overrides])
    assert status == 0
    folder = folder_root / yaml.safe_load(spec.read_text())["name"]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["report", str(folder), "--bootstrap", "50", "--no-regression"]) == 0
    return folder, printed.getvalue()


@pytest.fixture(scope="module")
def reported(ray_session, tmp_path_factory):
    root = tmp_path_factory.mktemp("neural")
    spec = root / "spec.yaml"
    spec.write_text(yaml.safe_dump(TINY, sort_keys=False))
    folder, printed = _run_and_report(root, spec)
    return folder, (folder / "report" / "report.md").read_text(), printed


def _parquet(folder: Path, kind: str) -> pd.DataFrame:
    frames = [
        pd.read_parquet(p).assign(cell=int(p.parent.name.split("=")[1])) for p in folder.glob(f"{kind}/*/*.parquet")
    ]
    return pd.concat(frames, ignore_index=True)


def test_report_copies_and_shows_the_sample_grids(reported):
    """Every saved grid of the shown chains (real data, generations 1 and 2) is copied into the
    report folder byte for byte and referenced from report.md, per cell."""
    folder, text, _ = reported
    assert "### Samples across generations" in text
    for cell in (0, 1):
        assert f"**Cell {cell}: " in text
        names = [f"samples/cell={cell}/real.png"] + [
            f"samples/cell={cell}/replicate={r}/generation-{g}.png" for r in (0, 1) for g in (1, 2)
        ]
        for name in names:
            assert (folder / "report" / name).read_bytes() == (folder / name).read_bytes()
            assert f"]({name})" in text
        assert f"samples/cell={cell}/replicate=2/" not in text  # two chains per cell are shown
    # The command counts its figures apart from the copied grids (2 cells x (real + 2 chains x 2 generations)).
    assert "and 4 figures (PNG and SVG)" in reported[2] and ", 10 sample grids in " in reported[2]


def test_report_draws_the_declared_metrics_as_fan_charts(reported):
    """One figure of fan charts for the family's declared metrics, saved and referenced."""
    folder, text, _ = reported
    assert (folder / "report" / "figures" / "metrics_wgan.png").stat().st_size > 0
    assert "![Declared metrics over generations" in text and "(figures/metrics_wgan.png)" in text


def test_report_has_kaplan_meier_survival_of_classes_below(reported):
    """Each classes_below threshold gets a collapse section and a survival figure, and the median
    collapse time of each cell is the Kaplan-Meier median of the events Parquet."""
    folder, text, _ = reported
    events = _parquet(folder, "events")
    for threshold in (9, 5):
        assert re.search(rf"^### Collapse: classes_below: .*\(threshold {threshold}\)$", text, re.M)
        assert (folder / "report" / "figures" / f"survival_wgan_classes_below_{threshold}.png").exists()
        section = text.split(f"(threshold {threshold})\n", 1)[1].split("\n### ", 1)[0]  # this section only
        for cell, rows in events[(events["event"] == "classes_below") & (events["threshold"] == threshold)].groupby(
            "cell"
        ):
            fit = KaplanMeierFitter().fit(rows["generation"], rows["observed"].astype(bool))
            median = fit.median_survival_time_
            shown = f"> {TINY['generations']}" if np.isinf(median) else f"{median:.0f}"
            assert re.search(rf"^\| {cell} \| [^|]+ \| 3 \| [^|]+ \| {re.escape(shown)} \[", section, re.M)


def test_report_has_the_per_method_table_of_final_medians(reported):
    """Rows are the cells with the Lipschitz method that varies between them; each metric's entry
    is the median over chains at T recomputed from the Parquet, with the range as its interval
    (three chains are too few for 95%: marked †)."""
    folder, text, _ = reported
    traj = _parquet(folder, "trajectories")
    final = traj[traj["generation"] == TINY["generations"]]
    assert "### Final-generation medians per cell (T = 2)" in text
    assert re.search(r"^\| cell \| lipschitz \| chains \| frechet_distance \|", text, re.M)
    lines = text.splitlines()
    for metric in ("frechet_distance", "classes_covered", "lipschitz_estimate"):
        start = next(i for i, line in enumerate(lines) if line.startswith("| cell | lipschitz") and metric in line)
        column = _cells(lines[start]).index(metric)
        rows = {int(_cells(line)[0]): _cells(line) for line in lines[start + 2 : start + 4]}
        for cell, method in ((0, "clip"), (1, "spectral_norm")):
            values = final.loc[final["cell"] == cell, metric].astype(float)
            assert rows[cell][1:3] == [method, "3"]
            assert (
                rows[cell][column]
                == f"{md.number(values.median())} [{md.number(values.min())}, {md.number(values.max())}] †"
            )


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


@pytest.mark.slow
def test_report_of_the_shipped_vae_small_experiment(ray_session, tmp_path):
    """experiments/vae_digits_small.yaml as shipped: its report has every part."""
    folder, _ = _run_and_report(tmp_path, EXPERIMENTS / "vae_digits_small.yaml")
    text = (folder / "report" / "report.md").read_text()
    for part in ("### Samples across generations", "### Final-generation medians", "classes_below", "latent_std"):
        assert part in text
    assert (folder / "report" / "figures" / "metrics_vae.png").exists()
    assert (folder / "report" / "samples" / "cell=0" / "replicate=0" / "generation-5.png").exists()
