"""One Python worker process emitting as fast as it can to a running snakepipe.

    python bench/load_worker.py --endpoint 127.0.0.1:7417 --duration 10 --worker-id py-1

Run by `make bench` (cmd/snakepipe/internal/benchrun), several at once, to
measure what the snakepipe Python library costs a worker at full speed.
Events are python.call.stop with 2 measurements and 2 metadata items.
Every `chunk` emits it waits for the queue to drain (telemetry.flush), so
the run measures the whole worker side (emit, encode, gRPC send) without
dropping events because the queue was full.

Prints one JSON object: events emitted, sent (acknowledged by the sender
thread), dropped by reason, wall seconds, and the process CPU seconds
(time.process_time: the calling thread, the sender thread and gRPC's).
Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import time

from snakepipe import telemetry

M = {"duration": 1200, "ratio": 0.5}
MD = {"tool": "resize", "model": "m1"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--worker-id", required=True)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of emitting")
    ap.add_argument("--chunk", type=int, default=1000, help="emits between flushes")
    args = ap.parse_args()

    telemetry.configure(endpoint=args.endpoint, worker_id=args.worker_id, pool="bench-python", random_seed=1)
    deadline = time.monotonic() + 30
    while not telemetry.stats()["connected"]:
        if time.monotonic() > deadline:
            raise SystemExit("could not connect to " + args.endpoint)
        time.sleep(0.01)

    emit = telemetry.emit
    emitted = 0
    c0, w0 = time.process_time(), time.perf_counter()
    end = w0 + args.duration
    while time.perf_counter() < end:
        for _ in range(args.chunk):
            emit("python.call.stop", M, MD)
        emitted += args.chunk
        telemetry.flush(10)
    c1, w1 = time.process_time(), time.perf_counter()
    st = telemetry.stats()
    telemetry.shutdown(10)
    print(json.dumps({
        "worker_id": args.worker_id,
        "emitted": emitted,
        "sent": st.get("sent", 0),
        "dropped": st.get("dropped", {}),
        "wall_seconds": w1 - w0,
        "cpu_seconds": c1 - c0,
    }))


if __name__ == "__main__":
    main()
