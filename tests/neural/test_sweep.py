"""The shipped _small experiments run end to end through `sweep run` on Ray (shortened here; in
full under -m slow): every metric is written, sample grids and the classifier lie next to the
results, and a chain replays bit for bit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import analysis
from sweep.families import REGISTRY
from sweep.families._neural.images import gallery_generation

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
SHORT = {
    "vae_digits_small": ["generations=2", "replicates=2", "family.steps=4"],
    "wgan_digits_small": ["generations=2", "replicates=2", "family.steps=3", "grid.policy=[replace, accumulate]"],
}


def check_folder(folder: Path, family: str, generations: int, replicates: int, cells: int) -> None:
    traj = analysis.load(folder)
    columns = REGISTRY[family].metric_columns
    assert set(columns) <= set(traj.columns)
    assert len(traj) == cells * replicates * (generations + 1)
    model = list(REGISTRY[family].model_columns)
    later = traj[traj.generation > 0]
    assert np.isfinite(later[list(columns)].to_numpy(float)).all()
    assert traj[traj.generation == 0][model].isna().all().all()  # generation 0 is the real data
    meta = json.loads((folder / "sweep.json").read_text())
    assert meta["family"]["distance_metric"] == "frechet_distance" and set(columns) <= set(meta["family"]["metrics"])
    assert len(list((folder / "classifier").glob("*.pt"))) == 1
    for cell in range(cells):
        grids = folder / "samples" / f"cell={cell}"
        assert (grids / "real.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        for replicate in range(replicates):
            names = sorted(p.name for p in (grids / f"replicate={replicate}").iterdir())
            kept = [g for g in range(1, generations + 1) if gallery_generation(g) or g == generations]
            assert names == sorted(f"generation-{g}.png" for g in kept)


@pytest.mark.parametrize("name", SHORT)
def test_small_experiment_end_to_end(ray_session, tmp_path, cli, name):
    """A shortened _small experiment: exit 0, every metric finite, PNG grids per chain and
    generation, the classifier cached, and `sweep replay --check` identical to the stored rows."""
    overrides = [arg for item in SHORT[name] for arg in ("--set", item)]
    status, out, err = cli("run", EXPERIMENTS / f"{name}.yaml", "--out", tmp_path, "--no-progress", *overrides)
    assert status == 0, err
    family = name.split("_")[0]
    cells = 3 if family == "vae" else 6
    check_folder(tmp_path / name, family, 2, 2, cells)
    status, out, err = cli("replay", tmp_path / name, "--cell", cells - 1, "--replicate", 1, "--check")
    assert status == 0 and "identical to the stored rows" in out, err


@pytest.mark.slow
@pytest.mark.parametrize("name", SHORT)
def test_small_experiment_as_shipped(ray_session, tmp_path, cli, name):
    """The _small experiments exactly as shipped (about a minute each on 2 cores)."""
    from sweep.spec import load_spec

    spec = load_spec(EXPERIMENTS / f"{name}.yaml")
    status, _, err = cli("run", EXPERIMENTS / f"{name}.yaml", "--out", tmp_path, "--no-progress")
    assert status == 0, err
    check_folder(tmp_path / name, spec.family_name, spec.generations, spec.replicates, len(spec.grid.points))
