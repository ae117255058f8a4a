"""The public API of the snakepipe worker library.

    from snakepipe import telemetry
    telemetry.configure(worker_id="pool-a/worker-3")      # or SNAKEPIPE_ENDPOINT=...
    telemetry.emit("python.call.stop", {"duration": 1200}, {"tool": "resize"})

``emit`` and ``span`` never raise and never block. Events are queued and
sent by a background thread; what snakepipe's policy disables, filters or
samples out is dropped before any encoding work. ``stats()`` shows every
count, including every dropped event by reason.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Mapping, Optional, Sequence, Union

from . import _core
from ._config import Config
from ._core import emit, flush, is_enabled, stats
from ._span import call, instrument, span
from .correlation import (
    CORRELATION_HEADER,
    SNAKEPIT_CORRELATION_HEADER,
    correlation,
    correlation_from_metadata,
    correlation_id_from_metadata,
    get_correlation_id,
    new_correlation_id,
    outgoing_metadata,
    reset_correlation_id,
    set_correlation_id,
)

__all__ = [
    "CORRELATION_HEADER",
    "SNAKEPIT_CORRELATION_HEADER",
    "Config",
    "call",
    "configure",
    "correlation",
    "correlation_from_metadata",
    "correlation_id_from_metadata",
    "emit",
    "flush",
    "get_correlation_id",
    "instrument",
    "is_enabled",
    "new_correlation_id",
    "outgoing_metadata",
    "reset_correlation_id",
    "set_correlation_id",
    "shutdown",
    "span",
    "stats",
]


def configure(
    *,
    backend: Optional[str] = None,
    endpoint: Optional[str] = None,
    worker_id: Optional[str] = None,
    pool: Optional[str] = None,
    hostname: Optional[str] = None,
    labels: Optional[Union[Mapping[str, str], Iterable[Sequence[str]]]] = None,
    queue_size: Optional[int] = None,
    batch_size: Optional[int] = None,
    flush_interval: Optional[float] = None,
    stats_interval: Optional[float] = None,
    connect_timeout: Optional[float] = None,
    initial_backoff: Optional[float] = None,
    max_backoff: Optional[float] = None,
    shutdown_timeout: Optional[float] = None,
    max_value_len: Optional[int] = None,
    samplers: Optional[Union[str, Iterable[str]]] = None,
    sampler_interval: Optional[float] = None,
    random_seed: Optional[int] = None,
    stream: Any = None,
    env: Optional[Mapping[str, str]] = None,
) -> Config:
    """Configure the library (again). Arguments left as None come from the
    ``SNAKEPIPE_*`` environment variables, else the defaults.

    backend: ``"grpc"`` (default) streams to snakepipe; ``"stderr"`` writes
        JSON lines to ``stream`` (default ``sys.stderr``); ``"none"`` drops
        everything at once (counted as ``no_backend``).
    endpoint: gRPC target of snakepipe's ingest listener, ``host:port``
        (default ``127.0.0.1:7417``).
    worker_id: stable id of this process, at most 128 bytes (default
        ``<hostname>/<pid>``). pool, hostname, labels: sent in ``Hello``.
    queue_size: events held while sending (default 1024). A full queue
        drops the *new* event (``queue_full``).
    batch_size: most events per frame (default 256); flush_interval: a
        partial batch waits at most this long, in seconds (default 0.05).
    stats_interval: seconds between ``WorkerStats`` frames (default: what
        snakepipe asks for in ``Welcome``, else 10).
    connect_timeout: seconds to wait for ``Welcome``; initial_backoff and
        max_backoff: reconnect delays (exponential, with jitter).
    shutdown_timeout: seconds ``shutdown()`` (and interpreter exit) waits
        to send what is queued (default 2).
    max_value_len: longer metadata values are truncated (default 4096).
    samplers: any of ``"memory"``, ``"cpu"``, ``"gc"`` (off by default);
        sampler_interval: seconds between memory/CPU samples (default 10).
    random_seed: seed the sampling decisions (for tests).
    env: read variables from this mapping instead of ``os.environ``.

    Reconfiguring flushes and stops the previous sender first. Raises
    ``ValueError`` naming every invalid argument or variable.
    """
    args = {
        "backend": backend,
        "endpoint": endpoint,
        "worker_id": worker_id,
        "pool": pool,
        "hostname": hostname,
        "labels": labels,
        "queue_size": queue_size,
        "batch_size": batch_size,
        "flush_interval": flush_interval,
        "stats_interval": stats_interval,
        "connect_timeout": connect_timeout,
        "initial_backoff": initial_backoff,
        "max_backoff": max_backoff,
        "shutdown_timeout": shutdown_timeout,
        "max_value_len": max_value_len,
        "samplers": samplers,
        "sampler_interval": sampler_interval,
        "random_seed": random_seed,
        "stream": stream,
    }
    if labels is not None and not isinstance(labels, Mapping):
        args["labels"] = tuple((str(k), str(v)) for k, v in labels)
    return _core.configure(env=env, **args)


def shutdown(timeout: Optional[float] = None) -> bool:
    """Send everything queued and the final stats, then close the stream.

    Waits at most ``timeout`` seconds (default: ``shutdown_timeout``).
    Returns True when everything queued was sent and snakepipe confirmed
    the end of the stream. Called automatically at interpreter exit. Events
    emitted afterwards are dropped (reason ``closed``) until ``configure``
    is called again.
    """
    return _core.shutdown(timeout)


def stats_dropped() -> Dict[str, int]:
    """Dropped events by reason (the ``dropped`` part of :func:`stats`)."""
    return _core.dropped_snapshot()

