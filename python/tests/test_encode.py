"""The hand-written protobuf encoder against the generated protobuf code,
and the JSON line format."""

from __future__ import annotations

import json
from typing import Any, Dict

import pytest

from snakepipe._encode import EventEncoder, batch_message, json_line, varint
from snakepipe.v1 import ingest_pb2 as pb

INT64_MAX = (1 << 63) - 1
INT64_MIN = -(1 << 63)


def reference(item: Any) -> pb.Event:
    name, m, md, ts, cid, rate = item
    ev = pb.Event(name=name, timestamp_ns=ts, correlation_id=cid or "", sample_rate=rate)
    for k, v in m.items():
        e = ev.measurements.add(key=k)
        if isinstance(v, bool) or isinstance(v, int):
            e.value.int_value = int(v)
        elif isinstance(v, float):
            e.value.float_value = v
        else:
            e.value.string_value = v
    for k, v in md.items():
        ev.metadata.add(key=k, value=v)
    return ev


ITEMS = [
    ("python.call.stop", {"duration": 1200, "ratio": 0.5}, {"tool": "x"}, 1732500000000000000, "abc", 0.0),
    ("a", {}, {}, 0, None, 0.0),
    ("a.b", {"v": 127}, {}, 1, "", 0.25),
    ("a.b", {"v": 128, "w": 16383, "x": 16384}, {}, (1 << 28) - 1, None, 0.0),
    ("a.b", {"v": -1, "min": INT64_MIN, "max": INT64_MAX}, {}, 1 << 28, None, 0.0),
    ("a.b", {"t": True, "f": False}, {}, INT64_MAX, None, 0.0),
    ("a.b", {"s": "str value", "u": "ünïcode ✓"}, {"k": "v" * 300}, -5, None, 0.5),
    ("a.b", {"f": -0.0, "big": 1e300, "tiny": 5e-324}, {"é": "ç"}, 1795600000123456789, "c" * 200, 0.001),
]


@pytest.mark.parametrize("item", ITEMS, ids=[str(i) for i in range(len(ITEMS))])
def test_encoder_matches_protobuf(item: Any) -> None:
    enc = EventEncoder()
    got = pb.Event.FromString(enc.encode(item))
    assert got == reference(item)
    # Second encode goes through the caches.
    assert pb.Event.FromString(enc.encode(item)) == reference(item)


def test_lone_surrogate_replaced_not_sent_as_invalid_utf8() -> None:
    item = ("a.b", {"s": "x\ud800y"}, {"k\udfff": "v"}, 1, None, 0.0)
    got = pb.Event.FromString(EventEncoder().encode(item))
    assert got.measurements[0].value.string_value == "x?y"
    assert got.metadata[0].key == "k?"


def test_metadata_truncated_in_encoder() -> None:
    item = ("a.b", {}, {"tb": "y" * 50}, 1, None, 0.0)
    got = pb.Event.FromString(EventEncoder(max_value_len=8).encode(item))
    assert got.metadata[0].value == "y" * 8


def test_caches_are_bounded() -> None:
    enc = EventEncoder()
    enc.CACHE_MAX = 10
    for i in range(100):
        enc.encode((f"n{i}", {f"k{i}": i}, {"a": str(i)}, 1, None, 0.0))
    assert len(enc._names) <= 10 and len(enc._ikeys) <= 10 and len(enc._pairs) <= 10


def test_batch_message_decodes() -> None:
    enc = EventEncoder()
    frame = batch_message([enc.encode(i) for i in ITEMS], 7)
    msg = pb.WorkerMessage.FromString(frame)
    assert msg.WhichOneof("msg") == "batch"
    assert msg.batch.sequence == 7
    assert list(msg.batch.events) == [reference(i) for i in ITEMS]


@pytest.mark.parametrize("n", [0, 1, 127, 128, 300, 16383, 16384, 1 << 35, (1 << 64) - 1])
def test_varint(n: int) -> None:
    from google.protobuf.internal.decoder import _DecodeVarint  # type: ignore[attr-defined]

    assert _DecodeVarint(varint(n), 0) == (n, len(varint(n)))


def test_json_line_format() -> None:
    item = ("python.call.stop", {"duration": 1200, "ratio": 0.5, "two": 2.0, "ok": True, "s": "x"},
            {"tool": "x", "b": "\"q\""}, 1732500000000000000, "abc", 0.0)
    origin: Dict[str, Any] = {"worker_id": "w1", "pool": "p", "hostname": "h", "pid": 42}
    line = json_line(item, origin)
    assert line == (
        '{"name":"python.call.stop","timestamp_ns":1732500000000000000,"correlation_id":"abc",'
        '"sample_rate":1,"measurements":{"duration":1200,"ratio":0.5,"two":2.0,"ok":1,"s":"x"},'
        '"metadata":{"tool":"x","b":"\\"q\\""},"worker_id":"w1","pool":"p","hostname":"h","pid":42}'
    )
    assert json.loads(line)["metadata"]["b"] == '"q"'


def test_json_line_omits_empty_correlation_and_keeps_rate() -> None:
    line = json_line(("a.b", {}, {}, 5, None, 0.25), {})
    assert line == '{"name":"a.b","timestamp_ns":5,"sample_rate":0.25,"measurements":{},"metadata":{}}'


def _random_item(rng: "random.Random") -> Any:
    def rstr(n: int) -> str:
        alphabet = "abcxyz._-é✓\u0000\n\"\\" + chr(0x1F600)
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, n)))

    m: Dict[str, Any] = {}
    for _ in range(rng.randint(0, 6)):
        kind = rng.randint(0, 4)
        if kind == 0:
            v: Any = rng.randint(INT64_MIN, INT64_MAX)
        elif kind == 1:
            v = rng.randint(-300, 20000)
        elif kind == 2:
            v = rng.uniform(-1e12, 1e12)
        elif kind == 3:
            v = rng.random() < 0.5
        else:
            v = rstr(40)
        m[rstr(10)] = v
    md = {rstr(10): rstr(rng.choice((5, 80, 400))) for _ in range(rng.randint(0, 5))}
    ts = rng.choice((0, rng.randint(0, 1 << 28), rng.randint(1 << 28, INT64_MAX), rng.randint(INT64_MIN, -1)))
    cid = rng.choice((None, "", rstr(30)))
    rate = rng.choice((0.0, rng.random()))
    return (rstr(30) or "x", m, md, ts, cid, rate)


def test_encoder_randomized_against_protobuf() -> None:
    """Seeded random events: hand encoding == generated-code encoding."""
    import random

    rng = random.Random(20261125)
    enc = EventEncoder(max_value_len=1 << 20)
    items = [_random_item(rng) for _ in range(3000)]
    for item in items:
        assert pb.Event.FromString(enc.encode(item)) == reference(item), item
    frame = batch_message([enc.encode(i) for i in items[:500]], 1 << 40)
    assert list(pb.WorkerMessage.FromString(frame).batch.events) == [reference(i) for i in items[:500]]
