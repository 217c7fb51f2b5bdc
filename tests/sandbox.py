"""Storage that refuses writes, for a child process, whether the tests run as root or not.

Root ignores permission bits, and CI runs as root in a container, so the tests cannot simply
``chmod`` a folder. What works instead, tried in this order:

- a private mount namespace, where a small tmpfs fills up or a read-only bind mount refuses
  writes: ``unshare -m`` as root (needs CAP_SYS_ADMIN), else ``unshare -rm`` (a user namespace:
  root inside it, nobody outside; needs unprivileged user namespaces);
- for a read-only folder only: the immutable attribute (``chattr +i``, binds root too; needs
  CAP_LINUX_IMMUTABLE and a filesystem that has it), or, not as root, plain permission bits.

A test that finds none of them skips and says what it tried (e.g. a container with neither
CAP_SYS_ADMIN nor user namespaces nor CAP_LINUX_IMMUTABLE: run it with --cap-add SYS_ADMIN).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Mount a read-only bind of folder "$0" over itself, then run "$@" there.
_READ_ONLY = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" || exit 99; exec "$@"'


@functools.cache
def mount_namespace() -> tuple[str, ...] | None:
    """A command prefix that runs a command in a private mount namespace where it can mount, or None."""
    if shutil.which("unshare") is None:
        return None
    candidates = [("unshare", "-m"), ("unshare", "-rm")] if os.geteuid() == 0 else [("unshare", "-rm")]
    with tempfile.TemporaryDirectory(prefix="cs-ns-") as folder:
        for prefix in candidates:
            probe = [*prefix, "sh", "-c", 'mount -t tmpfs -o size=64k tmpfs "$0" && touch "$0/x"', folder]
            if subprocess.run(probe, capture_output=True).returncode == 0:
                return prefix
    return None


def _chattr(folder: Path, flag: str) -> bool:
    return (
        shutil.which("chattr") is not None
        and subprocess.run(["chattr", flag, str(folder)], capture_output=True).returncode == 0
    )


@contextmanager
def read_only(folder: Path) -> Iterator[tuple[list[str], str]]:
    """Make ``folder`` refuse new files for commands run with the yielded prefix; yields
    ``(prefix, how)``. Raises LookupError (with what was tried) where nothing works here."""
    namespace = mount_namespace()
    if namespace is not None:
        yield [*namespace, "sh", "-c", _READ_ONLY, str(folder)], f"read-only bind mount ({' '.join(namespace)})"
        return
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield [], "chmod 555"
        finally:
            folder.chmod(0o755)
        return
    if not _chattr(folder, "+i"):
        raise LookupError(
            "running as root with neither a mount namespace (unshare -m / unshare -rm) nor "
            "'chattr +i' here: no way to make a folder refuse root's writes"
        )
    try:
        yield [], "chattr +i"
    finally:
        _chattr(folder, "-i")


def small_disk_command(folder: Path, keep: Path, size: str, command: list[str]) -> list[str]:
    """``command`` run with a ``size`` tmpfs mounted over ``folder`` in a private mount namespace;
    what it leaves there is copied to ``keep`` before the namespace (and the tmpfs) goes. Raises
    LookupError where no mount namespace can be made here."""
    namespace = mount_namespace()
    if namespace is None:
        raise LookupError(
            "cannot create a mount namespace here (unshare -m as root, unshare -rm) to mount a small tmpfs"
        )
    script = (
        f'mount -t tmpfs -o size={size} tmpfs "$0" || exit 99; "$@"; status=$?; cp -a "$0/." "{keep}/"; exit $status'
    )
    return [*namespace, "sh", "-c", script, str(folder), *command]
