"""The hot path (``emit``) and the process-wide state behind it.

Cost model. ``emit`` first looks up a cached *decision* for the event name
(one dict lookup). A decision is ``KEEP`` (send, not sampled), a float rate
in (0, 1) (keep with that probability), or the bound ``__next__`` of the
drop counter for the reason (disabled, filtered, sampled_out, invalid_name,
no_backend, closed). Decisions are computed once per name per policy; a new
policy comes with an empty cache. Only kept events are validated (inline
type checks for the common types, a slow path for everything else), copied
into a plain tuple and appended to a ``collections.deque``. The sender
thread encodes them.

Counters are ``itertools.count`` objects: incrementing one is a single C
call, which the GIL makes atomic, so counts are exact under contention
without a lock on the hot path.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import os
import random
import threading
import time
from collections import deque
from contextvars import ContextVar
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from . import _config
from ._config import Config
from ._policy import CACHE_MAX, KEEP, Policy
from ._values import INT64_MAX, INT64_MIN, clean_measurements, clean_metadata

log = logging.getLogger("snakepipe")

#: The correlation id used by ``emit``/``span`` when none is passed.
CORRELATION_ID: "ContextVar[Optional[str]]" = ContextVar("snakepipe_correlation_id", default=None)

_EMPTY: Dict[str, str] = {}  # shared "no metadata"; never mutated


def _count_value(c: "itertools.count[int]") -> int:
    # itertools.count has no public read; its repr is "count(N)".
    return int(repr(c)[6:-1])


class Counters:
    """Cumulative named counters. ``incrementer(name)`` returns a callable
    that adds one (a single C call, atomic under the GIL)."""

    def __init__(self) -> None:
        self._c: Dict[str, "itertools.count[int]"] = {}
        self._lock = threading.Lock()

    def incrementer(self, name: str) -> Callable[[], int]:
        c = self._c.get(name)
        if c is None:
            with self._lock:
                c = self._c.setdefault(name, itertools.count())
        return c.__next__

    def add(self, name: str, n: int) -> None:
        inc = self.incrementer(name)
        for _ in range(n):
            inc()

    def value(self, name: str) -> int:
        c = self._c.get(name)
        return _count_value(c) if c is not None else 0

    def snapshot(self) -> Dict[str, int]:
        out = {}
        for name, c in list(self._c.items()):
            v = _count_value(c)
            if v:
                out[name] = v
        return out


# --- process-wide state ------------------------------------------------------

_lock = threading.RLock()  # quick state changes (policy, install); never held while waiting
_config_lock = threading.RLock()  # serializes configure/shutdown, which wait for the sender
_drops = Counters()  # dropped events by reason
_totals = Counters()  # "queued"
_logged: set = set()  # drop reasons already logged once
_rng = random.Random()
_rt: Optional["Runtime"] = None  # current runtime (None before configure)
_sent_base = 0  # events sent by runtimes that were replaced
_atexit_registered = False

# --- hot-path globals (rebound by _install_*) ---------------------------------

_decisions_get: Callable[[Any], Any] = {}.get
_decide: Callable[[Any], Any]
_random = _rng.random
_queue: "deque[tuple]" = deque()
_capacity = 0
_wake_at = 1 << 62
_wake: Callable[[], None] = lambda: None
_queued = _totals.incrementer("queued")
_sampled_out = _drops.incrementer("sampled_out")
_time_ns = time.time_ns
_cid_get = CORRELATION_ID.get


def _log_once(reason: str, detail: str) -> None:
    if reason in _logged:
        return
    _logged.add(reason)
    log.warning("dropping event (%s): %s; further drops for this reason are only counted", reason, detail)


def drop(reason: str, n: int = 1, detail: str = "") -> None:
    """Count ``n`` dropped events (and log the first drop of each kind)."""
    if n <= 0:
        return
    _drops.add(reason, n)
    if detail and reason not in ("sampled_out", "filtered", "disabled"):
        _log_once(reason, detail)


def _queue_full() -> None:
    _drops.incrementer("queue_full")()
    if "queue_full" not in _logged:
        _log_once("queue_full", f"queue of {_capacity} events is full (drop-newest)")


def _emit_failed(name: object, measurements: object = None) -> None:
    # Anything unexpected in emit lands here; never raise into the caller.
    try:
        hash(name)
    except Exception:
        drop("invalid_name", 1, f"unhashable event name of type {type(name).__name__}")
        return
    drop("internal_error", 1, f"unexpected error while emitting {name!r}")


def _slow_measurements(m: object) -> Optional[Dict[str, Any]]:
    out, reason, detail = clean_measurements(m)
    if out is None:
        drop(reason, 1, detail)
    return out


def _slow_metadata(md: object) -> Optional[Dict[str, str]]:
    out, reason, detail = clean_metadata(md)
    if out is None:
        drop(reason, 1, detail)
    return out


def emit(
    name: str,
    measurements: Optional[Mapping[str, Any]],
    metadata: Optional[Mapping[str, Any]] = None,
    *,
    correlation_id: Optional[str] = None,
) -> None:
    """Record one event. Never raises, never blocks.

    ``measurements`` maps keys to ``int`` (int64), ``float`` (finite),
    ``bool`` (sent as 1/0) or ``str``; ``None`` values are left out.
    ``metadata`` values are sent as strings (``str(v)``); ``None`` values are
    left out. A bad key or value drops the event, counted in ``stats()``.
    ``correlation_id`` defaults to the context variable
    (:func:`snakepipe.telemetry.set_correlation_id`).
    """
    try:
        d = _decisions_get(name)
        if d is None:
            d = _decide(name)
        if d is KEEP:
            rate = 0.0
        elif d.__class__ is float:
            if _random() >= d:
                _sampled_out()
                return
            rate = d
        else:
            d()
            return
        if measurements.__class__ is dict:
            m: Any = measurements.copy()  # type: ignore[union-attr]
            for k, v in m.items():
                t = v.__class__
                if k.__class__ is not str or not (
                    (t is int and INT64_MIN <= v <= INT64_MAX)
                    or (t is float and v - v == 0.0)
                    or t is str
                    or t is bool
                ):
                    m = _slow_measurements(m)
                    if m is None:
                        return
                    break
        else:
            m = _slow_measurements(measurements)
            if m is None:
                return
        md: Any
        if metadata is None:
            md = _EMPTY
        elif metadata.__class__ is dict:
            md = metadata.copy()  # type: ignore[attr-defined]
            for k, v in md.items():
                if k.__class__ is not str or v.__class__ is not str:
                    md = _slow_metadata(md)
                    if md is None:
                        return
                    break
        else:
            md = _slow_metadata(metadata)
            if md is None:
                return
        if correlation_id is None:
            cid = _cid_get()
        elif correlation_id.__class__ is str:
            cid = correlation_id
        else:
            cid = str(correlation_id)
        q = _queue
        n = len(q)
        if n >= _capacity:
            _queue_full()
            return
        q.append((name, m, md, _time_ns(), cid, rate))
        _queued()
        if n >= _wake_at:
            _wake()
    except Exception:
        _emit_failed(name)


# --- decisions ----------------------------------------------------------------


def _install_decider(classify: Callable[[object], Tuple[str, float]]) -> None:
    """Install a fresh decision cache driven by ``classify``."""
    global _decisions_get, _decide
    cache: Dict[Any, Any] = {}
    drops = _drops

    def decide(name: Any) -> Any:
        outcome, rate = classify(name)
        if outcome == "keep":
            d: Any = KEEP
        elif outcome == "sample":
            d = float(rate)
        else:
            d = drops.incrementer(outcome)
            if outcome == "invalid_name":
                _log_once(outcome, f"{name!r} is not a dotted ASCII event name")
        if len(cache) >= CACHE_MAX:
            cache.clear()
        cache[name] = d
        return d

    # Bind decide before get: a racing emit may briefly pair the new get with
    # the old decide, which only decides one event by the old policy.
    _decide = decide
    _decisions_get = cache.get


def _install_fixed(reason: str) -> None:
    _install_decider(lambda name: (reason, 0.0))


def _unconfigured_decide(name: Any) -> Any:
    _autoconfigure()
    return _decide(name)


_decide = _unconfigured_decide


def _autoconfigure() -> None:
    """First emit before configure(): configure from the environment.

    ``SNAKEPIPE_ENDPOINT`` (or ``SNAKEPIPE_BACKEND``) alone turns the library
    on; with neither set, the backend is ``none``.
    """
    with _config_lock, _lock:
        if _rt is not None or _decide is not _unconfigured_decide:
            return
        default = "grpc" if os.environ.get("SNAKEPIPE_ENDPOINT") else "none"
        try:
            cfg = _config.build({}, default_backend=default)
        except (ValueError, TypeError) as e:
            log.warning("%s; telemetry is off (backend none)", e)
            cfg = _config.Config(backend="none").with_identity()
        _start(cfg, worker_id_given=bool(os.environ.get("SNAKEPIPE_WORKER_ID")))


# --- runtime ------------------------------------------------------------------


class Runtime:
    """One configured instance: config, queue, policy, sender thread."""

    def __init__(self, cfg: Config, worker_id_given: bool) -> None:
        self.config = cfg
        self.worker_id_given = worker_id_given
        self.queue: "deque[tuple]" = deque()
        self.wake_event = threading.Event()
        self.policy = Policy()
        self.rejected: Dict[str, int] = {}
        self.connected = False
        self.connections = 0
        self.closed = False
        self.sent_retired = False  # its sender's count moved into _sent_base
        self.sender: Any = None
        self.samplers: Any = None

    @property
    def reconnects(self) -> int:
        return max(0, self.connections - 1)


def set_policy(rt: Runtime, p: Policy) -> bool:
    """Install a policy received for ``rt`` (if ``rt`` is still current)."""
    with _lock:
        if rt is not _rt or rt.closed:
            return False
        rt.policy = p
        if rt.config.backend != "none":
            _install_decider(p.classify)
        return True


def update_policy(rt: Runtime, change: Callable[[Policy], Policy]) -> bool:
    """Apply ``change`` to the current policy of ``rt`` and install it."""
    with _lock:
        return set_policy(rt, change(rt.policy))


def _install_queue(rt: Runtime) -> None:
    global _queue, _capacity, _wake_at, _wake
    ev = rt.wake_event
    is_set = ev.is_set
    set_ = ev.set

    def wake() -> None:
        if not is_set():
            set_()

    _wake = wake
    _wake_at = max(0, rt.config.batch_size - 1)
    _capacity = rt.config.queue_size
    _queue = rt.queue


def _start(cfg: Config, worker_id_given: bool) -> Runtime:
    """Create, install and start a runtime (caller holds _lock)."""
    global _rt, _random, _atexit_registered
    rt = Runtime(cfg, worker_id_given)
    if cfg.random_seed is not None:
        _rng.seed(cfg.random_seed)
    _random = _rng.random
    if cfg.backend == "none":
        _install_fixed("no_backend")
    else:
        from ._sender import make_sender

        rt.sender = make_sender(rt)
        _install_queue(rt)
        _install_decider(rt.policy.classify)
    _rt = rt
    if rt.sender is not None:
        rt.sender.start()
    if cfg.samplers:
        from .samplers import Samplers

        rt.samplers = Samplers(cfg.samplers, cfg.sampler_interval)
        rt.samplers.start()
    if not _atexit_registered:
        # Registered after grpc is imported, so it runs before grpc's own
        # exit handlers (atexit is last-in, first-out).
        atexit.register(_at_exit)
        _atexit_registered = True
    return rt


def configure(env: Optional[Mapping[str, str]] = None, **kwargs: Any) -> Config:
    """Configure (or reconfigure) the library; see ``telemetry.configure``.

    A running configuration is stopped (flushed) first; events emitted
    meanwhile are dropped as ``closed``.
    """
    cfg = _config.build(kwargs, env)
    given = bool(kwargs.get("worker_id")) or bool((os.environ if env is None else env).get("SNAKEPIPE_WORKER_ID"))
    with _config_lock:
        old = _rt
        if old is not None and not old.closed:
            _close(old)
            _stop(old, old.config.shutdown_timeout)
        with _lock:
            _start(cfg, given)
    return cfg


def _close(rt: Runtime) -> None:
    """Mark ``rt`` closed and drop new events (quick; under _lock)."""
    with _lock:
        rt.closed = True
        _install_fixed("closed")


def _stop(rt: Runtime, timeout: Optional[float]) -> bool:
    """Stop a closed runtime's samplers and sender, waiting up to
    ``timeout``. Must not hold _lock: the sender takes it to apply policy."""
    global _sent_base
    if rt.samplers is not None:
        rt.samplers.stop()
    ok = True
    if rt.sender is not None:
        ok = rt.sender.shutdown(rt.config.shutdown_timeout if timeout is None else timeout)
        with _lock:
            _sent_base += rt.sender.sent
            rt.sent_retired = True
    return ok


def shutdown(timeout: Optional[float] = None) -> bool:
    """Flush, send final stats, close the stream; later emits are dropped
    (reason ``closed``). Returns True if everything queued was sent."""
    with _config_lock:
        rt = _rt
        if rt is None:
            with _lock:
                _install_fixed("closed")
            return True
        if rt.closed:
            return True
        _close(rt)
        return _stop(rt, timeout)


def flush(timeout: Optional[float] = None) -> bool:
    """Wait until everything queued so far has been sent (or dropped).
    Returns False on timeout or when not connected in time."""
    rt = _rt
    if rt is None or rt.sender is None or rt.closed:
        return True
    return bool(rt.sender.flush(timeout))


def stats() -> Dict[str, Any]:
    """Counters of this process (see ``telemetry.stats``)."""
    rt = _rt
    sender = rt.sender if rt is not None else None
    return {
        "backend": rt.config.backend if rt is not None else None,
        "worker_id": rt.config.worker_id if rt is not None else None,
        "connected": bool(rt is not None and rt.connected),
        "queue_depth": len(rt.queue) if rt is not None else 0,
        "queue_capacity": rt.config.queue_size if rt is not None else 0,
        "queued": _totals.value("queued"),
        "sent": _sent_base + (sender.sent if rt is not None and sender is not None and not rt.sent_retired else 0),
        "dropped": _drops.snapshot(),
        "rejected": dict(rt.rejected) if rt is not None else {},
        "reconnects": rt.reconnects if rt is not None else 0,
        "policy": rt.policy.as_dict() if rt is not None else {},
    }


def queued_total() -> int:
    return _totals.value("queued")


def dropped_snapshot() -> Dict[str, int]:
    return _drops.snapshot()


def sent_base() -> int:
    return _sent_base


def current() -> Optional[Runtime]:
    """The current runtime (for the sender and tests)."""
    return _rt


def is_enabled() -> bool:
    """True when a backend other than ``none`` is running and the policy in
    force has ``enabled`` set."""
    rt = _rt
    return rt is not None and not rt.closed and rt.config.backend != "none" and rt.policy.enabled


def _at_exit() -> None:
    try:
        rt = _rt
        if rt is not None and not rt.closed:
            shutdown(rt.config.shutdown_timeout)
    except Exception:  # never fail interpreter exit
        log.debug("shutdown at exit failed", exc_info=True)


def _after_fork_in_child() -> None:
    """A forked child gets fresh counters, an empty queue and its own sender.

    The parent's queued events stay with the parent (which sends them); the
    child's worker id is recomputed (``<host>/<pid>``) or, if it was set
    explicitly, suffixed with ``/<pid>`` so the host sees two workers.
    """
    global _lock, _config_lock, _drops, _totals, _logged, _rt, _sent_base, _queued, _sampled_out
    _lock = threading.RLock()
    _config_lock = threading.RLock()
    _drops = Counters()
    _totals = Counters()
    _logged = set()
    _queued = _totals.incrementer("queued")
    _sampled_out = _drops.incrementer("sampled_out")
    _sent_base = 0
    _rng.seed()
    parent = _rt
    _rt = None
    if parent is not None and parent.samplers is not None:
        parent.samplers.stop()  # its gc callback was inherited; its thread was not
    if parent is None:
        _reset_decider()
        return
    if parent.closed:
        _install_fixed("closed")
        _rt = parent
        return
    cfg = parent.config
    from dataclasses import replace

    if parent.worker_id_given:
        cfg = replace(cfg, worker_id=f"{cfg.worker_id}/{os.getpid()}"[:128])
    else:
        cfg = replace(cfg, worker_id="").with_identity()
    try:
        with _lock:
            rt = _start(cfg, parent.worker_id_given)
            rt.policy = parent.policy.replace()
            if cfg.backend != "none":
                _install_decider(rt.policy.classify)
    except Exception:
        log.warning("could not restart the sender after fork; telemetry is off", exc_info=True)
        _install_fixed("no_backend")


def _reset_decider() -> None:
    global _decide, _decisions_get
    _decide = _unconfigured_decide
    _decisions_get = {}.get


def _before_fork() -> None:
    # gRPC cannot be used in a child forked while one of its calls is
    # active, so the sender ends its stream and parks before the fork.
    try:
        rt = _rt
        pause = getattr(rt.sender, "pause", None) if rt is not None and not rt.closed else None
        if pause is not None:
            pause(1.0)
    except Exception:
        log.debug("pausing the sender before fork failed", exc_info=True)


def _after_fork_in_parent() -> None:
    try:
        rt = _rt
        resume = getattr(rt.sender, "resume", None) if rt is not None else None
        if resume is not None:
            resume()
    except Exception:
        log.debug("resuming the sender after fork failed", exc_info=True)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)


def _reset_for_tests() -> None:
    """Stop everything and return to the unconfigured state (tests only)."""
    global _rt, _drops, _totals, _logged, _sent_base, _queued, _sampled_out
    with _config_lock:
        rt = _rt
        if rt is not None and not rt.closed:
            _close(rt)
            _stop(rt, 1.0)
        _rt = None
        _drops = Counters()
        _totals = Counters()
        _logged = set()
        _queued = _totals.incrementer("queued")
        _sampled_out = _drops.incrementer("sampled_out")
        _sent_base = 0
        _reset_decider()
