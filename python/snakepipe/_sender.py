"""Background senders: the gRPC stream to snakepipe and the stderr backend.

Threads. ``GrpcSender`` runs one thread ("snakepipe-sender") that connects,
reads control frames and reconnects; gRPC's own request thread pulls frames
from ``GrpcSender._requests`` (a generator), which drains the queue, encodes
batches and sends periodic ``WorkerStats``. ``StderrSender`` runs one thread
that drains the queue and writes JSON lines.

Delivery is at most once: an event is counted as sent when its batch is
handed to gRPC. The protocol has no acknowledgements, so a batch written to
a stream that then breaks (snakepipe killed) can be lost without a count;
everything still queued when the stream breaks is kept and sent after the
reconnect. ``shutdown()`` half-closes the stream and waits for snakepipe to
end it, which confirms that snakepipe read every frame.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import threading
import time
from typing import Any, List, Optional

from . import _core
from ._encode import EventEncoder, batch_message, event_frame_size, json_line
from ._policy import apply_filter, apply_sampling_update, apply_toggle, policy_from_proto

log = logging.getLogger("snakepipe")

LIBRARY_NAME = "snakepipe-python"
PROTOCOL_VERSION = 1
METHOD = "/snakepipe.v1.Ingest/Stream"
DEFAULT_MAX_MESSAGE_BYTES = 4 << 20
DEFAULT_STATS_INTERVAL = 10.0
GOAWAY_GRACE = 5.0  # seconds to wait for the host to end a stream after GoAway


def make_sender(rt: "_core.Runtime") -> "BaseSender":
    """Create the sender for ``rt.config.backend`` (not started)."""
    if rt.config.backend == "stderr":
        return StderrSender(rt)
    return GrpcSender(rt)


class BaseSender:
    """Queue draining and flush accounting shared by the senders.

    ``popped``, ``done`` and ``sent`` are written only by the thread that
    drains the queue; other threads only read them.
    """

    def __init__(self, rt: "_core.Runtime") -> None:
        self.rt = rt
        self.cfg = rt.config
        self.queue = rt.queue
        self.wake = rt.wake_event
        self.popped = 0  # events taken out of the queue
        self.done = 0  # events taken out and resolved (sent or dropped)
        self.sent = 0
        self._progress = threading.Condition(threading.Lock())
        self._flush_requested = False
        self._stopping = False
        self._deadline = 0.0
        self._thread: Optional[threading.Thread] = None
        self._finished = threading.Event()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._main, name="snakepipe-sender", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        try:
            self.run()
        except Exception:
            log.exception("sender thread failed")
        finally:
            left = len(self.queue)
            if left:
                self._take(left)
                self._resolve(0, left, "shutdown")
            self._finished.set()

    def run(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _take(self, n: int) -> List[tuple]:
        items: List[tuple] = []
        pop = self.queue.popleft
        append = items.append
        try:
            for _ in range(n):
                append(pop())
        except IndexError:
            pass
        self.popped += len(items)
        return items

    def _resolve(self, sent: int, dropped: int = 0, reason: str = "") -> None:
        self.sent += sent
        if dropped:
            _core.drop(reason, dropped, f"{dropped} events not sent")
        with self._progress:
            self.done += sent + dropped
            self._progress.notify_all()

    def _due(self, last_send: float, now: float) -> bool:
        """Whether the queue should be sent now."""
        n = len(self.queue)
        if n == 0:
            return False
        return (
            n >= self.cfg.batch_size
            or self._stopping
            or self._flush_requested
            or now - last_send >= self.cfg.flush_interval
        )

    def flush(self, timeout: Optional[float]) -> bool:
        """Wait until every event queued before the call is resolved."""
        target = self.popped + len(self.queue)
        deadline = None if timeout is None else time.monotonic() + timeout
        self._flush_requested = True
        self.wake.set()
        with self._progress:
            while self.done < target:
                if self._finished.is_set():
                    return False
                remaining = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
                if remaining <= 0:
                    return False
                self._progress.wait(remaining)
        return True

    def shutdown(self, timeout: float) -> bool:
        """Send what is queued, then stop. True if nothing was left unsent."""
        target = self.popped + len(self.queue)
        self._deadline = time.monotonic() + timeout
        self._stopping = True
        self.wake.set()
        self._stop_hook()
        self._finished.wait(timeout + 1.0)
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(0.5)
        return self.sent >= target and self.done >= target and not self._lost_at_shutdown()

    def _stop_hook(self) -> None:
        pass

    def _lost_at_shutdown(self) -> bool:
        return False


class StderrSender(BaseSender):
    """Writes each event as one JSON line to a text stream (default stderr)."""

    def __init__(self, rt: "_core.Runtime") -> None:
        super().__init__(rt)
        cfg = rt.config
        self.origin = {"worker_id": cfg.worker_id, "pool": cfg.pool, "hostname": cfg.hostname, "pid": os.getpid()}

    def run(self) -> None:
        last = time.monotonic()
        while True:
            now = time.monotonic()
            if self._due(last, now):
                self._write(self._take(len(self.queue)))
                last = now
                self._flush_requested = bool(self.queue) and self._flush_requested
                continue
            if self._stopping:
                return
            self.wake.wait(self.cfg.flush_interval)
            self.wake.clear()

    def _write(self, items: List[tuple]) -> None:
        lines = []
        bad = 0
        for it in items:
            try:
                lines.append(json_line(it, self.origin, self.cfg.max_value_len))
            except Exception:
                bad += 1
        if bad:
            self._resolve(0, bad, "invalid_value")
        if not lines:
            return
        stream = self.cfg.stream if self.cfg.stream is not None else sys.stderr
        try:
            stream.write("\n".join(lines) + "\n")
            stream.flush()
        except Exception as e:
            _core._log_once("backend_error", f"writing events failed: {e!r}")
            self._resolve(0, len(lines), "backend_error")
            return
        self._resolve(len(lines))


class _Stream:
    """State of one stream attempt, shared by the reader and the generator."""

    def __init__(self) -> None:
        self.welcome = threading.Event()
        self.ended = False  # the RPC is over
        self.closing = False  # GoAway received: stop sending
        self.goaway_delay: Optional[float] = None
        self.max_bytes = DEFAULT_MAX_MESSAGE_BYTES
        self.stats_interval = DEFAULT_STATS_INTERVAL
        self.completed = False  # generator finished a shutdown drain
        self.call: Any = None


class GrpcSender(BaseSender):
    """Streams batches to snakepipe and obeys its control frames."""

    def __init__(self, rt: "_core.Runtime") -> None:
        super().__init__(rt)
        self._stream: Optional[_Stream] = None
        self._interrupt = threading.Event()  # cuts a backoff sleep short
        self._paused = False
        self._parked = threading.Event()  # set while paused and out of gRPC
        self._resume = threading.Event()
        self._rng = random.Random()
        self._seen_unknown: set = set()
        self._logged_codes: set = set()
        self._encoder = EventEncoder(rt.config.max_value_len)
        self._seq = 0
        self._clean_end = False

    # -- control ----------------------------------------------------------

    def _stop_hook(self) -> None:
        self._interrupt.set()
        self._resume.set()

    # -- fork ---------------------------------------------------------------

    def pause(self, timeout: float = 1.0) -> None:
        """End the current stream gracefully and park the sender outside
        gRPC (called before ``os.fork()``: gRPC cannot be used in a child
        forked while a call is active). Queued events stay queued."""
        self._resume.clear()
        self._paused = True
        self._interrupt.set()
        st = self._stream
        if st is not None:
            st.closing = True  # the generator returns: half-close
        self.wake.set()
        if not self._parked.wait(timeout) and st is not None:
            self._cancel(st)
            self._parked.wait(timeout)

    def resume(self) -> None:
        """Undo ``pause`` (in the parent after fork): reconnect at once."""
        self._paused = False
        if not self._stopping:
            self._interrupt.clear()
        self._resume.set()

    def _lost_at_shutdown(self) -> bool:
        return not self._clean_end

    def _on_control(self, msg: Any, st: _Stream) -> None:
        rt = self.rt
        kind = msg.WhichOneof("control")
        if kind == "welcome":
            w = msg.welcome
            if w.HasField("policy"):
                _core.set_policy(rt, policy_from_proto(w.policy))
            st.max_bytes = w.max_message_bytes or DEFAULT_MAX_MESSAGE_BYTES
            st.stats_interval = self.cfg.stats_interval or (w.stats_interval_ms / 1000.0) or DEFAULT_STATS_INTERVAL
            rt.connections += 1
            rt.connected = True
            st.welcome.set()
            self.wake.set()
            log.debug("connected to %s (host %s)", self.cfg.endpoint, w.host_id)
        elif kind == "policy":
            p = policy_from_proto(msg.policy)
            if p.version and p.version < rt.policy.version:
                return  # an older policy overtaken by a newer one
            _core.set_policy(rt, p)
        elif kind == "toggle":
            _core.update_policy(rt, lambda p: apply_toggle(p, msg.toggle.enabled))
        elif kind == "sampling":
            s = msg.sampling
            _core.update_policy(rt, lambda p: apply_sampling_update(p, s.sampling_rate, list(s.event_patterns)))
        elif kind == "filter":
            f = msg.filter
            _core.update_policy(rt, lambda p: apply_filter(p, list(f.allow), list(f.deny)))
        elif kind == "rejects":
            r = msg.rejects
            rt.rejected = dict(r.rejected)
            for name in r.recent_unknown_names:
                if name not in self._seen_unknown and len(self._seen_unknown) < 100:
                    self._seen_unknown.add(name)
                    log.warning("host rejected unknown event name %r (not in its catalog)", name)
        elif kind == "go_away":
            g = msg.go_away
            st.closing = True
            st.goaway_delay = g.reconnect_after_ms / 1000.0
            if g.reason == "replaced":
                # Another process streams under our worker_id; reconnecting
                # at once would only take the id back and forth.
                st.goaway_delay = max(st.goaway_delay, self.cfg.max_backoff)
                log.warning("another stream took worker_id %r; check that worker ids are unique",
                            self.cfg.worker_id)
            else:
                log.info("host sent GoAway (%s); reconnecting after %d ms", g.reason, g.reconnect_after_ms)
            self.wake.set()
            timer = threading.Timer(GOAWAY_GRACE, self._cancel, args=(st,))
            timer.daemon = True
            timer.start()

    @staticmethod
    def _cancel(st: _Stream) -> None:
        call = st.call
        if call is not None and not st.ended:
            try:
                call.cancel()
            except Exception:
                pass

    # -- frames -----------------------------------------------------------

    def _hello(self) -> bytes:
        from .v1 import ingest_pb2 as pb
        from . import __version__

        cfg = self.cfg
        hello = pb.Hello(
            worker_id=cfg.worker_id,
            pool=cfg.pool,
            hostname=cfg.hostname,
            pid=os.getpid(),
            library_name=LIBRARY_NAME,
            library_version=__version__,
            protocol_version=PROTOCOL_VERSION,
            labels=[pb.MetadataEntry(key=k, value=v) for k, v in cfg.labels],
        )
        return pb.WorkerMessage(hello=hello).SerializeToString()

    def _stats_frame(self) -> bytes:
        from .v1 import ingest_pb2 as pb

        rt = self.rt
        st = pb.WorkerStats(
            queue_depth=len(self.queue),
            queue_capacity=self.cfg.queue_size,
            events_queued=_core.queued_total(),
            events_sent=_core.sent_base() + self.sent,
            reconnects=rt.reconnects,
        )
        for k, v in _core.dropped_snapshot().items():
            st.dropped[k] = v
        for k, v in rt.rejected.items():
            st.rejected[k] = v
        return pb.WorkerMessage(stats=st).SerializeToString()

    def _next_batch(self, st: _Stream) -> Optional[bytes]:
        """Take up to batch_size events (within the frame size limit) and
        encode them; None if nothing could be sent."""
        budget = st.max_bytes - 64
        items = self._take(min(len(self.queue), self.cfg.batch_size))
        encode = self._encoder.encode
        events: List[bytes] = []
        size = 0
        bad = 0
        big = 0
        i = 0
        for i, it in enumerate(items):
            try:
                e = encode(it)
            except Exception:
                bad += 1
                continue
            fs = event_frame_size(len(e))
            if fs > budget:
                big += 1
                continue
            if size + fs > budget:
                # Put the rest back at the front, in order.
                rest = items[i:]
                self.queue.extendleft(reversed(rest))
                self.popped -= len(rest)
                break
            events.append(e)
            size += fs
        if bad:
            self._resolve(0, bad, "invalid_value")
        if big:
            self._resolve(0, big, "too_large")
        if not events:
            return None
        self._seq += 1
        frame = batch_message(events, self._seq)
        self._resolve(len(events))
        return frame

    def _requests(self, st: _Stream):  # generator run by gRPC's request thread
        yield self._hello()
        deadline = time.monotonic() + self.cfg.connect_timeout
        while not st.welcome.wait(0.02):
            if st.ended or st.closing or self._paused:
                return
            if time.monotonic() > deadline:
                log.debug("no Welcome within %.1fs; reconnecting", self.cfg.connect_timeout)
                self._cancel(st)
                return
        last_send = time.monotonic()
        next_stats = last_send + st.stats_interval
        while True:
            if st.ended or st.closing or self._paused:
                return
            now = time.monotonic()
            if self._due(last_send, now):
                frame = self._next_batch(st)
                last_send = now
                if not self.queue:
                    self._flush_requested = False
                if frame is not None:
                    yield frame
                continue
            if self._stopping:
                yield self._stats_frame()
                st.completed = True
                return  # half-close: snakepipe ends the stream once it read everything
            if now >= next_stats:
                yield self._stats_frame()
                next_stats = now + st.stats_interval
                continue
            wait = next_stats - now
            if self.queue:
                wait = min(wait, self.cfg.flush_interval - (now - last_send))
            else:
                wait = min(wait, 0.5)
            if wait > 0:
                self.wake.wait(wait)
            self.wake.clear()

    # -- connection loop ----------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        base = min(self.cfg.max_backoff, self.cfg.initial_backoff * (2 ** min(attempt, 30)))
        return base * (0.5 + 0.5 * self._rng.random())  # "equal jitter"

    def run(self) -> None:
        import grpc

        from .v1 import ingest_pb2 as pb

        attempt = 0
        while True:
            if self._paused and not self._stopping:
                self._parked.set()
                self._resume.wait()
                self._parked.clear()
                continue
            if self._stopping and (time.monotonic() >= self._deadline):
                break
            st = _Stream()
            self._stream = st
            code: Any = None
            channel = grpc.insecure_channel(
                self.cfg.endpoint,
                options=[
                    ("grpc.enable_retries", 0),
                    ("grpc.max_receive_message_length", 16 << 20),
                ],
            )
            try:
                call = channel.stream_stream(METHOD, request_serializer=None, response_deserializer=pb.ControlMessage.FromString)
                responses = call(self._requests(st))
                st.call = responses
                try:
                    for msg in responses:
                        self._on_control(msg, st)
                    code = grpc.StatusCode.OK
                except grpc.RpcError as e:
                    code = e.code() if hasattr(e, "code") else None
                    if code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                        # Warn once per status code; later ones at debug level.
                        level = logging.DEBUG if code in self._logged_codes else logging.WARNING
                        self._logged_codes.add(code)
                        log.log(level, "stream to %s ended: %s %s", self.cfg.endpoint, code,
                                getattr(e, "details", lambda: "")())
            except Exception:
                log.exception("stream to %s failed", self.cfg.endpoint)
            finally:
                st.ended = True
                self.rt.connected = False
                self.wake.set()
                try:
                    channel.close()
                except Exception:
                    pass
            if self._stopping and st.completed and code == grpc.StatusCode.OK:
                self._clean_end = True
                break
            if st.welcome.is_set():
                attempt = 0
            if self._paused:
                continue
            if st.goaway_delay is not None:
                delay = st.goaway_delay * (1.0 + 0.5 * self._rng.random()) if st.goaway_delay > 0 else self._backoff(0)
            else:
                delay = self._backoff(attempt)
                attempt += 1
            if self._stopping:
                # Keep trying until the shutdown deadline, at a short interval.
                time.sleep(min(delay, 0.1, max(0.0, self._deadline - time.monotonic())))
            else:
                self._interrupt.wait(delay)
        self._stream = None
