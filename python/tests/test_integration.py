"""Integration tests against the real snakepipe binary.

Builds ``cmd/snakepipe`` with ``go build``, runs ``snakepipe run -c CONFIG``
on free loopback ports with a file sink, and checks what the sink wrote.
Skipped (with the reason) only when the binary cannot be built or has no
``run`` command.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

from snakepipe import telemetry

REPO = Path(__file__).resolve().parents[2]
WORKER = "itest-worker"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture(scope="module")
def snakepipe_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.skip("cannot build snakepipe: no `go` on PATH")
    out = tmp_path_factory.mktemp("bin") / "snakepipe"
    r = subprocess.run([go, "build", "-o", str(out), "./cmd/snakepipe"], cwd=REPO, capture_output=True, text=True,
                       timeout=900)
    if r.returncode != 0:
        pytest.skip(f"cannot build snakepipe (go build ./cmd/snakepipe failed):\n{r.stderr[-2000:]}")
    h = subprocess.run([str(out), "run", "--help"], capture_output=True, text=True, timeout=60)
    if h.returncode != 0 and "unknown command" in (h.stdout + h.stderr).lower():
        pytest.skip("the snakepipe binary has no `run` command yet")
    return out


class Snakepipe:
    """One `snakepipe run` process with a file sink."""

    def __init__(self, binary: Path, workdir: Path, port: int, name: str, policy: Optional[str] = None) -> None:
        self.binary = binary
        self.port = port
        self.out = workdir / f"{name}.jsonl"
        self.log = workdir / f"{name}.log"
        self.config = workdir / f"{name}.yaml"
        self.admin = f"127.0.0.1:{free_port()}"
        self.config.write_text(
            f"""
log: {{level: debug, format: text}}
ingest:
  listen: 127.0.0.1:{port}
  stats_interval: 200ms
  reconnect_after: 100ms
  drain_timeout: 5s
admin:
  listen: 127.0.0.1:{free_port()}  # overridden by `run --admin` (see start)
{policy or ""}
sinks:
  file/main:
    path: {self.out}
    flush_interval: 0s
    fsync: never
pipelines:
  default:
    sinks: [file/main]
    workers: 1  # keep arrival order in the file
