"""Real Ray processes for tests: heads started with ``ray start``, drivers as subprocesses.

Every process is started in a session of its own, and stopped by killing exactly that process
group (plus any descendant that left it), never with ``ray stop``, which would also stop the Ray
instances of anyone else on the machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]


def env(**extra: str) -> dict[str, str]:
    """This process's environment with the worktree first on PYTHONPATH (for drivers and workers)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def group(pgid: int) -> list[psutil.Process]:
    """Processes in process group ``pgid`` and all their descendants."""
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid:
                found[proc.pid] = proc
                for child in proc.children(recursive=True):
                    found[child.pid] = child
        except (psutil.Error, ProcessLookupError):
            continue
    return list(found.values())


def names(pgid: int) -> set[str]:
    """Names of the live processes of a group (and their descendants)."""
    found = set()
    for proc in group(pgid):
        try:
            if proc.status() != psutil.STATUS_ZOMBIE:
                found.add(proc.name())
        except psutil.Error:
            continue
    return found


def kill_group(pgid: int, timeout: float = 15.0) -> None:
    """SIGKILL a process group and its descendants; wait until they are gone."""
    procs = group(pgid)
    for proc in procs:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(procs, timeout=timeout)


def wait_group_gone(pgid: int, timeout: float) -> bool:
    """Wait for a group to empty by itself; True if it did."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not group(pgid):
            return True
        time.sleep(0.25)
    return False


@dataclass
class Head:
    """A Ray head started with ``ray start --head`` in its own process group."""

    pgid: int
    port: int
    dashboard_port: int | None
    client_port: int
    temp_dir: str

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def client(self) -> str:
        return f"ray://127.0.0.1:{self.client_port}"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def stop(self) -> None:
        kill_group(self.pgid)
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def start_head(*, dashboard: bool = False, num_cpus: int = 1) -> Head:
    """Start a head (and with ``dashboard``, its job server) on free ports; wait until it is up."""
    # Short, private temp dir: Ray's socket paths must stay under 108 characters.
    temp_dir = tempfile.mkdtemp(prefix="cs-", dir="/tmp")
    port = free_port()
    dashboard_port = free_port() if dashboard else None
    client_port = free_port()
    # Ports that default to fixed numbers are drawn free too: another Ray on this machine (or the
    # tests' embedded one) may hold 10001 (Ray Client) or 52365 (the agent the job server needs).
    args = [
        "start",
        "--head",
        "--port",
        str(port),
        "--temp-dir",
        temp_dir,
        "--num-cpus",
        str(num_cpus),
        "--disable-usage-stats",
        "--include-dashboard",
        "true" if dashboard else "false",
        "--ray-client-server-port",
        str(client_port),
        "--dashboard-agent-listen-port",
        str(free_port()),
    ]
    if dashboard:
        args += ["--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard_port)]
    command = [sys.executable, "-m", "ray.scripts.scripts", *args]
    process = subprocess.Popen(
        command, env=env(), start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    head = Head(process.pid, port, dashboard_port, client_port, temp_dir)
    try:
        output, _ = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        head.stop()
        raise
    if process.returncode != 0:
        head.stop()
        raise RuntimeError(f"ray start failed:\n{output[-3000:]}")
    return head


def start_worker(head: Head, *, num_cpus: int = 1, private_dir: Path | None = None) -> int:
    """Add a worker node to ``head``; return its process group. With ``private_dir``, the node runs
    in a user and mount namespace of its own where a tmpfs hides that folder: storage this node
    writes and nobody else sees, as a node's local disk on a real cluster."""
    command = [
        sys.executable,
        "-m",
        "ray.scripts.scripts",
        "start",
        "--address",
        head.address,
        "--num-cpus",
        str(num_cpus),
        "--disable-usage-stats",
    ]
    if private_dir is not None:
        command = ["unshare", "-rm", "sh", "-c", 'mount -t tmpfs tmpfs "$0" && exec "$@"', str(private_dir), *command]
    process = subprocess.Popen(
        command, env=env(), start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        output, _ = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        kill_group(process.pid)
        raise
    if process.returncode != 0:
        kill_group(process.pid)
        raise RuntimeError(f"ray start (worker) failed:\n{output[-3000:]}")
    return process.pid


def sweep_command(*args: str, ray_version: str | None = None) -> list[str]:
    """``python -m sweep ARGS``; with ``ray_version``, in a process that reports that Ray version
    (what Ray's version check compares with the cluster's: a real mismatch without a second install)."""
    if ray_version is None:
        return [sys.executable, "-m", "sweep", *map(str, args)]
    code = f"import ray; ray.__version__ = {ray_version!r}; from sweep.cli import main; raise SystemExit(main())"
    return [sys.executable, "-c", code, *map(str, args)]


def sweep(
    *args: str, timeout: float = 240, ray_version: str | None = None, **extra_env: str
) -> subprocess.CompletedProcess:
    """Run ``python -m sweep ARGS`` in its own process group; kill what it leaves behind."""
    process = subprocess.Popen(
        sweep_command(*args, ray_version=ray_version),
        env=env(**extra_env),
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        kill_group(process.pid)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def stop_process(process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to one process (not its group)."""
    try:
        os.kill(process.pid, sig)
    except ProcessLookupError:
        pass
