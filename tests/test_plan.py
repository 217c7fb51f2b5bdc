"""The planner: tasks big enough that Ray's per-task overhead is noise, small enough to spread."""

from __future__ import annotations

from sweep.grid import cells as grid_cells
from sweep.plan import MIN_TASK_SECONDS, TASK_FIXED_SECONDS, block_seconds, plan_tasks
from sweep.spec import parse_spec

CHEAP = {
    "name": "plan",
    "seed": 1,
    "generations": 50,
    "replicates": 4000,
    "block_size": 8,
    "family": {"name": "gaussian", "dim": 1, "path": "exact"},
    "grid": {"n": [10, 100], "policy": ["replace"]},
}


def seconds(spec, cells, task) -> float:
    return TASK_FIXED_SECONDS + block_seconds(spec, cells[task.cell]) * (task.stop - task.first)


def test_tasks_never_below_the_floor():
    """However many workers and however small the target, a task has at least MIN_TASK_SECONDS of
    estimated work (the cell's last, shorter run of blocks excepted), and every block is planned once."""
    spec = parse_spec(CHEAP)
    cells = grid_cells(spec)
    tasks = plan_tasks(spec, cells, {}, workers=64, target_seconds=0.01)
    last = {c.index: max(t.stop for t in tasks if t.cell == c.index) for c in cells}
    assert all(seconds(spec, cells, t) >= MIN_TASK_SECONDS for t in tasks if t.stop != last[t.cell])
    covered = sorted((t.cell, b) for t in tasks for b in range(t.first, t.stop))
    assert covered == [(c.index, b) for c in cells for b in range(c.blocks)]


def test_target_and_balance():
    """A larger target makes larger tasks, but each of few workers still gets several of them."""
    spec = parse_spec(dict(CHEAP, generations=2000))
    cells = grid_cells(spec)
    small = plan_tasks(spec, cells, {}, workers=2, target_seconds=0.5)
    large = plan_tasks(spec, cells, {}, workers=2, target_seconds=5.0)
    assert len(large) < len(small)
    assert len(large) >= 4 * 2
    assert all(seconds(spec, cells, t) <= 0.5 + 1e-9 for t in small)


def test_done_blocks_are_skipped():
    """Blocks already done (resume) are not planned again; tasks never span a gap."""
    spec = parse_spec(CHEAP)
    cells = grid_cells(spec)
    tasks = plan_tasks(spec, cells, {0: [(0, 100), (200, 300)]}, workers=2, blocks_per_task=1000)
    assert [(t.cell, t.first, t.stop) for t in tasks] == [(0, 100, 200), (0, 300, 500), (1, 0, 500)]
