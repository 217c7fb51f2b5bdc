"""Joining Ray: an embedded local Ray, or an existing cluster by address, with one-line errors.

An embedded Ray is started lean (:func:`lean_local_start`): only the GCS, the raylet with its two
agents and the workers, without the processes a one-node Ray that no dashboard watches has no use
for, which would cost seconds of its start and shut-down on a small machine.

Ray's own failures to connect are slow and verbose (a wrong port retries for about 20 seconds and
ends in "Failed to connect to Ray cluster"; a cluster that wants an authentication token fails the
same way). So an explicit ``HOST:PORT`` is probed first with one gRPC call that answers at once:
connection refused means nothing listens there, UNAUTHENTICATED means the cluster uses token
authentication and this process has none. Ray's version check (the cluster stores the Ray and
Python versions it was started with; ``ray.init`` compares them with this process's) is turned
into one line as well.
"""

from __future__ import annotations

import inspect
import os
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sweep.errors import SweepWarning, UsageError

#: What Ray needs to join a cluster that was started with token authentication.
AUTH_HINT = (
    "set RAY_AUTH_MODE=token and give the cluster's token in RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH "
    "or ~/.ray/auth_token (see 'ray get-auth-token' on the head)"
)
#: What an embedded Ray starts without, as ``ray start`` takes them (``--no-monitor``,
#: ``--include-log-monitor=false``, ``--dashboard-agent-listen-port=0``); ``ray.init`` takes none
#: of them, see :func:`lean_local_start`. Measured on a loaded 2-core machine (bench/bench_phases.py):
#: - the autoscaler monitor scales clusters described by a cluster config, which a one-node Ray
#:   started here has none of; it is one more Python process to start, and ``ray.shutdown`` waits
#:   its whole 1 s grace period for it to exit;
#: - the log monitor forwards workers' stdout and stderr to the driver, which ``log_to_driver=False``
#:   drops anyway (the workers' log files are still written under the session folder; a task's
#:   failure reaches the driver with its result, not through the log monitor);
#: - the dashboard agent's HTTP port (Ray's job API on a node, which only a dashboard uses) is a
#:   free one instead of 52365: where another Ray runs on the machine (a ``ray start`` head, another
#:   sweep) that port is taken, the agent retries for 3.3 s, and the raylet, so ``ray.init``, waits.
LEAN_PARAMS: dict[str, Any] = {"no_monitor": True, "include_log_monitor": False, "dashboard_agent_listen_port": 0}
#: Environment of an embedded Ray's processes (set for ``ray.init`` only, like the workers'): no
#: metrics collection, which nothing reads without a dashboard; the raylet then no longer waits for
#: the dashboard agent's metrics exporter before it registers, and workers export nothing.
LEAN_ENV = {"RAY_enable_metrics_collection": "0"}
_MISMATCH = re.compile(
    r"started with:\s*Ray: (\S+)\s*Python: (\S+)\s*This process .*? started with:\s*Ray: (\S+)\s*Python: (\S+)", re.S
)


def local_token() -> tuple[str, str] | None:
    """The Ray authentication token this machine has, and where it was found, in Ray's own order:
    ``$RAY_AUTH_TOKEN``, the file ``$RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token`` (written on a head by
    ``ray start``); None if there is none."""
    token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if token:
        return token, "$RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or os.path.join(os.path.expanduser("~"), ".ray", "auth_token")
    try:
        with open(path) as handle:
            token = handle.read().strip()
    except OSError:
        return None
    return (token, path) if token else None


def split_host_port(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) as (host, port); UsageError if it is neither."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UsageError(f"--address: expected auto, HOST:PORT or ray://HOST:PORT, got '{address}'")
    return host.strip("[]"), int(port)


def probe(address: str, timeout: float = 5.0) -> None:
    """Check that a Ray head answers at ``HOST:PORT`` before ``ray.init`` retries for long.

    A head that requires a token, asked by a process not set up for token authentication
    (``RAY_AUTH_MODE`` unset, as on a head where ``ray start`` wrote ``~/.ray/auth_token``), is
    asked again with the token this machine has (:func:`local_token`); if it takes it, token
    authentication is turned on in this process for ``ray.init`` and a
    :class:`~sweep.errors.SweepWarning` says which token is used.

    Raises
    ------
    UsageError
        Nothing answers there, or the cluster needs a token this process does not have, or it
        refused the one found here.
    """
    import grpc

    host, port = split_host_port(address)
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    with grpc.insecure_channel(target) as channel:
        # Any GCS method will do: the call is refused before the server looks at the request.
        call = channel.unary_unary(
            "/ray.rpc.NodeInfoGcsService/GetClusterId",
            request_serializer=lambda m: m,
            response_deserializer=lambda m: m,
        )

        def status(**options: Any) -> Any:
            try:
                call(b"", timeout=timeout, **options)
            except grpc.RpcError as error:
                return error
            return None

        error = status()
        if error is None:
            return
        if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            raise UsageError(
                f"--address '{address}': expected a running Ray head there, got no answer "
                f"({' '.join(str(error.details()).split())[:160]}); start one with 'ray start --head' "
                "or 'ray up cluster.yaml', or check the host and port"
            )
        if error.code() != grpc.StatusCode.UNAUTHENTICATED or os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
            return  # ray.init says the rest
        found = local_token()
        if found is None:
            raise UsageError(f"--address '{address}': the cluster requires token authentication; {AUTH_HINT}")
        token, where = found
        error = status(metadata=(("authorization", f"Bearer {token}"),))
        if error is not None and error.code() == grpc.StatusCode.UNAUTHENTICATED:
            raise UsageError(f"--address '{address}': the cluster refused the token in {where}; {AUTH_HINT}")
    _turn_on_token_authentication()
    warnings.warn(
        f"the cluster at {address} requires token authentication; using the token in {where}",
        SweepWarning,
        stacklevel=3,
    )


