"""Helper process for test_fork: a worker that forks while streaming.

Run as ``python fork_worker.py ENDPOINT``; prints one JSON line with the
parent's and the child's results. It runs in its own process because the
test process hosts an in-process gRPC server, and gRPC cannot be used in a
child forked while a server is running.
"""

import json
import os
import sys

from snakepipe import telemetry


def main() -> None:
    endpoint = sys.argv[1]
    telemetry.configure(endpoint=endpoint, worker_id="parent")
    telemetry.emit("a.b", {"who": 0, "i": 0})
    assert telemetry.flush(10)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            for i in range(5):
                telemetry.emit("a.b", {"who": 1, "i": i})
            ok = telemetry.shutdown(20)
            os.write(w, json.dumps({"ok": ok, "stats": telemetry.stats()}).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    _, status = os.waitpid(pid, 0)
    telemetry.emit("a.b", {"who": 0, "i": 1})
    ok = telemetry.shutdown(20)
    print(json.dumps({
        "child": json.loads(data or b"null"),
        "child_exit": os.waitstatus_to_exitcode(status),
        "child_pid": pid,
        "parent": {"ok": ok, "stats": telemetry.stats(), "pid": os.getpid()},
    }))


if __name__ == "__main__":
    main()
