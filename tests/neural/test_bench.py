"""bench/bench_neural.py runs and prints its side-by-side table (a smoke test: timings are not
asserted, they depend on the machine)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SIDES = ("batched B=32", "loop, family code B=1", "loop, nn.Module", "evaluation, per chain")


def bench(*args: str) -> str:
    return subprocess.run(
        [sys.executable, "bench/bench_neural.py", "--quick", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
    ).stdout


@pytest.mark.slow
def test_bench_quick_prints_the_table():
    """--quick prints, for the vae and each Lipschitz method of the wgan, the batched block, both
    one-at-a-time loops and the evaluation cost."""
    out = bench()
    for row in ("vae", "wgan-clip", "wgan-gp", "wgan-sn"):
        for side in SIDES:
            assert any(line.startswith(row) and side in line for line in out.splitlines()), (row, side)


@pytest.mark.slow
def test_bench_conv_says_its_images_stand_in_for_mnist():
    """--architecture conv runs the conv nets on 28x28 stand-in images and says so."""
    out = bench("--architecture", "conv", "--only", "vae")
    assert "architecture conv" in out and "stand in for MNIST" in out
    for side in SIDES:
        assert any(line.startswith("vae") and side in line for line in out.splitlines()), side


def test_bench_rejects_an_unknown_row():
    """--only with a row the table does not have: a one-line usage error, exit 2."""
    result = subprocess.run(
        [sys.executable, "bench/bench_neural.py", "--only", "wgan-xx"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
    )
    assert result.returncode == 2 and "wgan-xx" in result.stderr.strip().splitlines()[-1]