"""
        )
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> "Snakepipe":
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([str(self.binary), "run", "-c", str(self.config), "--admin", self.admin],
                                     stdout=logf, stderr=logf, cwd=self.config.parent)
        logf.close()

        def listening() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"snakepipe exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return True
            except OSError:
                return False

        assert wait_until(listening, 60), self.log.read_text()[-3000:]
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        return self.proc.returncode

    def ctl(self, *args: str) -> str:
        """Run `snakepipe ctl` against this process's admin API; return stdout."""
        r = subprocess.run([str(self.binary), "ctl", "--admin", self.admin, *args], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, f"snakepipe ctl {' '.join(args)}: exit {r.returncode}\n{r.stdout}{r.stderr}"
        return r.stdout

    def events(self, worker: str = WORKER) -> List[Dict[str, Any]]:
        """Worker events written by the file sink (host events left out)."""
        if not self.out.exists():
            return []
        out = []
        for line in self.out.read_text().splitlines():
            if not line.strip():
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                continue  # a line being written
            if ev.get("worker_id") == worker:
                out.append(ev)
        return out


@pytest.fixture
def spawn(snakepipe_bin: Path, tmp_path: Path) -> Iterator[Callable[..., Snakepipe]]:
    started: List[Snakepipe] = []

    def make(port: int, name: str, policy: Optional[str] = None) -> Snakepipe:
        sp = Snakepipe(snakepipe_bin, tmp_path, port, name, policy).start()
        started.append(sp)
        return sp

    yield make
    telemetry.shutdown(1)
    for sp in started:
        sp.stop()


def connect(port: int, **kw: Any) -> None:
    kw.setdefault("worker_id", WORKER)
    telemetry.configure(endpoint=f"127.0.0.1:{port}", pool="itest", **kw)
    assert wait_until(lambda: telemetry.stats()["connected"]), telemetry.stats()


def test_events_arrive_with_correct_values(spawn: Callable[..., Snakepipe]) -> None:
    port = free_port()
    sp = spawn(port, "values")
    connect(port)
    telemetry.emit("python.call.stop", {"duration": 1200, "count": True, "response_size": 0},
                   {"command": "resize", "n": 3}, correlation_id="corr-1")
    telemetry.emit("python.cpu.sampled", {"cpu_percent": 2.0, "system_time": 1732500000000000000})
    with telemetry.correlation("corr-2"):
        with telemetry.span("tool.execution", {"tool": "t"}):
            pass
        with pytest.raises(ValueError):
            with telemetry.span("tool.execution", {"tool": "t"}):
                raise ValueError("bad input")
    telemetry.emit("python.call.stop", {"duration": float("nan")})  # dropped in the worker
    assert telemetry.shutdown(10) is True
    sp.stop()
    evs = sp.events()
    assert [e["name"] for e in evs] == [
        "python.call.stop", "python.cpu.sampled", "tool.execution.start", "tool.execution.stop",
        "tool.execution.start", "tool.execution.exception",
    ]
    call, cpu, start, stop, _, exc = evs
    assert call["measurements"] == {"duration": 1200, "count": 1, "response_size": 0}
    assert call["metadata"] == {"command": "resize", "n": "3"}
    assert call["correlation_id"] == "corr-1" and call["sample_rate"] == 1
    assert (call["pool"], call["pid"]) == ("itest", os.getpid())
    assert cpu["measurements"]["cpu_percent"] == 2.0 and isinstance(cpu["measurements"]["cpu_percent"], float)
    assert "correlation_id" not in cpu
    assert start["correlation_id"] == stop["correlation_id"] == "corr-2"
    assert isinstance(stop["measurements"]["duration"], int) and stop["measurements"]["duration"] >= 0
    assert exc["metadata"] == {"tool": "t", "error_type": "ValueError", "error_message": "bad input"}
    st = telemetry.stats()
    assert st["sent"] == 6 and st["dropped"] == {"invalid_value": 1} and st["rejected"] == {}


POLICY = """
policy:
  enabled: true
  default_sample_rate: 1
  sampling_rules:
    - {pattern: "python.gc.*", rate: 0.5}
  deny: ["python.memory.*"]
"""


def test_policy_from_config_arrives_in_welcome_and_is_obeyed(spawn: Callable[..., Snakepipe]) -> None:
    port = free_port()
    sp = spawn(port, "policy", POLICY)
    connect(port, random_seed=11)
    p = telemetry.stats()["policy"]
    assert p["deny"] == ["python.memory.*"]
    assert p["sampling_rules"] == [{"pattern": "python.gc.*", "rate": 0.5}]
    n = 200
    for i in range(n):
        telemetry.emit("python.call.stop", {"duration": i})
        telemetry.emit("python.memory.sampled", {"rss_bytes": i})
        telemetry.emit("python.gc.completed", {"collected": i, "generation": 0})
    assert telemetry.shutdown(10) is True
    sp.stop()
    st = telemetry.stats()
    kept_gc = n - st["dropped"]["sampled_out"]
    assert st["dropped"] == {"filtered": n, "sampled_out": n - kept_gc}
    assert 40 < kept_gc < 160
    evs = sp.events()
    calls = [e for e in evs if e["name"] == "python.call.stop"]
    gcs = [e for e in evs if e["name"] == "python.gc.completed"]
    assert [e["measurements"]["duration"] for e in calls] == list(range(n))
    assert all(e["sample_rate"] == 1 for e in calls)
    assert len(gcs) == kept_gc and all(e["sample_rate"] == 0.5 for e in gcs)
    assert not [e for e in evs if e["name"] == "python.memory.sampled"]
    assert len(evs) == st["sent"] == n + kept_gc


def test_killed_and_restarted_snakepipe_loses_exactly_what_counters_say(spawn: Callable[..., Snakepipe]) -> None:
    port = free_port()
    first = spawn(port, "first")
    connect(port, queue_size=100, initial_backoff=0.05, max_backoff=0.2)

    def emit(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            telemetry.emit("python.call.stop", {"duration": i})

    emit(0, 50)
    assert telemetry.flush(10)
    assert wait_until(lambda: len(first.events()) == 50)
    first.kill()  # SIGKILL: no GoAway, no drain
    assert wait_until(lambda: not telemetry.stats()["connected"])
    emit(50, 300)  # snakepipe is down: 100 fit the queue, 150 are dropped (drop-newest)
    st = telemetry.stats()
    assert st["dropped"] == {"queue_full": 150} and st["queue_depth"] == 100
    second = spawn(port, "second")
    assert wait_until(lambda: telemetry.stats()["connected"])
    assert telemetry.flush(10)  # the 100 queued events go first
    emit(300, 350)
    assert telemetry.shutdown(10) is True
    second.stop()

    got = [e["measurements"]["duration"] for e in first.events() + second.events()]
    assert sorted(got) == list(range(0, 150)) + list(range(300, 350))
    assert len(got) == len(set(got))  # nothing twice
    st = telemetry.stats()
    emitted = 350
    assert st["sent"] == len(got) == 200
    assert emitted - len(got) == sum(st["dropped"].values()) == st["dropped"]["queue_full"] == 150
    assert st["reconnects"] == 1


def test_graceful_restart_loses_nothing(spawn: Callable[..., Snakepipe]) -> None:
    port = free_port()
    first = spawn(port, "graceful1")
    connect(port, initial_backoff=0.05, max_backoff=0.2)
    for i in range(100):
        telemetry.emit("python.call.stop", {"duration": i})
    assert telemetry.flush(10)
    assert first.stop() == 0  # SIGTERM: GoAway{shutdown}, the worker half-closes, snakepipe drains
    assert wait_until(lambda: not telemetry.stats()["connected"])
    for i in range(100, 150):
        telemetry.emit("python.call.stop", {"duration": i})
    second = spawn(port, "graceful2")
    assert wait_until(lambda: telemetry.stats()["connected"])
    assert telemetry.shutdown(10) is True
    second.stop()
    got = sorted(e["measurements"]["duration"] for e in first.events() + second.events())
    assert got == list(range(150))
    assert telemetry.stats()["dropped"] == {}


def test_shutdown_flushes_everything(spawn: Callable[..., Snakepipe]) -> None:
    port = free_port()
    sp = spawn(port, "flush")
    connect(port, queue_size=5000, flush_interval=60)
    for i in range(3000):
        telemetry.emit("python.call.stop", {"duration": i}, {"command": "c"})
    assert telemetry.shutdown(20) is True
    sp.stop()
    got = [e["measurements"]["duration"] for e in sp.events()]
    assert sorted(got) == list(range(3000))
    st = telemetry.stats()
    assert st["sent"] == 3000 and st["dropped"] == {}


def test_operator_policy_change_via_ctl_is_obeyed(spawn: Callable[..., Snakepipe]) -> None:
    """An operator steers a running worker with `snakepipe ctl policy`: its
    pool off, then a filter and a sampling rule, then a reset; the worker
    applies each change as it arrives (nothing sent that the policy rules
    out) and counts what it dropped."""
    port = free_port()
    sp = spawn(port, "ctl")
    connect(port)
    listed = json.loads(sp.ctl("--json", "workers"))["workers"]
    assert [(w["worker_id"], w["pool"]) for w in listed] == [(WORKER, "itest")]

    def policy() -> Dict[str, Any]:
        return telemetry.stats()["policy"]

    def emit_all(lo: int, hi: int) -> None:
        for i in range(lo, hi):
            telemetry.emit("python.call.stop", {"duration": i})
            telemetry.emit("python.memory.sampled", {"rss_bytes": i})
            telemetry.emit("python.gc.completed", {"collected": i, "generation": 0})

    emit_all(0, 10)
    assert telemetry.flush(10)

    # 1. The worker's pool off.
    resp = json.loads(sp.ctl("--json", "policy", "set", "pool=itest", "--enabled=false"))
    assert resp["workers_notified"] == 1 and resp["effective"]["enabled"] is False
    assert wait_until(lambda: policy()["enabled"] is False), policy()
    emit_all(10, 20)
    assert telemetry.flush(10)

    # 2. On again, memory events denied, gc sampled at 0.
    sp.ctl("policy", "set", "pool=itest", "--enabled=true", "--deny", "python.memory.*", "--rule", "python.gc.*=0")
    assert wait_until(lambda: policy()["enabled"] is True and policy()["deny"] == ["python.memory.*"]), policy()
    assert policy()["sampling_rules"] == [{"pattern": "python.gc.*", "rate": 0.0}]
    emit_all(20, 30)
    assert telemetry.flush(10)

    # 3. Reset: back to the config file's policy.
    sp.ctl("policy", "reset", "--all")
    assert wait_until(lambda: policy()["deny"] == [] and policy()["sampling_rules"] == []), policy()
    emit_all(30, 40)
    assert telemetry.shutdown(10) is True
    # The worker obeyed by itself: the host's own enforcement dropped nothing.
    metrics = json.loads(sp.ctl("--json", "stats"))["metrics"]
    host_drops = {m["labels"]["reason"]: m["value"] for m in metrics if m["name"] == "snakepipe_control_events_dropped_total"}
    assert host_drops == {"disabled": 0, "filtered": 0}
    sp.stop()

    evs = sp.events()

    def values(name: str, key: str) -> List[int]:
        return [e["measurements"][key] for e in evs if e["name"] == name]

    everything = list(range(0, 10)) + list(range(30, 40))
    assert values("python.call.stop", "duration") == list(range(0, 10)) + list(range(20, 40))
    assert values("python.memory.sampled", "rss_bytes") == everything
    assert values("python.gc.completed", "collected") == everything
    st = telemetry.stats()
    assert st["dropped"] == {"disabled": 30, "filtered": 10, "sampled_out": 10}
    assert st["sent"] == len(evs) == 30 + 20 + 20
