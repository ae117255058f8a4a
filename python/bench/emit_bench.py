"""Cost of snakepipe's emit() and of the whole worker side per event.

    python bench/emit_bench.py            (run by `make bench-python`)

Prints a Markdown table. Per-call figures are the median over rounds of
ns per emit() in the calling thread, with 2 measurements and 2 metadata
items: kept (streamed over real gRPC to a sink in another process),
disabled, filtered out, sampled out. "worker CPU per event" is the process
CPU time (time.process_time: the caller, the sender thread and gRPC's
threads) over a run of kept events, divided by the events received by the
sink. Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

import grpc
from google.protobuf.internal import api_implementation

from snakepipe import _core, telemetry
from snakepipe._policy import Policy

M = {"duration": 1200, "ratio": 0.5}
MD = {"tool": "resize", "model": "m1"}


def per_call(name: str, rounds: int, n: int, drain: bool) -> float:
    """Median ns per emit over `rounds` loops of `n` calls."""
    emit = telemetry.emit
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        for _ in range(n):
            emit(name, M, MD)
        samples.append((time.perf_counter_ns() - t0) / n)
        if drain:
            telemetry.flush(10)
    return statistics.median(samples)


def wait_count(sink: subprocess.Popen, want: int, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    got = 0
    while time.monotonic() < deadline:
        sink.stdin.write("count\n")
        sink.stdin.flush()
        got = int(sink.stdout.readline())
        if got >= want:
            break
        time.sleep(0.05)
    return got


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--n", type=int, default=500, help="emits per round (kept rounds must fit the queue)")
    ap.add_argument("--cpu-events", type=int, default=200_000)
    args = ap.parse_args()

    here = os.path.dirname(os.path.abspath(__file__))
    sink = subprocess.Popen([sys.executable, os.path.join(here, "sink.py")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        port = int(sink.stdout.readline())
        telemetry.configure(endpoint=f"127.0.0.1:{port}", worker_id="bench", random_seed=1)
        deadline = time.monotonic() + 30
        while not telemetry.stats()["connected"] and time.monotonic() < deadline:
            time.sleep(0.01)
        rt = _core.current()

        rows = []
        rows.append(("kept (sent over gRPC)", per_call("python.call.stop", args.rounds, args.n, drain=True)))
        _core.set_policy(rt, Policy(enabled=False))
        rows.append(("disabled (toggle off)", per_call("python.call.stop", args.rounds, args.n * 4, drain=False)))
        _core.set_policy(rt, Policy(deny=["python.memory.*"]))
        rows.append(("filtered out (deny glob)", per_call("python.memory.sampled", args.rounds, args.n * 4, drain=False)))
        _core.set_policy(rt, Policy(rules=[("python.gc.*", 0.0)]))
        rows.append(("sampled out (rate 0)", per_call("python.gc.completed", args.rounds, args.n * 4, drain=False)))
        _core.set_policy(rt, Policy(rules=[("python.gc.*", 0.01)]))
        rows.append(("sampled out (rate 0.01, 99% dropped)", per_call("python.gc.completed", args.rounds, args.n * 4, drain=False)))
        _core.set_policy(rt, Policy())
        telemetry.flush(10)
        st = telemetry.stats()
        dropped_during_percall = st["dropped"].get("queue_full", 0)

        # Whole worker CPU per kept event, sender and gRPC threads included.
        base = wait_count(sink, st["sent"])
        chunk = 1000
        total = (args.cpu_events // chunk) * chunk
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(total // chunk):
            for _ in range(chunk):
                telemetry.emit("python.call.stop", M, MD)
            telemetry.flush(10)
        c1, w1 = time.process_time(), time.perf_counter()
        received = wait_count(sink, base + total) - base
        dropped = telemetry.stats()["dropped"].get("queue_full", 0) - dropped_during_percall
        telemetry.shutdown(10)
    finally:
        sink.stdin.close()
        sink.wait(10)

    print(f"Python {platform.python_version()} ({platform.machine()}), protobuf {api_implementation.Type()}, "
          f"grpcio {grpc.__version__}, {os.cpu_count()} CPUs")
    print()
    print("| emit() with 2 measurements + 2 metadata | ns per call (median of rounds) |")
    print("|---|---:|")
    for label, ns in rows:
        print(f"| {label} | {ns:.0f} |")
    print()
    print(f"worker CPU per kept event (emit + encode + gRPC send, all threads): "
          f"{(c1 - c0) / max(received, 1) * 1e9:.0f} ns "
          f"({received} of {total} events received by the sink, {dropped} dropped; "
          f"{total / (w1 - w0):.0f} events/s wall)")


if __name__ == "__main__":
    main()