def _turn_on_token_authentication() -> None:
    """What ``RAY_AUTH_MODE=token`` would have done, for this process and the Ray it joins: Ray
    caches its configuration, so it is read again, as Ray's own set-up of a local cluster does."""
    os.environ["RAY_AUTH_MODE"] = "token"
    try:
        from ray._raylet import Config

        Config.initialize("")
    except (ImportError, AttributeError):  # another Ray: ray.init then fails with AUTH_HINT
        pass


def _probe_client(address: str, timeout: float = 5.0) -> None:
    """A Ray Client address: fail at once if nothing listens there (ray.init would retry for long)."""
    import socket

    host, port = split_host_port(address[len("ray://") :])
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as error:
        raise UsageError(
            f"--address '{address}': expected a Ray Client server there (the head's port 10001 by "
            f"default), got no answer ({error.strerror or error})"
        ) from None


def _version_error(address: str, error: BaseException) -> UsageError | None:
    match = _MISMATCH.search(str(error))
    if "Version mismatch" not in str(error) or not match:
        return None
    cluster_ray, cluster_python, ray_here, python_here = match.groups()
    return UsageError(
        f"--address '{address}': expected a cluster running Ray {ray_here} with Python {python_here} like this "
        f"process, got Ray {cluster_ray} with Python {cluster_python}; install the same versions here "
        f"(pip install 'ray[default]=={cluster_ray}') or on the cluster"
    )


def _lean_classes() -> list[tuple[Any, str, type]]:
    """(module, name, lean subclass) for each class of Ray's that ``ray.init`` builds a local node
    with and that this Ray lets :func:`lean_local_start` replace: its ``RayParams`` given
    :data:`LEAN_PARAMS` as defaults, its ``Node`` without the dashboard's API server when
    ``include_dashboard=False``. That server then runs only Ray's usage-stats module, which
    ``ray.init`` turns off for release builds, and ``ray.init`` waits for it (1.2 s measured)
    before it starts the raylet. Ray already goes on without it where it fails to start with
    ``include_dashboard=False``; here the node records the empty dashboard URL it records when the
    server does start that way. A Ray where either class lacks what is replaced keeps its own (it
    then starts everything, as before, only slower)."""
    try:
        from ray._private import node, parameter

        params_accept = inspect.signature(parameter.RayParams).parameters
        api_server_accepts = inspect.signature(node.Node.start_api_server).parameters
    except (ImportError, AttributeError, TypeError, ValueError):
        return []
    swaps: list[tuple[Any, str, type]] = []
    if all(name in params_accept for name in LEAN_PARAMS):

        class LeanRayParams(parameter.RayParams):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **{**LEAN_PARAMS, **kwargs})

        swaps.append((parameter, "RayParams", LeanRayParams))
    if "include_dashboard" in api_server_accepts and isinstance(getattr(node.Node, "webui_url", None), property):

        class LeanNode(node.Node):
            def start_api_server(self, *, include_dashboard: bool | None, **kwargs: Any) -> None:
                if include_dashboard is not False:
                    return super().start_api_server(include_dashboard=include_dashboard, **kwargs)
                self._webui_url = ""

        swaps.append((node, "Node", LeanNode))
    return swaps


