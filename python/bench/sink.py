"""A minimal snakepipe ingest endpoint for the benchmark (separate process).

Prints its port on stdout, then serves until stdin is closed. It answers
Hello with Welcome (default policy) and counts the events it receives, so
the worker's CPU can be measured without a sink sharing its process.
"""

import sys
import threading
from concurrent import futures

import grpc

from snakepipe.v1 import ingest_pb2 as pb
from snakepipe.v1 import ingest_pb2_grpc as pbg


class Sink(pbg.IngestServicer):
    def __init__(self) -> None:
        self.events = 0
        self.lock = threading.Lock()

    def Stream(self, request_iterator, context):  # noqa: N802
        first = next(request_iterator, None)
        if first is None:
            return
        yield pb.ControlMessage(welcome=pb.Welcome(
            policy=pb.Policy(enabled=True, default_sample_rate=1.0), protocol_version=1, host_id="bench-sink",
            stats_interval_ms=10000))
        for msg in request_iterator:
            if msg.WhichOneof("msg") == "batch":
                with self.lock:
                    self.events += len(msg.batch.events)


def main() -> None:
    sink = Sink()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pbg.add_IngestServicer_to_server(sink, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    for line in sys.stdin:
        if line.strip() == "count":
            with sink.lock:
                print(sink.events, flush=True)
    server.stop(0)


if __name__ == "__main__":
    main()
