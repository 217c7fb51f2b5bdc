"""bench/bench_neural.py runs and prints its side-by-side table (a smoke test: timings are not
asserted, they depend on the machine)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_quick_prints_the_table():
    """--quick prints, for both families, the batched block, both one-at-a-time loops and the
    evaluation cost."""
    out = subprocess.run(
        [sys.executable, "bench/bench_neural.py", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT), "PATH": ""},
    ).stdout
    for family in ("vae", "wgan"):
        for side in ("batched B=32", "loop, family code B=1", "loop, nn.Module", "evaluation, per chain"):
            assert any(line.startswith(family) and side in line for line in out.splitlines()), (family, side)
