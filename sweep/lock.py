"""The lock a ``sweep run`` holds on its results folder, so that two runs never compute the same chains.

The lock is a file, ``<folder>/.sweep.lock``, naming its holder: host, process id (with the
process's start time and pid namespace, so that a reused pid is not taken for the holder), since
when, and a random token. A second run on the folder is refused with one line naming the holder,
unless the holder is gone: on the same host and in the same pid namespace, its process no longer
runs. Then the stale lock (a killed run's) is taken over, with a :class:`~sweep.errors.SweepWarning`.
A holder on another host cannot be checked from here; the error then says which file to delete
once that run is known to be dead.

What each kind of storage allows:

- A local folder (or one mounted over NFS): the lock file is written under a temporary name and
  hard-linked to ``.sweep.lock``, which fails if the name exists, so it appears atomically and
  whole (``O_EXCL`` creation where the filesystem has no hard links). The check and take-over of
  a stale lock run under ``flock`` on the folder, so two runs that find the same stale lock do
  not both take it (where ``flock`` is refused, as on some NFS mounts, without that guard).
- Other pyarrow filesystems (``s3://``, ``gs://``, ...) have no exclusive create: the lock is
  written if absent, then read back, and the run goes on only if it reads its own token. Two runs
  started within the same fraction of a second can both pass; runs started further apart cannot.
"""

from __future__ import annotations

import datetime as _dt
import errno
import json
import os
import socket
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

import psutil
import pyarrow.fs as pafs

from sweep.errors import SweepWarning, UsageError
from sweep.store import LOCK_FILE, Store


def _pid_namespace() -> int | None:
    """This process's pid namespace (Linux), so that containers sharing a host name are told apart."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


@dataclass(frozen=True)
class Holder:
    """Who holds a folder's lock, as written in the lock file."""

    host: str
    pid: int
    started: float | None  # the process's start time (psutil), to tell a reused pid apart
    pid_namespace: int | None
    since: str
    token: str

    @classmethod
    def this_process(cls) -> Holder:
        return cls(
            socket.gethostname(),
            os.getpid(),
            psutil.Process().create_time(),
            _pid_namespace(),
            _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            uuid.uuid4().hex,
        )

    @classmethod
    def parse(cls, text: str) -> Holder:
        """The holder a lock file names; an unreadable file names an unknown holder (never gone)."""
        try:
            raw = json.loads(text)
            return cls(
                str(raw["host"]),
                int(raw["pid"]),
                raw.get("started"),
                raw.get("pid_namespace"),
                str(raw.get("since", "?")),
                str(raw["token"]),
            )
        except (ValueError, TypeError, KeyError):
            return cls("?", 0, None, None, "?", "")

    def describe(self) -> str:
        if not self.token:
            return "a lock file that cannot be read"
        return f"pid {self.pid} on host {self.host}, since {self.since}"

    @property
    def here(self) -> bool:
        """On this host, in this pid namespace: whether it is alive can be checked."""
        return bool(self.token) and self.host == socket.gethostname() and self.pid_namespace == _pid_namespace()

    def is_gone(self) -> bool:
        """True only when the holder is known to be dead (see :attr:`here`)."""
        if not self.here:
            return False
        try:
            process = psutil.Process(self.pid)
            if self.started is not None and abs(process.create_time() - float(self.started)) > 1.0:
                return True  # the pid now belongs to another process
            return process.status() == psutil.STATUS_ZOMBIE  # killed, not yet reaped
        except psutil.NoSuchProcess:
            return True


