"""Scaling: the same sweep on 1 and 2 workers (embedded Ray) and on a 3-node local Cluster.

Each run is a real ``python -m sweep run`` process. Effective cores = seconds the tasks worked,
summed, over the wall seconds the driver spent running them (Ray's start excluded; the command's
whole wall time is printed too). Work is counted both as wall-clock inside the tasks and as their
CPU time, which is lower when other processes share the cores. Target: at least 1.7 on 2 workers.

Usage: python bench/bench_scaling.py [--generations G]    (about 3 minutes on 2 quiet cores)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_load import run_driver  # noqa: E402

#: About 50 core-seconds of work: 4 cells x 2048 chains, sampling path, n up to 800.
SCALING = {
    "name": "scaling",
    "seed": 7,
    "generations": 600,
    "replicates": 2048,
    "block_size": 32,
    "family": {"name": "gaussian", "dim": 1, "path": "sample"},
    "grid": {"n": [200, 800], "policy": ["replace", {"fresh_real": 0.2}]},
    "events": {"spread_below": [0.5], "distance_above": [1.0]},
    "record": {"every": 20},
}


def measure(label: str, spec: Path, out: Path, *, cpus: int = 2, address: str | None = None) -> str:
    args = [str(spec), "--out", str(out), "--no-progress", "--overwrite"]
    if address:
        args += ["--address", address]
    run = run_driver(args, cpus=cpus)
    if run["returncode"] != 0:
        raise RuntimeError(f"{label}: sweep run failed:\n{run['stderr'][-3000:]}")
    last = json.loads((out / "scaling" / "sweep.json").read_text())["last_run"]
    run_wall = last["execute_seconds"]
    return (
        f"{label}: {last['tasks']} tasks, wall {run['wall']:.1f} s (running tasks {run_wall:.1f} s), "
        f"work {last['work_seconds']:.1f} s ({last['cpu_seconds']:.1f} s CPU) -> effective cores "
        f"{last['work_seconds'] / run_wall:.2f} ({last['cpu_seconds'] / run_wall:.2f} by CPU time; "
        f"{last['work_seconds'] / run['wall']:.2f} over the whole command)"
    )


def cluster_run(spec: Path, out: Path) -> str:
    """Head without CPUs plus two 1-CPU worker nodes, all local processes."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, connect=False, head_node_args={"num_cpus": 0, "include_dashboard": False})
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        return measure("3-node Cluster (2 x 1 CPU)", spec, out, address=cluster.address)
    finally:
        cluster.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generations", type=int, default=SCALING["generations"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        spec = Path(tmp) / "scaling.yaml"
        spec.write_text(yaml.safe_dump(dict(SCALING, generations=args.generations), sort_keys=False))
        for cpus in (1, 2):
            print(
                measure(f"{cpus} worker{'s' if cpus > 1 else ''}", spec, Path(tmp) / f"w{cpus}", cpus=cpus), flush=True
            )
        print(cluster_run(spec, Path(tmp) / "cluster"), flush=True)


if __name__ == "__main__":
    main()
