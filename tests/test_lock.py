"""The results folder's lock (sweep.lock): a second run on a folder is refused with one line naming the
holder, a dead holder's lock is taken over, and the lock goes when the run ends, however it ends."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from sweep.errors import SweepWarning, UsageError
from sweep.lock import FolderLock, Holder
from sweep.store import LOCK_FILE, Store
from tests.raynodes import ROOT, env, kill_group, sweep_command

RAW = {
    "name": "locked",
    "seed": 3,
    "generations": 20,
    "replicates": 40,
    "block_size": 10,
    "family": {"name": "categorical", "k": 8, "probs": "uniform"},
    "grid": {"n": [10, 30], "policy": ["replace"]},
}
#: Takes the lock of the folder in argv[1] in a process of its own, says so, holds it until stdin closes.
HOLDER = """
import sys
from sweep.lock import FolderLock
from sweep.store import Store
lock = FolderLock(Store(sys.argv[1])).acquire()
print("locked", flush=True)
sys.stdin.read()
lock.release()
"""


def dead_pid() -> int:
    """The pid of a process of this host that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    assert not psutil.pid_exists(process.pid)
    return process.pid


def write_lock(folder, **fields) -> None:
    """A lock file as an earlier run would have left it, with some fields replaced."""
    holder = {**Holder.this_process().__dict__, **fields}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / LOCK_FILE).write_text(json.dumps(holder))


def test_second_run_is_refused_while_another_process_holds_the_lock(tmp_path, write_spec, cli):
    """While another process holds the folder's lock, `sweep run` exits 2 with one line naming that
    process's pid and host, and writes nothing; once it lets go, the lock is free and the folder
    it created for the lock is gone."""
    spec, location = write_spec(RAW), tmp_path / "locked"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(location)],
        env=env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        status, _, err = cli("run", spec, "--out", tmp_path, "--no-progress")
        assert status == 2
        assert re.fullmatch(
            rf"error: results folder '{location}': expected no other 'sweep run' on it, got one running "
            rf"\(pid {holder.pid} on host {re.escape(socket.gethostname())}, since [0-9T:+-]+\); wait for it to end or "
            r"stop it\n",
            err,
        ), err
        assert [p.name for p in location.iterdir()] == [LOCK_FILE]  # no sweep.json, no parts
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0
    finally:
        kill_group(holder.pid)
    assert not location.exists()
    with FolderLock(Store(str(location))):
        assert json.loads((location / LOCK_FILE).read_text())["pid"] == psutil.Process().pid


def test_lock_of_a_dead_run_is_taken_over(ray_session, tmp_path, write_spec, cli):
    """A lock left by a killed run on this host (its pid ended, or reused by another process) is taken
    over with one warning line naming it; the run completes and removes the lock."""
    spec, location = write_spec(RAW), tmp_path / "locked"
    pid = dead_pid()
    write_lock(location, pid=pid)
    status, out, err = cli("run", spec, "--out", tmp_path, "--no-progress")
    assert status == 0 and "computed 80 chains" in out
    assert err.splitlines() == [
        f"warning: results folder '{location}': took over the lock of an earlier run that is "
        f"no longer running (pid {pid} on host {socket.gethostname()}, since "
        + re.search(r"since (\S+)\)", err).group(1)
        + ")"
    ]
    assert not (location / LOCK_FILE).exists()
    # a pid that is alive again, but as another process than the one that took the lock
    write_lock(location, pid=psutil.Process().pid, started=psutil.Process().create_time() - 3600)
    with pytest.warns(SweepWarning, match="took over the lock"), FolderLock(Store(str(location))):
        pass


def test_live_or_unknown_holders_are_not_taken_over(tmp_path):
    """A holder that is alive, on another host, in another pid namespace, or a lock file that cannot be
    read: the lock is refused (never taken over), and the error says which file to delete when
    this host cannot check the holder."""
    location = tmp_path / "locked"
    cases = {
        "alive": dict(pid=psutil.Process().pid),
        "other host": dict(host="elsewhere.example", pid=dead_pid()),
        "other pid namespace": dict(pid=dead_pid(), pid_namespace=1),
    }
    for label, fields in cases.items():
        write_lock(location, **fields)
        with pytest.raises(UsageError) as error:
            FolderLock(Store(str(location))).acquire()
        message = str(error.value)
        assert message.startswith(
            f"results folder '{location}': expected no other 'sweep run' on it, got one running "
            f"(pid {fields['pid']} on host "
        ), label
        delete = f"and delete '{location}/{LOCK_FILE}' if that run is known to be dead"
        assert (delete in message) == (label != "alive"), label
    (location / LOCK_FILE).write_text("{half a lo")
    with pytest.raises(UsageError, match=r"got one running \(a lock file that cannot be read\)"):
        FolderLock(Store(str(location))).acquire()
    assert sorted(p.name for p in location.iterdir()) == [LOCK_FILE]


