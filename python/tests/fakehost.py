"""An in-process snakepipe ingest server for unit tests of the sender.

It speaks the real protocol over real gRPC on 127.0.0.1: reads Hello,
answers Welcome, records every frame, lets a test push control frames down
any stream, and ends a stream when the worker half-closes (as snakepipe
does). The real binary is exercised by the integration tests.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent import futures
from typing import Any, Callable, List, Optional

import grpc

from snakepipe.v1 import ingest_pb2 as pb
from snakepipe.v1 import ingest_pb2_grpc as pbg

_END = object()


class StreamHandle:
    """One worker stream on the fake host."""

    def __init__(self) -> None:
        self.outbox: "queue.Queue[Any]" = queue.Queue()
        self.hello: Optional[pb.Hello] = None
        self.half_closed = threading.Event()
        self.finished = threading.Event()

    def send(self, msg: pb.ControlMessage) -> None:
        self.outbox.put(msg)

    def end(self) -> None:
        """End the stream from the host side (status OK)."""
        self.outbox.put(_END)


class FakeHost(pbg.IngestServicer):
    def __init__(self, policy: Optional[pb.Policy] = None, stats_interval_ms: int = 0,
                 max_message_bytes: int = 0, port: int = 0, welcome: bool = True,
                 welcome_delay: float = 0.0) -> None:
        self.policy = policy
        self.stats_interval_ms = stats_interval_ms
        self.max_message_bytes = max_message_bytes
        self.send_welcome = welcome
        self.welcome_delay = welcome_delay
        self.frames: List[pb.WorkerMessage] = []
        self.events: List[pb.Event] = []
        self.stats: List[pb.WorkerStats] = []
        self.hellos: List[pb.Hello] = []
        self.streams: List[StreamHandle] = []
        self.cond = threading.Condition()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        pbg.add_IngestServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.endpoint = f"127.0.0.1:{self.port}"

    def start(self) -> "FakeHost":
        self.server.start()
        return self

    def stop(self, grace: Optional[float] = None) -> None:
        for h in list(self.streams):
            h.end()
        self.server.stop(grace).wait()

    def _record(self, msg: pb.WorkerMessage) -> None:
        with self.cond:
            self.frames.append(msg)
            kind = msg.WhichOneof("msg")
            if kind == "batch":
                self.events.extend(msg.batch.events)
            elif kind == "stats":
                self.stats.append(msg.stats)
            elif kind == "hello":
                self.hellos.append(msg.hello)
            self.cond.notify_all()

    def wait_for(self, pred: Callable[[], bool], timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.1))
        return True

    def names(self) -> List[str]:
        with self.cond:
            return [e.name for e in self.events]

    def Stream(self, request_iterator: Any, context: Any) -> Any:  # noqa: N802 (gRPC name)
        handle = StreamHandle()
        try:
            first = next(request_iterator)
        except StopIteration:
            return
        self._record(first)
        if first.WhichOneof("msg") != "hello":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "first frame must be hello")
        handle.hello = first.hello
        with self.cond:
            self.streams.append(handle)
            self.cond.notify_all()

        def read() -> None:
            try:
                for msg in request_iterator:
                    self._record(msg)
            except Exception:
                pass
            handle.half_closed.set()
            handle.outbox.put(_END)

        threading.Thread(target=read, daemon=True).start()
        if self.welcome_delay:
            time.sleep(self.welcome_delay)
        if self.send_welcome:
            w = pb.Welcome(protocol_version=1, host_id="fake", stats_interval_ms=self.stats_interval_ms,
                           max_message_bytes=self.max_message_bytes)
            if self.policy is not None:
                w.policy.CopyFrom(self.policy)
            yield pb.ControlMessage(welcome=w)
        while True:
            item = handle.outbox.get()
            if item is _END:
                break
            yield item
        handle.finished.set()
