"""Connecting to Ray: a new local instance, or a cluster that is checked before Ray is asked.

``ray.init(address=HOST:PORT)`` waits 20 s to minutes on an address nobody answers at, so a
plain TCP connection (``PROBE_TIMEOUT_S``) tells first whether anything listens there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from collections.abc import Iterator

from engine.errors import ClusterError, ConfigError

RAY_HINT = 'Ray is an optional extra: pip install ".[cluster]"'
PROBE_TIMEOUT_S = 3.0


def split_address(address: str) -> tuple[str, int] | None:
    """(host, port) of "HOST:PORT" or "ray://HOST:PORT"; None for "local" and "auto"."""
    if address in ("local", "auto"):
        return None
    bare = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = bare.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"a Ray address is 'local', 'auto' or HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)  # [::1]:6379 -> ::1


def probe_address(address: str, *, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Raise ClusterError naming ``address`` unless something accepts a TCP connection there."""
    target = split_address(address)
    if target is None:
        return
    try:
        socket.create_connection(target, timeout=timeout_s).close()
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ClusterError(f"cannot reach the Ray cluster at {address}: {reason} "
                           f"(is 'ray start --head' running there, and is the port open?)") from None


@contextlib.contextmanager
def ray_connection(address: str) -> Iterator:
    """Yield the ``ray`` module connected to ``address``: "local" starts an instance on this
    machine (all its cores), "auto" finds a running one, HOST:PORT is a cluster's head.

    A Ray already initialised in this process is reused and left running; one started here is
    shut down on exit, and the SIGTERM handler that ``ray.init`` replaces (with ``sys.exit``) is
    put back.
    """
    probe_address(address)
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--ray-address needs Ray. {RAY_HINT}") from None
    started_here = not ray.is_initialized()
    sigterm_handler = signal.getsignal(signal.SIGTERM)
    if started_here:
        try:
            if address == "local":
                ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
                         configure_logging=False)
            else:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
        except ConnectionError as exc:
            raise ClusterError(f"cannot connect to the Ray cluster at {address}: {exc}") from None
    try:
        yield ray
    finally:
        if started_here:
            ray.shutdown()
            if threading.current_thread() is threading.main_thread() and sigterm_handler is not None:
                signal.signal(signal.SIGTERM, sigterm_handler)
