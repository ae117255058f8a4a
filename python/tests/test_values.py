"""Encoding rules and drop reasons of emit (via the stderr backend)."""

from __future__ import annotations

import enum
import fractions
from decimal import Decimal
from typing import Any

import pytest

from snakepipe import telemetry

INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)


def emit_one(lines: Any, measurements: Any, metadata: Any = None, name: str = "python.call.stop") -> Any:
    before = len(lines.events())
    telemetry.emit(name, measurements, metadata)
    assert telemetry.flush(5)
    evs = lines.events()
    return evs[before] if len(evs) > before else None


class Color(enum.IntEnum):
    RED = 3


class Idx:
    def __index__(self) -> int:
        return 42


class BadStr:
    def __str__(self) -> str:
        raise RuntimeError("no")


@pytest.mark.parametrize(
    "value, expected",
    [
        (True, 1),
        (False, 0),
        (0, 0),
        (-5, -5),
        (INT64_MAX, INT64_MAX),
        (INT64_MIN, INT64_MIN),
        (0.5, 0.5),
        (2.0, 2.0),
        ("text", "text"),
        (Color.RED, 3),
        (Idx(), 42),
        (Decimal("1.25"), 1.25),
        (fractions.Fraction(1, 4), 0.25),
    ],
)
def test_measurement_values_encoded(lines: Any, value: Any, expected: Any) -> None:
    ev = emit_one(lines, {"v": value})
    assert ev is not None
    got = ev["measurements"]["v"]
    assert got == expected
    assert type(got) is type(expected)


def test_bool_is_int_not_float_on_the_wire(lines: Any) -> None:
    telemetry.emit("python.call.stop", {"ok": True, "f": 2.0})
    assert telemetry.flush(5)
    raw = lines.getvalue()
    assert '"ok":1' in raw and '"f":2.0' in raw


@pytest.mark.parametrize(
    "measurements, reason",
    [
        ({"v": INT64_MAX + 1}, "invalid_value"),
        ({"v": INT64_MIN - 1}, "invalid_value"),
        ({"v": float("nan")}, "invalid_value"),
        ({"v": float("inf")}, "invalid_value"),
        ({"v": -float("inf")}, "invalid_value"),
        ({"v": Decimal("NaN")}, "invalid_value"),
        ({"v": object()}, "invalid_value"),
        ({"v": [1, 2]}, "invalid_value"),
        ({"v": {"a": 1}}, "invalid_value"),
        ({"v": b"bytes"}, "invalid_value"),
        ({"v": 1j}, "invalid_value"),
        ({1: 1}, "invalid_key"),
        ({("a",): 1}, "invalid_key"),
        ([("v", 1)], "invalid_value"),
        ("not a dict", "invalid_value"),
    ],
)
def test_bad_measurements_dropped_with_reason(lines: Any, measurements: Any, reason: str) -> None:
    telemetry.emit("python.call.stop", measurements)
    assert telemetry.flush(5)
    assert lines.events() == []
    st = telemetry.stats()
    assert st["dropped"] == {reason: 1}
    assert st["queued"] == 0


@pytest.mark.parametrize(
    "metadata, expected",
    [
        ({"a": "x"}, {"a": "x"}),
        ({"a": 3}, {"a": "3"}),
        ({"a": 0.5}, {"a": "0.5"}),
        ({"a": True}, {"a": "true"}),
        ({"a": None, "b": "y"}, {"b": "y"}),
        ({"a": b"raw\xff"}, {"a": "raw\ufffd"}),
        ({"a": {"k": 1}}, {"a": "{'k': 1}"}),
        (None, {}),
    ],
)
def test_metadata_values(lines: Any, metadata: Any, expected: Any) -> None:
    ev = emit_one(lines, {"v": 1}, metadata)
    assert ev["metadata"] == expected


@pytest.mark.parametrize(
    "metadata, reason",
    [({1: "x"}, "invalid_key"), ({"a": BadStr()}, "invalid_value"), (["a"], "invalid_value")],
)
def test_bad_metadata_dropped(lines: Any, metadata: Any, reason: str) -> None:
    telemetry.emit("python.call.stop", {"v": 1}, metadata)
    assert telemetry.flush(5)
    assert lines.events() == []
    assert telemetry.stats()["dropped"] == {reason: 1}


def test_none_measurements_and_none_values(lines: Any) -> None:
    ev = emit_one(lines, None)
    assert ev["measurements"] == {}
    ev = emit_one(lines, {"request_size": None, "duration": 5})
    assert ev["measurements"] == {"duration": 5}


@pytest.mark.parametrize(
    "name",
    ["", "a..b", ".a", "a.", "with space", "tab\tname", "ümlaut.x", "x" * 256, 5, None, b"python.call"],
)
def test_invalid_names(lines: Any, name: Any) -> None:
    telemetry.emit(name, {"v": 1})
    assert telemetry.flush(5)
    assert lines.events() == []
    assert telemetry.stats()["dropped"] == {"invalid_name": 1}


def test_unhashable_name_is_invalid_not_raised(lines: Any) -> None:
    telemetry.emit(["python", "call"], {"v": 1})  # type: ignore[arg-type]
    assert telemetry.stats()["dropped"] == {"invalid_name": 1}


class ExplodingMapping(dict):
    def items(self):  # type: ignore[override]
        raise RuntimeError("boom")

    def copy(self):  # type: ignore[override]
        raise RuntimeError("boom")


def test_emit_never_raises(lines: Any) -> None:
    telemetry.emit("python.call.stop", ExplodingMapping(v=1))
    telemetry.emit("python.call.stop", {"v": 1}, ExplodingMapping(a="b"))
    telemetry.emit("python.call.stop", {"v": 1}, correlation_id=12)  # type: ignore[arg-type]
    assert telemetry.flush(5)
    dropped = telemetry.stats()["dropped"]
    assert sum(dropped.values()) == 2
    assert len(lines.events()) == 1
    assert lines.events()[0]["correlation_id"] == "12"


def test_caller_dict_is_snapshotted(lines: Any) -> None:
    m = {"v": 1}
    md = {"a": "x"}
    telemetry.emit("python.call.stop", m, md)
    m["v"] = 2
    md["a"] = "changed"
    assert telemetry.flush(5)
    ev = lines.events()[0]
    assert ev["measurements"] == {"v": 1} and ev["metadata"] == {"a": "x"}


def test_long_metadata_truncated() -> None:
    from conftest import Lines

    buf = Lines()
    telemetry.configure(backend="stderr", stream=buf, max_value_len=10)
    telemetry.emit("python.call.stop", {"v": 1}, {"tb": "x" * 1000})
    assert telemetry.flush(5)
    assert buf.events()[0]["metadata"]["tb"] == "x" * 10