@contextmanager
def lean_local_start(env: dict[str, str] | None = None) -> Iterator[None]:
    """Within it, a ``ray.init`` that starts a local Ray starts it lean: :data:`LEAN_PARAMS` and
    no dashboard API server (see :func:`_lean_classes`), with :data:`LEAN_ENV` (where the caller
    has not set them) and ``env`` in its processes' environment.

    The raylet copies this process's environment when it starts, and its workers inherit it; the
    caller's own environment, and Ray's classes, are put back on leaving.
    """
    env = {**{k: v for k, v in LEAN_ENV.items() if k not in os.environ}, **(env or {})}
    saved = {k: os.environ.get(k) for k in env}
    swaps = [(module, name, getattr(module, name), lean) for module, name, lean in _lean_classes()]
    for module, name, _, lean in swaps:
        setattr(module, name, lean)
    os.environ.update(env)
    try:
        yield
    finally:
        for module, name, original, _ in swaps:
            setattr(module, name, original)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def connect(address: str | None, num_cpus: int | None, worker_env: dict[str, str] | None = None) -> bool:
    """Start or join Ray; return True when this call started it (and so must shut it down).

    Parameters
    ----------
    address : str, optional
        ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``. None joins ``$RAY_ADDRESS`` when it is set
        (as inside a Ray job), else starts an embedded local Ray with ``num_cpus`` CPUs.
    num_cpus : int, optional
        CPUs of the embedded Ray (default: all local cores); ignored when joining a cluster.
    worker_env : dict, optional
        Environment variables an embedded Ray's workers start with. Tasks then need no
        ``runtime_env`` of their own, which would make Ray start fresh workers for them (2-5 s
        here) instead of using the ones it starts with itself.
    """
    import ray

    if address and address.startswith(("http://", "https://")):
        raise UsageError(
            f"--address '{address}': expected a Ray address (auto, HOST:PORT, ray://HOST:PORT), got the "
            "dashboard's http address; use it with 'sweep submit', or give the head's GCS port (6379 by default)"
        )
    if address and address != "auto":
        split_host_port(address[len("ray://") :] if address.startswith("ray://") else address)
    if ray.is_initialized():  # a caller (a notebook, the tests) already chose the cluster
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address and address != "auto" and "://" not in address:
        probe(address)
    if address and address.startswith("ray://"):
        _probe_client(address)
    kwargs: dict[str, Any] = dict(logging_level="WARNING", configure_logging=True, log_to_driver=True)
    if address:
        kwargs["address"] = address
    else:
        # "local" always starts an embedded instance; a bare ray.init() would silently join
        # whatever cluster a 'ray start' left running on this machine.
        # Workers' own log lines (Ray's internal warnings under load, e.g. abseil's "Lock blocking")
        # are not forwarded to the terminal: a task's failure reaches the user as one line anyway.
        kwargs.update(
            address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False, log_to_driver=False
        )
    try:
        if address:
            ray.init(**kwargs)
        else:
            with lean_local_start(worker_env):
                ray.init(**kwargs)
    except ConnectionError as error:
        raise UsageError(
            f"--address '{address}': expected a running Ray cluster, got {' '.join(str(error).split())[:200]}; "
            f"check the address, and if the cluster uses token authentication, {AUTH_HINT}"
        ) from None
    except RuntimeError as error:
        mismatch = _version_error(str(address), error)
        if mismatch is None:
            raise
        raise mismatch from None
    return True


def largest_gpu_count() -> float:
    """The most GPUs one live node of the connected cluster has (0.0 on a cluster without any)."""
    import ray

    return max(
        (float(node.get("Resources", {}).get("GPU", 0.0)) for node in ray.nodes() if node.get("Alive")), default=0.0
    )


def check_gpus(num_gpus: float, owner: str) -> None:
    """Refuse, before any task starts, a GPU request that no node of the connected cluster meets.

    Ray would keep such tasks pending for ever (it only warns that they are unschedulable), so the
    run would hang instead of failing. A task runs on one node, so the request is compared with the
    largest node, not the cluster's total. A cluster that adds GPU nodes only on demand (an
    autoscaler with ``min_workers: 0`` for them) has none when this runs: start one first.

    Parameters
    ----------
    num_gpus : float
        GPUs one task asks for (``resources.num_gpus``, or the family's declaration).
    owner : str
        Where the request comes from, for the error (``the spec`` or ``the exponential family``).

    Raises
    ------
    SpecError
        Naming ``resources.num_gpus``, the GPUs available and the value asked for.
    """
    if not num_gpus:
        return
    largest = largest_gpu_count()
    if num_gpus > largest:
        from sweep.errors import SpecError

        where = (
            "no node of this Ray cluster has a GPU"
            if largest == 0
            else f"the largest node of this Ray cluster has {largest:g}"
        )
        raise SpecError(
            "resources.num_gpus",
            f"at most {largest:g} GPUs per task ({where})",
            f"{num_gpus:g} (asked by {owner})",
            raw=True,
        )


def nodes_alive() -> int:
    """How many nodes of the connected cluster are alive."""
    import ray

    return sum(1 for node in ray.nodes() if node.get("Alive"))


def warn_if_not_shared(location: str, is_local: bool, address: str | None) -> None:
    """A :class:`~sweep.errors.SweepWarning` when parts may land on disks the other nodes (or this
    driver) cannot see."""
    if not is_local:
        return
    remote_client = bool(address and address.startswith("ray://"))
    nodes = nodes_alive()
    if nodes > 1 or remote_client:
        where = f"on {nodes} nodes" if nodes > 1 else "on a remote cluster through Ray Client"
        warnings.warn(
            f"results '{location}' are a local path but tasks run {where}: every node must see it "
            "(a shared filesystem), or use an object-store URI such as s3://bucket/results",
            SweepWarning,
            stacklevel=3,
        )