def test_lock_is_released_on_errors(ray_session, tmp_path, write_spec, cli):
    """A run refused for another spec, or by an address where nothing listens, leaves no lock behind,
    and a folder the lock created is removed again."""
    spec = write_spec(RAW)
    assert cli("run", spec, "--out", tmp_path, "--no-progress")[0] == 0
    status, _, err = cli("run", spec, "--out", tmp_path, "--set", "seed=999", "--no-progress")
    assert status == 2 and "holds a different sweep" in err
    assert not (tmp_path / "locked" / LOCK_FILE).exists()
    status, _, err = cli("run", spec, "--out", tmp_path / "new" / "deeper", "--address", "nohost", "--no-progress")
    assert status == 2 and err.startswith("error: --address: expected auto, HOST:PORT")
    assert not (tmp_path / "new").exists()


def test_lock_is_released_on_keyboard_interrupt(ray_session, tmp_path, write_spec, cli, monkeypatch):
    """Ctrl-C while tasks run (a KeyboardInterrupt raised where the driver waits for them): exit 130,
    the lock is gone, and the next run resumes."""
    import sweep.runner

    execute = sweep.runner.execute

    def interrupted(*args, **kwargs):
        assert (tmp_path / "locked" / LOCK_FILE).exists()
        raise KeyboardInterrupt

    spec = write_spec(RAW)
    monkeypatch.setattr(sweep.runner, "execute", interrupted)
    status, _, err = cli("run", spec, "--out", tmp_path, "--no-progress")
    assert status == 130 and err == "interrupted: complete parts are kept; rerun the same command to resume\n"
    assert not (tmp_path / "locked" / LOCK_FILE).exists()
    monkeypatch.setattr(sweep.runner, "execute", execute)
    assert cli("run", spec, "--out", tmp_path, "--no-progress")[0] == 0


@pytest.mark.slow
def test_lock_is_released_on_sigint(tmp_path, write_spec):
    """SIGINT to a real `sweep run` process mid-sweep: exit 130, and its lock is gone."""
    spec, location = write_spec(dict(RAW, generations=4000)), tmp_path / "locked"
    driver = subprocess.Popen(
        sweep_command("run", spec, "--out", tmp_path, "--num-cpus", "1", "--blocks-per-task", "1", "--no-progress"),
        env=env(),
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while driver.poll() is None and time.monotonic() < deadline and not list(location.rglob("part-*.parquet")):
            time.sleep(0.05)
        assert (location / LOCK_FILE).exists() and driver.poll() is None, "the run ended before it could be interrupted"
        driver.send_signal(signal.SIGINT)
        _, err = driver.communicate(timeout=120)
    finally:
        kill_group(driver.pid)
    assert driver.returncode == 130, err
    assert "interrupted: complete parts are kept; rerun the same command to resume" in err
    assert not (location / LOCK_FILE).exists()


#: 8 tasks of about 3 s each on one CPU: a run that is still busy when a second one starts.
LONG = {
    "name": "locked",
    "seed": 3,
    "generations": 1000,
    "replicates": 40,
    "block_size": 5,
    "family": {"name": "gaussian", "dim": 1, "path": "sample"},
    "grid": {"n": [20000], "policy": ["replace"]},
    "record": {"every": 100},
}


@pytest.mark.slow
def test_second_sweep_run_is_refused_mid_sweep(tmp_path, write_spec):
    """Two real `sweep run` processes on one folder: the second, started while the first is computing,
    exits 2 naming the first; the first computes every chain once and leaves no lock behind."""
    args = ("run", write_spec(LONG), "--out", tmp_path, "--num-cpus", "1", "--blocks-per-task", "1", "--no-progress")
    location = tmp_path / "locked"
    first = subprocess.Popen(
        sweep_command(*args),
        env=env(),
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    second = None
    try:
        deadline = time.monotonic() + 180
        while first.poll() is None and time.monotonic() < deadline and not list(location.rglob("part-*.parquet")):
            time.sleep(0.05)
        second = subprocess.Popen(
            sweep_command(*args),
            env=env(),
            cwd=ROOT,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        second_out, second_err = second.communicate(timeout=240)
        out, err = first.communicate(timeout=240)
    finally:
        for process in (first, second):
            if process is not None:
                kill_group(process.pid)
    assert second.returncode == 2, f"the second run was not refused: {second_out}{second_err}"
    assert second_err.startswith(
        f"error: results folder '{location}': expected no other 'sweep run' on it, got one "
        f"running (pid {first.pid} on host {socket.gethostname()}, since "
    )
    assert first.returncode == 0, err
    assert "computed 40 chains in 8 tasks" in out
    assert not (location / LOCK_FILE).exists()
