"""The optional compiled kernels: whether numba is here, and the ``kernel`` field that picks them.

Families with a compiled path declare a ``kernel`` field: ``numpy`` (the vectorised numpy
code, always available), ``numba`` (compiled kernels, ``pip install 'collapse-sweep[fast]'``) or
``auto`` (the default: numba when it is installed). The spec resolves ``auto`` when it is
parsed, on the driver, so ``sweep.json`` records the kernel that computed a folder and a resume
or replay uses the same one. The two kernels draw and round differently, so a chain's values
depend on the kernel (each kernel is reproducible on its own: bit for bit on one machine).

Compiled functions are made with :func:`jit`, which imports numba only when a kernel is first
called, so that importing a family never needs numba, and caches the machine code on disk
(``cache=True``), so that every Ray worker after the first loads it instead of compiling.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from typing import Any

from sweep.errors import SpecError

KERNELS = ("auto", "numpy", "numba")
INSTALL_HINT = "pip install 'collapse-sweep[fast]'"


@functools.cache
def available() -> bool:
    """Whether numba can be imported here (looked up once, without importing it)."""
    return importlib.util.find_spec("numba") is not None


def resolve_kernel(value: Any, path: str) -> str:
    """Reader of a ``kernel`` field: ``auto`` becomes ``numba`` or ``numpy``; ``numba`` must be
    installed."""
    if not isinstance(value, str) or value not in KERNELS:
        raise SpecError(path, f"one of {', '.join(KERNELS)}", value)
    if value == "auto":
        return "numba" if available() else "numpy"
    if value == "numba" and not available():
        raise SpecError(path, f"numpy, or numba installed ({INSTALL_HINT})", "numba, which is not installed", raw=True)
    return value


def take_kernel(section: Any, read: Callable[[Any, str], str] = resolve_kernel) -> str:
    """A family section's ``kernel`` field through ``read`` (default :func:`resolve_kernel`),
    its default ``auto`` included: ``Section.take`` returns a default without reading it, and
    ``auto`` must be resolved like a written value."""
    return read(section.take("kernel", lambda value, path: value, "auto"), section.sub("kernel"))


def jit(**options: Any) -> Callable[[Callable], Callable]:
    """``numba.njit(cache=True, nogil=True, **options)``, compiled at the first call.

    The decorated function stays a plain Python function until then, so modules that define
    kernels import without numba; calling one without numba raises ImportError with the
    install hint.
    """

    def wrap(func: Callable) -> Callable:
        compiled: list[Callable] = []

        @functools.wraps(func)
        def call(*args: Any) -> Any:
            if not compiled:
                try:
                    import numba
                except ImportError as exc:  # pragma: no cover - exercised only without numba
                    raise ImportError(f"{func.__name__} needs numba ({INSTALL_HINT})") from exc
                compiled.append(numba.njit(cache=True, nogil=True, **options)(func))
            return compiled[0](*args)

        call.py_func = func  # the uncompiled function, for tests
        return call

    return wrap


def compile_helpers(namespace: dict, names: tuple[str, ...], **options: Any) -> None:
    """Turn the helper functions ``names`` of a module (its ``globals()``) into numba functions,
    once, before the module's entry points compile: compiled code calls only compiled code, and
    :func:`jit` keeps a function plain until its first call, so the entry points then find their
    helpers as numba dispatchers. Helpers come before their callers in names; ``options`` go to
    ``numba.njit`` (e.g. ``inline="always"``)."""
    import numba

    for name in names:
        func = namespace[name]
        if not isinstance(func, numba.core.dispatcher.Dispatcher):
            namespace[name] = numba.njit(cache=True, nogil=True, error_model="numpy", **options)(func)
