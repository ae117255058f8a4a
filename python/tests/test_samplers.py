"""Built-in samplers."""

from __future__ import annotations

import gc
import time
from typing import Any

from snakepipe import telemetry
from snakepipe.samplers import CpuSampler, GcSampler, Samplers, memory_sample


def test_memory_sample() -> None:
    m = memory_sample()
    assert m is not None and m["rss_bytes"] > 1 << 20 and m["vms_bytes"] >= m["rss_bytes"]


def test_cpu_sampler() -> None:
    c = CpuSampler()
    t = time.process_time()
    while time.process_time() - t < 0.02:
        pass
    v = c.sample()
    assert v is not None and v >= 0.0


def test_gc_sampler_emits_on_collection(lines: Any) -> None:
    s = GcSampler()
    s.install()
    try:
        gc.collect()
    finally:
        s.uninstall()
    assert telemetry.flush(5)
    evs = [e for e in lines.events() if e["name"] == "python.gc.completed"]
    assert evs and evs[-1]["measurements"]["generation"] == 2
    assert evs[-1]["measurements"]["duration"] >= 0 and "collected" in evs[-1]["measurements"]
    assert s not in gc.callbacks


def test_samplers_thread(lines: Any) -> None:
    s = Samplers(["memory", "cpu"], interval=0.01)
    s.start()
    deadline = time.monotonic() + 20
    names: set = set()
    while time.monotonic() < deadline and not {"python.memory.sampled", "python.cpu.sampled"} <= names:
        telemetry.flush(5)
        names = {e["name"] for e in lines.events()}
        time.sleep(0.01)
    s.stop()
    assert {"python.memory.sampled", "python.cpu.sampled"} <= names
    mem = next(e for e in lines.events() if e["name"] == "python.memory.sampled")
    assert set(mem["measurements"]) == {"rss_bytes", "vms_bytes", "system_time"}


def test_samplers_from_configure(capsys: Any) -> None:
    from conftest import Lines

    buf = Lines()
    telemetry.configure(backend="stderr", stream=buf, samplers="gc")
    gc.collect()
    assert telemetry.shutdown(5)
    assert any(e["name"] == "python.gc.completed" for e in buf.events())
    n = len(buf.events())
    gc.collect()  # stopped with the runtime
    assert len(buf.events()) == n
