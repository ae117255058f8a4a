"""Many threads, asyncio, policy changes under load, fork."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from typing import Any

import pytest
from fakehost import FakeHost

from snakepipe import _core, telemetry
from snakepipe._policy import Policy

THREADS = 8
PER_THREAD = 5000


def test_exact_accounting_under_contention(lines: Any) -> None:
    """Every emit is accounted for exactly once: sent or dropped by reason."""
    telemetry.configure(backend="stderr", stream=lines, queue_size=500, random_seed=3)
    rt = _core.current()
    start = threading.Barrier(THREADS + 1)
    stop = threading.Event()

    def worker(t: int) -> None:
        start.wait()
        for i in range(PER_THREAD):
            telemetry.emit("python.call.stop" if i % 3 else "python.gc.completed", {"t": t, "i": i}, {"k": "v"})

    def flipper() -> None:
        start.wait()
        n = 0
        while not stop.is_set():
            n += 1
            _core.set_policy(rt, Policy(rules=[("python.gc.*", 0.5)], deny=["python.call.*"] if n % 2 else []))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    f = threading.Thread(target=flipper)
    for t in threads + [f]:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    f.join()
    assert telemetry.flush(30)
    st = telemetry.stats()
    total = THREADS * PER_THREAD
    # queue capacity can be exceeded by at most one event per racing thread
    assert st["queued"] + sum(st["dropped"].values()) == total
    assert set(st["dropped"]) <= {"queue_full", "filtered", "sampled_out"}
    assert st["sent"] == st["queued"] == len(lines.events())
    seen = set()
    for e in lines.events():
        key = (e["measurements"]["t"], e["measurements"]["i"])
        assert key not in seen
        seen.add(key)
    # per thread, events keep their emit order
    for t in range(THREADS):
        order = [e["measurements"]["i"] for e in lines.events() if e["measurements"]["t"] == t]
        assert order == sorted(order)


def test_many_asyncio_tasks(lines: Any) -> None:
    telemetry.configure(backend="stderr", stream=lines, queue_size=100000)

    async def task(n: int) -> None:
        for i in range(50):
            telemetry.emit("a.b", {"n": n, "i": i})
            await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(task(n) for n in range(100)))

    asyncio.run(main())
    assert telemetry.flush(30)
    assert len(lines.events()) == 5000 and telemetry.stats()["dropped"] == {}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_gets_its_own_sender(host: FakeHost) -> None:
    """A forked child starts its own sender and stream (with its own worker
    id and counters); the parent's stream pauses around the fork and
    resumes; nothing is lost or duplicated."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNAKEPIPE_", "GRPC_"))}
    script = os.path.join(os.path.dirname(__file__), "fork_worker.py")
    r = subprocess.run([sys.executable, script, host.endpoint], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    child, parent = out["child"], out["parent"]
    assert out["child_exit"] == 0 and child["ok"] is True, out
    assert child["stats"]["worker_id"] == f"parent/{out['child_pid']}"
    assert child["stats"]["queued"] == 5 and child["stats"]["sent"] == 5 and child["stats"]["dropped"] == {}
    assert parent["ok"] is True
    assert parent["stats"]["queued"] == 2 and parent["stats"]["sent"] == 2 and parent["stats"]["dropped"] == {}
    assert host.wait_for(lambda: len(host.events) == 7)
    got = sorted((e.measurements[0].value.int_value, e.measurements[1].value.int_value) for e in host.events)
    assert got == [(0, 0), (0, 1)] + [(1, i) for i in range(5)]
    pids = {h.worker_id: h.pid for h in host.hellos}
    assert pids == {"parent": parent["pid"], f"parent/{out['child_pid']}": out["child_pid"]}
