"""Correlation context variable and gRPC metadata helpers."""

from __future__ import annotations

import asyncio
import threading
from concurrent import futures
from typing import Any, List, Optional

import grpc
import pytest

from snakepipe import telemetry
from snakepipe.correlation import CORRELATION_HEADER, SNAKEPIT_CORRELATION_HEADER


def test_set_get_reset() -> None:
    assert telemetry.get_correlation_id() is None
    assert telemetry.get_correlation_id("d") == "d"
    tok = telemetry.set_correlation_id("a")
    tok2 = telemetry.set_correlation_id("b")
    assert telemetry.get_correlation_id() == "b"
    telemetry.reset_correlation_id(tok2)
    assert telemetry.get_correlation_id() == "a"
    telemetry.reset_correlation_id(tok)
    assert telemetry.get_correlation_id() is None


def test_new_id_and_context_manager() -> None:
    a, b = telemetry.new_correlation_id(), telemetry.new_correlation_id()
    assert a != b and len(a) == 32
    with telemetry.correlation() as cid:
        assert telemetry.get_correlation_id() == cid and len(cid) == 32
    assert telemetry.get_correlation_id() is None


def test_emit_uses_context_and_explicit_wins(lines: Any) -> None:
    telemetry.emit("a.b", {})
    with telemetry.correlation("ctx"):
        telemetry.emit("a.b", {})
        telemetry.emit("a.b", {}, correlation_id="explicit")
    assert telemetry.flush(5)
    assert [e.get("correlation_id") for e in lines.events()] == [None, "ctx", "explicit"]


def test_asyncio_tasks_are_isolated(lines: Any) -> None:
    async def handle(cid: str) -> None:
        with telemetry.correlation(cid):
            await asyncio.sleep(0)
            telemetry.emit("a.b", {"x": int(cid)})

    async def main() -> None:
        await asyncio.gather(*(handle(str(i)) for i in range(20)))

    asyncio.run(main())
    assert telemetry.flush(5)
    for e in lines.events():
        assert e["correlation_id"] == str(e["measurements"]["x"])


def test_threads_do_not_share_ids() -> None:
    seen: List[Optional[str]] = []
    tok = telemetry.set_correlation_id("main")
    t = threading.Thread(target=lambda: seen.append(telemetry.get_correlation_id()))
    t.start()
    t.join()
    telemetry.reset_correlation_id(tok)
    assert seen == [None]


class Md:
    def __init__(self, key: str, value: Any) -> None:
        self.key, self.value = key, value


@pytest.mark.parametrize(
    "md, want",
    [
        ([(CORRELATION_HEADER, "a")], "a"),
        ([(SNAKEPIT_CORRELATION_HEADER, "sp-1")], "sp-1"),
        ([("X-Snakepit-Correlation-Id", "upper")], "upper"),
        ([(SNAKEPIT_CORRELATION_HEADER, "old"), (CORRELATION_HEADER, "new")], "new"),
        ([Md(CORRELATION_HEADER, b"bytes")], "bytes"),
        ([("other", "x")], None),
        ([(CORRELATION_HEADER, "  ")], None),
        (None, None),
        ([object()], None),
    ],
)
def test_correlation_id_from_metadata(md: Any, want: Optional[str]) -> None:
    assert telemetry.correlation_id_from_metadata(md) == want


def test_outgoing_metadata() -> None:
    assert telemetry.outgoing_metadata() == []
    assert telemetry.outgoing_metadata([("a", "1")], correlation_id="x") == [("a", "1"), (CORRELATION_HEADER, "x")]
    with telemetry.correlation("ctx"):
        assert telemetry.outgoing_metadata([(CORRELATION_HEADER, "stale")]) == [(CORRELATION_HEADER, "ctx")]


def test_correlation_from_metadata_scope() -> None:
    with telemetry.correlation_from_metadata([(SNAKEPIT_CORRELATION_HEADER, "host")]) as cid:
        assert cid == "host" == telemetry.get_correlation_id()
    with telemetry.correlation("existing"):
        with telemetry.correlation_from_metadata([]) as cid:
            assert cid == "existing"
    with telemetry.correlation_from_metadata([]) as cid:
        assert cid and len(cid) == 32
    with telemetry.correlation_from_metadata([], create=False) as cid:
        assert cid is None
    assert telemetry.get_correlation_id() is None


def test_header_round_trip_over_real_grpc() -> None:
    """A client sends outgoing_metadata(); a server handler reads it back."""
    got: List[Optional[str]] = []

    def echo(request: bytes, context: Any) -> bytes:
        with telemetry.correlation_from_metadata(context.invocation_metadata()) as cid:
            got.append(cid)
            return (telemetry.get_correlation_id() or "").encode()

    handler = grpc.method_handlers_generic_handler(
        "test.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            call = ch.unary_unary("/test.Echo/Echo")
            with telemetry.correlation("req-42"):
                reply = call(b"", metadata=telemetry.outgoing_metadata(), timeout=10)
            legacy = call(b"", metadata=[(SNAKEPIT_CORRELATION_HEADER, "sp-abc")], timeout=10)
    finally:
        server.stop(0)
    assert reply == b"req-42" and legacy == b"sp-abc"
    assert got == ["req-42", "sp-abc"]
