"""The gRPC sender against an in-process host (real gRPC on loopback)."""

from __future__ import annotations

import os
import socket
import time
from typing import Any, Callable

from fakehost import FakeHost

from snakepipe import _core, telemetry
from snakepipe.v1 import ingest_pb2 as pb


def wait_until(pred: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def connect(host: FakeHost, **kw: Any) -> None:
    kw.setdefault("worker_id", "w1")
    telemetry.configure(endpoint=host.endpoint, **kw)
    assert wait_until(lambda: telemetry.stats()["connected"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_hello_and_events(host: FakeHost) -> None:
    connect(host, pool="p1", labels={"model": "m"}, hostname="h1")
    telemetry.emit("python.call.stop", {"duration": 1200, "ratio": 0.5, "ok": True}, {"tool": "x"},
                   correlation_id="abc")
    assert telemetry.flush(10)
    assert host.wait_for(lambda: len(host.events) == 1)
    h = host.hellos[0]
    assert (h.worker_id, h.pool, h.hostname, h.pid) == ("w1", "p1", "h1", os.getpid())
    assert (h.library_name, h.protocol_version) == ("snakepipe-python", 1)
    assert [(l.key, l.value) for l in h.labels] == [("model", "m")]
    e = host.events[0]
    assert e.name == "python.call.stop" and e.correlation_id == "abc" and e.sample_rate == 0.0
    assert {m.key: m.value.WhichOneof("value") for m in e.measurements} == {
        "duration": "int_value", "ratio": "float_value", "ok": "int_value"}
    assert [(m.key, m.value.int_value) for m in e.measurements if m.key == "ok"] == [("ok", 1)]
    assert abs(e.timestamp_ns - time.time_ns()) < 3600 * 10**9
    assert host.frames[0].WhichOneof("msg") == "hello"


def test_welcome_policy_obeyed_and_stamped() -> None:
    policy = pb.Policy(enabled=True, default_sample_rate=1.0, deny=["python.memory.*"], allow=["python.*"],
                       sampling_rules=[pb.SamplingRule(pattern="python.gc.*", rate=0.5)], version=3)
    host = FakeHost(policy=policy).start()
    try:
        connect(host, random_seed=5)
        assert telemetry.stats()["policy"]["version"] == 3
        for _ in range(200):
            telemetry.emit("python.call.stop", {"v": 1})
            telemetry.emit("python.memory.sampled", {"v": 1})
            telemetry.emit("tool.execution.stop", {"v": 1})
            telemetry.emit("python.gc.completed", {"v": 1})
        assert telemetry.flush(10)
        st = telemetry.stats()
        kept_gc = 200 - st["dropped"]["sampled_out"]
        assert host.wait_for(lambda: len(host.events) == 200 + kept_gc)
        assert st["dropped"]["filtered"] == 400
        gc_events = [e for e in host.events if e.name == "python.gc.completed"]
        assert len(gc_events) == kept_gc and all(e.sample_rate == 0.5 for e in gc_events)
        assert all(e.sample_rate == 0.0 for e in host.events if e.name == "python.call.stop")
    finally:
        telemetry.shutdown(5)
        host.stop(0)


def test_control_frames(host: FakeHost) -> None:
    connect(host)
    stream = host.streams[0]
    rt = _core.current()

    def policy_is(pred: Callable[[dict], bool]) -> bool:
        return wait_until(lambda: pred(telemetry.stats()["policy"]))

    stream.send(pb.ControlMessage(toggle=pb.Toggle(enabled=False)))
    assert policy_is(lambda p: p["enabled"] is False)
    telemetry.emit("a.b", {"v": 1})
    assert telemetry.stats()["dropped"] == {"disabled": 1}
    assert not telemetry.is_enabled()

    stream.send(pb.ControlMessage(toggle=pb.Toggle(enabled=True)))
    stream.send(pb.ControlMessage(filter=pb.EventFilter(allow=["keep.*"], deny=["keep.not"])))
    assert policy_is(lambda p: p["allow"] == ["keep.*"])
    stream.send(pb.ControlMessage(sampling=pb.SamplingUpdate(sampling_rate=0.0, event_patterns=["keep.zero"])))
    assert policy_is(lambda p: p["sampling_rules"] == [{"pattern": "keep.zero", "rate": 0.0}])
    stream.send(pb.ControlMessage(sampling=pb.SamplingUpdate(sampling_rate=7.0)))  # clamped
    assert policy_is(lambda p: p["default_sample_rate"] == 1.0)
    for name in ("keep.yes", "keep.not", "keep.zero", "other.x"):
        telemetry.emit(name, {"v": 1})
    assert telemetry.flush(10)
    assert host.wait_for(lambda: host.names() == ["keep.yes"])
    assert telemetry.stats()["dropped"] == {"disabled": 1, "filtered": 2, "sampled_out": 1}

    # A Policy frame replaces everything; an older version is ignored.
    stream.send(pb.ControlMessage(policy=pb.Policy(enabled=True, default_sample_rate=1.0, deny=["x.*"], version=5)))
    assert policy_is(lambda p: p["version"] == 5 and p["allow"] == [] and p["deny"] == ["x.*"])
    stream.send(pb.ControlMessage(policy=pb.Policy(enabled=False, version=4)))
    stream.send(pb.ControlMessage(toggle=pb.Toggle(enabled=True)))  # a later frame, to know the old one was seen
    time.sleep(0)  # frames are applied in order
    assert policy_is(lambda p: p["version"] == 5 and p["enabled"] is True)
    assert rt is _core.current()


def test_rejects_reported_and_copied_into_stats() -> None:
    host = FakeHost(stats_interval_ms=50).start()
    try:
        connect(host)
        host.streams[0].send(pb.ControlMessage(rejects=pb.RejectNotice(
            rejected={"unknown_event": 3}, recent_unknown_names=["typo.event"])))
        assert wait_until(lambda: telemetry.stats()["rejected"] == {"unknown_event": 3})
        assert host.wait_for(lambda: any(dict(s.rejected) == {"unknown_event": 3} for s in host.stats))
    finally:
        telemetry.shutdown(5)
        host.stop(0)


def test_periodic_and_final_stats() -> None:
    host = FakeHost(stats_interval_ms=50).start()
    try:
        connect(host, queue_size=10)
        assert host.wait_for(lambda: len(host.stats) >= 2)
        telemetry.emit("a..b", {})
        for i in range(5):
            telemetry.emit("a.b", {"i": i})
        assert telemetry.shutdown(10)
        final = host.stats[-1]
        assert host.frames[-1].WhichOneof("msg") == "stats"
        assert final.events_queued == 5 and final.events_sent == 5
        assert dict(final.dropped) == {"invalid_name": 1}
        assert final.queue_capacity == 10 and final.queue_depth == 0
        assert len(host.events) == 5
    finally:
        host.stop(0)


def test_queue_full_while_host_down_counted_exactly() -> None:
    port = free_port()
    telemetry.configure(endpoint=f"127.0.0.1:{port}", worker_id="w1", queue_size=100, max_backoff=0.2)
    for i in range(250):
        telemetry.emit("a.b", {"i": i})
    st = telemetry.stats()
    assert st["queued"] == 100 and st["dropped"] == {"queue_full": 150} and not st["connected"]
    assert telemetry.flush(0.2) is False  # nothing can be sent yet
    host = FakeHost(port=port).start()
    try:
        assert telemetry.flush(20)
        assert host.wait_for(lambda: len(host.events) == 100)
        # drop-newest: the first 100 were kept, in order
        assert [e.measurements[0].value.int_value for e in host.events] == list(range(100))
        assert telemetry.stats()["sent"] == 100
    finally:
        telemetry.shutdown(5)
        host.stop(0)


def test_reconnect_after_host_restart() -> None:
    host = FakeHost().start()
    port = host.port
    connect(host, max_backoff=0.2, initial_backoff=0.05)
    telemetry.emit("a.b", {"i": 0})
    assert telemetry.flush(10) and host.wait_for(lambda: len(host.events) == 1)
    host.stop(0)
    assert wait_until(lambda: not telemetry.stats()["connected"])
    for i in range(1, 11):
        telemetry.emit("a.b", {"i": i})
    host2 = FakeHost(port=port).start()
    try:
        assert wait_until(lambda: telemetry.stats()["connected"])
        assert telemetry.flush(10)
        assert host2.wait_for(lambda: len(host2.events) == 10)
        assert [e.measurements[0].value.int_value for e in host2.events] == list(range(1, 11))
        assert len(host2.hellos) == 1
        st = telemetry.stats()
        assert st["reconnects"] == 1 and st["sent"] == 11 and st["dropped"] == {}
    finally:
        telemetry.shutdown(5)
        host2.stop(0)


def test_goaway_reconnects_without_loss(host: FakeHost) -> None:
    connect(host, initial_backoff=0.05)
    telemetry.emit("a.b", {"i": 0})
    assert telemetry.flush(10)
    host.streams[0].send(pb.ControlMessage(go_away=pb.GoAway(reason="replaced", reconnect_after_ms=50)))
    # The worker stops sending and half-closes; the fake host then ends the stream.
    assert host.streams[0].half_closed.wait(10)
    for i in range(1, 6):
        telemetry.emit("a.b", {"i": i})
    assert host.wait_for(lambda: len(host.hellos) == 2)
    assert telemetry.flush(10)
    assert host.wait_for(lambda: len(host.events) == 6)
    assert sorted(e.measurements[0].value.int_value for e in host.events) == list(range(6))
    assert telemetry.stats()["reconnects"] == 1


def test_no_welcome_times_out_and_retries() -> None:
    host = FakeHost(welcome=False).start()
    try:
        telemetry.configure(endpoint=host.endpoint, connect_timeout=0.2, initial_backoff=0.05, max_backoff=0.1)
        assert host.wait_for(lambda: len(host.hellos) >= 2)
        assert not telemetry.stats()["connected"]
    finally:
        telemetry.shutdown(0.5)
        host.stop(0)


def test_batches_respect_max_message_bytes() -> None:
    host = FakeHost(max_message_bytes=2000).start()
    try:
        connect(host, batch_size=1000)
        for i in range(100):
            telemetry.emit("a.b", {"i": i}, {"pad": "p" * 50})
        telemetry.emit("a.b", {"i": -1}, {"pad": "x" * 3000})  # alone bigger than a frame
        assert telemetry.shutdown(10) is False  # one event could not be sent
        batches = [f for f in host.frames if f.WhichOneof("msg") == "batch"]
        assert len(batches) > 1
        assert all(f.ByteSize() <= 2000 for f in batches)
        assert [e.measurements[0].value.int_value for e in host.events] == list(range(100))
        assert telemetry.stats()["dropped"] == {"too_large": 1}
    finally:
        host.stop(0)


def test_shutdown_timeout_when_host_down() -> None:
    telemetry.configure(endpoint=f"127.0.0.1:{free_port()}", max_backoff=0.1)
    for i in range(7):
        telemetry.emit("a.b", {"i": i})
    assert telemetry.shutdown(0.3) is False
    st = telemetry.stats()
    assert st["dropped"] == {"shutdown": 7} and st["sent"] == 0
    telemetry.emit("a.b", {})
    assert telemetry.stats()["dropped"] == {"shutdown": 7, "closed": 1}


def test_reconfigure_flushes_previous(host: FakeHost) -> None:
    connect(host)
    for i in range(3):
        telemetry.emit("a.b", {"i": i})
    host2 = FakeHost().start()
    try:
        connect(host2, worker_id="w2")
        assert host.wait_for(lambda: len(host.events) == 3)
        telemetry.emit("a.b", {"i": 3})
        assert telemetry.shutdown(5)
        assert len(host2.events) == 1 and host2.hellos[0].worker_id == "w2"
        assert telemetry.stats()["sent"] == 4
    finally:
        host2.stop(0)


def test_shutdown_before_welcome_with_policy() -> None:
    """shutdown() must not block the sender from applying the Welcome."""
    host = FakeHost(policy=pb.Policy(enabled=True, default_sample_rate=1.0, version=2), welcome_delay=0.3).start()
    try:
        telemetry.configure(endpoint=host.endpoint)
        for i in range(10):
            telemetry.emit("a.b", {"i": i})
        assert telemetry.shutdown(10) is True
        assert len(host.events) == 10
    finally:
        host.stop(0)