class FolderLock:
    """The lock of one results folder; a context manager that acquires and releases it.

    Parameters
    ----------
    store : Store
        The results folder. It is created if needed; if the lock created it and it is still
        empty when the lock is released, it is removed again (a refused run writes nothing).
    """

    def __init__(self, store: Store):
        self.store = store
        self.path = f"{store.root}/{LOCK_FILE}"
        self.holder: Holder | None = None
        #: The stale holder this lock was taken over from, if any.
        self.taken_over: Holder | None = None
        self._created: str | None = None  # the topmost folder this lock created (local only)

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def acquire(self) -> FolderLock:
        """Take the lock, or take over a stale one.

        Raises
        ------
        UsageError
            Another run holds the lock (one line naming it).
        OSError
            The folder cannot be created or written.
        """
        me = Holder.this_process()
        self._make_folder()
        try:
            with self._guard():
                holder = self._read()
                if holder is not None and holder.is_gone():
                    self._delete()
                    self.taken_over, holder = holder, None
                if holder is None and self._create(me):
                    holder = self._read()
                if holder is None or holder.token != me.token:
                    raise UsageError(self._busy(holder))
        except BaseException:
            self._remove_created_folder()
            raise
        self.holder = me
        if self.taken_over is not None:
            warnings.warn(
                f"results folder '{self.store.location}': took over the lock of an earlier run that is no "
                f"longer running ({self.taken_over.describe()})",
                SweepWarning,
                stacklevel=2,
            )
        return self

    def release(self) -> None:
        """Delete the lock file if this lock still holds it; never raises for a missing file."""
        if self.holder is None:
            return
        try:
            holder = self._read()
            if holder is not None and holder.token == self.holder.token:
                self._delete()
        except OSError:  # e.g. the folder became read-only: the lock stays, and is stale from now on
            pass
        self.holder = None
        self._remove_created_folder()

    # -- storage -------------------------------------------------------------------------
    def _busy(self, holder: Holder | None) -> str:
        who = holder.describe() if holder is not None else "a run whose lock vanished as it was read"
        message = (
            f"results folder '{self.store.location}': expected no other 'sweep run' on it, got one running "
            f"({who}); wait for it to end or stop it"
        )
        if holder is None or not holder.here:
            message += f", and delete '{self.path}' if that run is known to be dead"
        return message

    def _make_folder(self) -> None:
        if self.store.is_local:
            missing = self.store.root
            while not os.path.isdir(os.path.dirname(missing) or ".") and os.path.dirname(missing) != missing:
                missing = os.path.dirname(missing)
            self._created = None if os.path.isdir(self.store.root) else os.path.abspath(missing)
        self.store.fs.create_dir(self.store.root, recursive=True)

    def _remove_created_folder(self) -> None:
        """Remove the folders :meth:`_make_folder` created, innermost first, while they are empty."""
        if self._created is None:
            return
        folder = os.path.abspath(self.store.root)
        while True:
            try:
                os.rmdir(folder)
            except OSError:
                break
            if folder == self._created:
                break
            folder = os.path.dirname(folder)
        self._created = None

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Serialise check-and-take-over between processes: flock on the folder (local only)."""
        if not self.store.is_local:
            yield
            return
        import fcntl

        descriptor = os.open(self.store.root, os.O_RDONLY)
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX)
            except OSError:  # no flock here (some NFS mounts): the link below is still atomic
                pass
            yield
        finally:
            os.close(descriptor)  # releases the flock

    def _read(self) -> Holder | None:
        try:
            with self.store.fs.open_input_stream(self.path) as stream:
                return Holder.parse(stream.read().decode(errors="replace"))
        except FileNotFoundError:
            return None
        except OSError:
            if self.store.fs.get_file_info(self.path).type == pafs.FileType.NotFound:
                return None
            raise

    def _delete(self) -> None:
        try:
            self.store.fs.delete_file(self.path)
        except FileNotFoundError:
            pass

    def _create(self, me: Holder) -> bool:
        """Write the lock naming ``me`` if there is none; False if one appeared meanwhile."""
        text = json.dumps(asdict(me), indent=1)
        if not self.store.is_local:  # no exclusive create: write, and let acquire() read it back
            with self.store.fs.open_output_stream(self.path) as stream:
                stream.write(text.encode())
            return True
        temporary = f"{self.path}.{me.token}"
        with open(temporary, "x") as handle:
            handle.write(text)
        try:
            os.link(temporary, self.path)  # atomic, and never replaces an existing lock
            return True
        except FileExistsError:
            return False
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            return self._create_exclusive(text)  # a filesystem without hard links
        finally:
            os.unlink(temporary)

    def _create_exclusive(self, text: str) -> bool:
        try:
            descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        return True
