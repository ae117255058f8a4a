"""none and stderr backends, shutdown, exit-time flush."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from typing import Any

from fakehost import FakeHost

from snakepipe import _core, telemetry


def test_none_backend_starts_nothing() -> None:
    before = threading.active_count()
    telemetry.configure(backend="none")
    for _ in range(10):
        telemetry.emit("a.b", {"v": 1})
    assert threading.active_count() == before
    assert telemetry.stats()["dropped"] == {"no_backend": 10}
    assert telemetry.flush(1) and telemetry.shutdown(1)


def test_stderr_backend_default_stream(capsys: Any) -> None:
    telemetry.configure(backend="stderr", worker_id="w9", pool="p")
    telemetry.emit("a.b", {"v": 1}, {"k": "v"})
    assert telemetry.shutdown(5)
    err = capsys.readouterr().err
    assert '"name":"a.b"' in err and '"worker_id":"w9"' in err and f'"pid":{os.getpid()}' in err


class Broken:
    def write(self, s: str) -> int:
        raise OSError("disk full")

    def flush(self) -> None:
        pass


def test_stderr_write_failure_counted() -> None:
    telemetry.configure(backend="stderr", stream=Broken())
    telemetry.emit("a.b", {"v": 1})
    telemetry.emit("a.b", {"v": 2})
    telemetry.flush(5)
    st = telemetry.stats()
    assert st["dropped"] == {"backend_error": 2} and st["sent"] == 0


def test_emit_after_shutdown_is_counted_closed(lines: Any) -> None:
    telemetry.emit("a.b", {"v": 1})
    assert telemetry.shutdown(5)
    telemetry.emit("a.b", {"v": 2})
    st = telemetry.stats()
    assert st["sent"] == 1 and st["dropped"] == {"closed": 1}
    assert telemetry.shutdown(1)  # idempotent


def test_flush_timeout_returns_false_without_raising() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    telemetry.configure(endpoint=f"127.0.0.1:{port}", max_backoff=0.1)
    telemetry.emit("a.b", {"v": 1})
    assert telemetry.flush(0.2) is False
    assert telemetry.flush(0) is False


def test_interpreter_exit_flushes(host: FakeHost) -> None:
    """A worker that never calls shutdown() still delivers at exit."""
    script = textwrap.dedent(
        f"""
        from snakepipe import telemetry
        telemetry.configure(endpoint={host.endpoint!r}, worker_id="exiting", flush_interval=60)
        for i in range(500):
            telemetry.emit("a.b", {{"i": i}})
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEPIPE_")}
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert host.wait_for(lambda: len(host.events) == 500)
    assert [e.measurements[0].value.int_value for e in host.events] == list(range(500))
    final = host.stats[-1]
    assert final.events_sent == 500 and final.events_queued == 500


def test_env_only_worker_process(host: FakeHost) -> None:
    """Setting SNAKEPIPE_ENDPOINT alone is enough."""
    script = "from snakepipe import telemetry\ntelemetry.emit('a.b', {'v': 1})\n"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAKEPIPE_")}
    env["SNAKEPIPE_ENDPOINT"] = host.endpoint
    r = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert host.wait_for(lambda: len(host.events) == 1)
    assert _core.current() is None  # this process was not configured


def test_shutdown_leaves_no_threads(host: FakeHost) -> None:
    telemetry.configure(endpoint=host.endpoint, samplers=["memory", "cpu"], sampler_interval=0.01)
    telemetry.emit("a.b", {"v": 1})
    assert telemetry.shutdown(10)
    names = [t.name for t in threading.enumerate()]
    assert not [n for n in names if n.startswith("snakepipe-")], names
