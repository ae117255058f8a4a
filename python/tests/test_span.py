"""span in sync, async, exception and BaseException paths; instrument/call."""

from __future__ import annotations

import asyncio
from typing import Any, List

import pytest

from snakepipe import telemetry


def names(lines: Any) -> List[str]:
    assert telemetry.flush(5)
    return [e["name"] for e in lines.events()]


def test_span_sync(lines: Any) -> None:
    with telemetry.span("tool.execution", {"tool": "t"}) as s:
        assert isinstance(s, telemetry.span)
    evs = (telemetry.flush(5), lines.events())[1]
    assert [e["name"] for e in evs] == ["tool.execution.start", "tool.execution.stop"]
    assert evs[0]["measurements"]["system_time"] > 1_600_000_000 * 10**9
    assert evs[1]["measurements"]["duration"] >= 0
    assert all(e["metadata"] == {"tool": "t"} for e in evs)


def test_span_exception_reraised(lines: Any) -> None:
    with pytest.raises(ValueError, match="bad input"):
        with telemetry.span("tool.execution", {"tool": "t"}):
            raise ValueError("bad input")
    assert telemetry.flush(5)
    evs = lines.events()
    assert [e["name"] for e in evs] == ["tool.execution.start", "tool.execution.exception"]
    assert evs[1]["metadata"] == {"tool": "t", "error_type": "ValueError", "error_message": "bad input"}
    assert evs[1]["measurements"]["duration"] >= 0


@pytest.mark.parametrize("exc", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_span_base_exception(lines: Any, exc: Any) -> None:
    with pytest.raises(exc):
        with telemetry.span("tool.execution"):
            raise exc()
    assert names(lines) == ["tool.execution.start", "tool.execution.exception"]
    assert lines.events()[1]["metadata"]["error_type"] == exc.__name__


def test_span_telemetry_error_does_not_mask(lines: Any) -> None:
    class Boom(Exception):
        def __str__(self) -> str:
            raise RuntimeError("str failed")

    with pytest.raises(Boom):
        with telemetry.span("tool.execution", {1: "bad key"}):  # type: ignore[dict-item]
            raise Boom()
    assert telemetry.flush(5)
    assert lines.events() == []
    assert telemetry.stats()["dropped"] == {"invalid_key": 2}


def test_span_decorator_sync(lines: Any) -> None:
    @telemetry.span("tool.execution")
    def f(x: int) -> int:
        if x < 0:
            raise ValueError("neg")
        return x * 2

    assert f(2) == 4
    with pytest.raises(ValueError):
        f(-1)
    assert f.__name__ == "f"
    assert names(lines) == [
        "tool.execution.start", "tool.execution.stop", "tool.execution.start", "tool.execution.exception",
    ]


def test_span_nested_reuse_in_one_thread(lines: Any) -> None:
    s = telemetry.span("tool.execution")
    with s:
        with s:
            pass
    assert names(lines) == ["tool.execution.start"] * 2 + ["tool.execution.stop"] * 2


def test_span_async_with_and_decorator(lines: Any) -> None:
    @telemetry.span("tool.execution")
    async def work(x: int) -> int:
        await asyncio.sleep(0)
        return x + 1

    async def main() -> None:
        async with telemetry.span("python.call", {"command": "c"}):
            await asyncio.sleep(0)
        assert await work(1) == 2
        # interleaved calls of the same decorated coroutine each get their own timing
        assert await asyncio.gather(*(work(i) for i in range(5))) == [1, 2, 3, 4, 5]

    asyncio.run(main())
    n = names(lines)
    assert n[:2] == ["python.call.start", "python.call.stop"]
    assert n.count("tool.execution.start") == 6 and n.count("tool.execution.stop") == 6


def test_span_async_cancelled(lines: Any) -> None:
    started = asyncio.Event

    async def main() -> None:
        ev = started()

        @telemetry.span("tool.execution")
        async def slow() -> None:
            ev.set()
            await asyncio.sleep(3600)

        t = asyncio.ensure_future(slow())
        await ev.wait()
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t

    asyncio.run(main())
    assert names(lines) == ["tool.execution.start", "tool.execution.exception"]
    assert lines.events()[1]["metadata"]["error_type"] == "CancelledError"


def test_span_async_exception(lines: Any) -> None:
    async def main() -> None:
        async with telemetry.span("tool.execution"):
            raise KeyError("k")

    with pytest.raises(KeyError):
        asyncio.run(main())
    assert names(lines) == ["tool.execution.start", "tool.execution.exception"]


def test_span_uses_correlation_context(lines: Any) -> None:
    with telemetry.correlation("req-1"):
        with telemetry.span("tool.execution"):
            pass
    with telemetry.span("tool.execution", correlation_id="explicit"):
        pass
    assert telemetry.flush(5)
    cids = [e.get("correlation_id") for e in lines.events()]
    assert cids == ["req-1", "req-1", "explicit", "explicit"]


def test_span_invalid_name_counted(lines: Any) -> None:
    with telemetry.span(None):  # type: ignore[arg-type]
        pass
    assert telemetry.stats()["dropped"] == {"invalid_name": 2}


def test_instrument_and_call(lines: Any) -> None:
    @telemetry.instrument
    def predict(x: int) -> int:
        return x

    @telemetry.instrument(command="resize", metadata={"model": "m"})
    def other() -> None:
        raise RuntimeError("x")

    assert predict(3) == 3
    with pytest.raises(RuntimeError):
        other()
    assert telemetry.call(len, [1, 2], command="len") == 2
    assert telemetry.flush(5)
    evs = lines.events()
    assert [e["name"] for e in evs] == [
        "python.call.start", "python.call.stop", "python.call.start", "python.call.exception",
        "python.call.start", "python.call.stop",
    ]
    assert evs[0]["metadata"]["command"].endswith("predict")
    assert evs[3]["metadata"]["command"] == "resize" and evs[3]["metadata"]["model"] == "m"
    assert evs[4]["metadata"] == {"command": "len"}
