"""Encoding of queued events, in the sender thread only.

``encode_event`` writes the protobuf wire form of ``snakepipe.v1.Event`` by
hand. The output is a valid encoding of that message (fields in a different
order than the generated code writes them, which protobuf allows) and is
checked against the generated ``ingest_pb2`` module in the tests. It is
faster than building messages through the protobuf runtime because names,
measurement keys and frequent metadata pairs are encoded once and cached.

``json_line`` writes the shared event JSON line format used by sinks and the
stderr backend.
"""

from __future__ import annotations

import json
import struct
from typing import Any, Dict, List, Optional, Tuple

# A queued event: (name, measurements, metadata, timestamp_ns, correlation_id,
# sample_rate). sample_rate 0.0 means "not sampled" (1.0).
Item = Tuple[str, Dict[str, Any], Dict[str, str], int, Optional[str], float]

_pack_double = struct.Struct("<d").pack
_U64 = 1 << 64


def varint(n: int) -> bytes:
    """Encode a non-negative integer as a protobuf varint."""
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = [varint(i) for i in range(16384)]


# One varint byte with the continuation bit set, for each 7-bit group.
_C7 = [bytes(((i & 0x7F) | 0x80,)) for i in range(128)]


def _vlen(n: int) -> bytes:
    return _SMALL[n] if n < 16384 else varint(n)


def _utf8(s: str) -> bytes:
    try:
        return s.encode()
    except UnicodeEncodeError:  # lone surrogates: never put invalid UTF-8 on the wire
        return s.encode("utf-8", "replace")


def _str_field(tag: bytes, s: str) -> bytes:
    b = _utf8(s)
    return tag + _vlen(len(b)) + b


class EventEncoder:
    """Encodes queued events to ``Event`` message bytes (without the outer
    field tag), caching the encodings of repeated strings.

    One encoder belongs to one sender thread; it is not thread-safe.
    """

    #: Bound on each cache; a full cache is cleared.
    CACHE_MAX = 4096

    def __init__(self, max_value_len: int = 4096) -> None:
        self.max_value_len = max_value_len
        self._names: Dict[str, bytes] = {}
        self._fkeys: Dict[str, bytes] = {}
        self._ikeys: Dict[str, List[bytes]] = {}
        self._pairs: Dict[Tuple[str, str], bytes] = {}
        self._ts_hi = -1
        self._ts_hi_bytes = b""

    def encode(self, item: Item) -> bytes:
        """Return the ``Event`` message bytes for one queued event."""
        name, m, md, ts, cid, rate = item
        names = self._names
        nb = names.get(name)
        if nb is None:
            if len(names) >= self.CACHE_MAX:
                names.clear()
            nb = names[name] = _str_field(b"\x3a", name)
        parts: List[bytes] = [nb]
        append = parts.append
        if m:
            for k, v in m.items():
                t = v.__class__
                if t is float:
                    # MeasurementEntry{key, Value{float_value}}: everything
                    # but the 8 value bytes depends on the key only.
                    pre = self._fkeys.get(k)
                    if pre is None:
                        pre = self._float_prefix(k)
                    append(pre)
                    append(_pack_double(v))
                elif t is int or t is bool:
                    iv = int(v)
                    vb = _SMALL[iv] if 0 <= iv < 16384 else varint(iv if iv >= 0 else iv + _U64)
                    pres = self._ikeys.get(k)
                    if pres is None:
                        pres = self._int_prefixes(k)
                    append(pres[len(vb)])
                    append(vb)
                else:  # str
                    val = _str_field(b"\x1a", v)
                    entry = _str_field(b"\x0a", k) + b"\x12" + _vlen(len(val)) + val
                    append(b"\x12" + _vlen(len(entry)) + entry)
        if md:
            pairs = self._pairs
            limit = self.max_value_len
            for kv in md.items():
                e = pairs.get(kv)
                if e is None:
                    k, v = kv
                    if len(v) > limit:
                        v = v[:limit]
                    entry = _str_field(b"\x0a", k) + _str_field(b"\x12", v)
                    e = b"\x1a" + _vlen(len(entry)) + entry
                    if len(v) <= 64:  # cache only short, likely-repeated pairs
                        if len(pairs) >= self.CACHE_MAX:
                            pairs.clear()
                        pairs[kv] = e
                append(e)
        if (1 << 28) <= ts < (1 << 63):
            # Timestamps are ~2^60: a 9-byte varint whose upper 5 bytes
            # change only every 2^28 ns (0.27 s). Look up the low 4 bytes
            # and cache the rest.
            hi = ts >> 28
            if hi != self._ts_hi:
                self._ts_hi = hi
                self._ts_hi_bytes = varint(hi)
            append(b"\x20")
            append(_C7[ts & 0x7F])
            append(_C7[(ts >> 7) & 0x7F])
            append(_C7[(ts >> 14) & 0x7F])
            append(_C7[(ts >> 21) & 0x7F])
            append(self._ts_hi_bytes)
        else:
            append(b"\x20" + varint(ts if ts >= 0 else ts + _U64))
        if cid:
            append(_str_field(b"\x2a", cid))
        if rate:
            append(b"\x31")
            append(_pack_double(rate))
        return b"".join(parts)

    def _float_prefix(self, k: str) -> bytes:
        keys = self._fkeys
        if len(keys) >= self.CACHE_MAX:
            keys.clear()
        inner = _str_field(b"\x0a", k) + b"\x12\x09\x11"
        pre = keys[k] = b"\x12" + _vlen(len(inner) + 8) + inner
        return pre

    def _int_prefixes(self, k: str) -> List[bytes]:
        # Index n: the entry up to the value's varint bytes, for an n-byte varint.
        keys = self._ikeys
        if len(keys) >= self.CACHE_MAX:
            keys.clear()
        kb = _str_field(b"\x0a", k)
        pres = [b""] + [b"\x12" + _vlen(len(kb) + 3 + n) + kb + b"\x12" + _SMALL[1 + n] + b"\x08" for n in range(1, 11)]
        keys[k] = pres
        return pres


def batch_message(events: List[bytes], sequence: int) -> bytes:
    """Wrap encoded events in ``WorkerMessage{batch: EventBatch{...}}``."""
    body = b"".join([b"\x0a" + _vlen(len(e)) + e for e in events])
    if sequence:
        body += b"\x10" + varint(sequence)
    return b"\x12" + _vlen(len(body)) + body


def event_frame_size(encoded_len: int) -> int:
    """Bytes one encoded event adds to a batch (tag + length + body)."""
    return 1 + len(_vlen(encoded_len)) + encoded_len


def _json_float(v: float) -> str:
    s = repr(v)
    if "." in s or "e" in s or "n" in s:  # nan/inf never reach here
        return s
    return s + ".0"


def json_line(item: Item, origin: Dict[str, Any], max_value_len: int = 4096) -> str:
    """The shared event JSON line (no trailing newline).

    Keys in order: name, timestamp_ns, correlation_id (omitted when empty),
    sample_rate, measurements, metadata, then worker_id, pool, hostname, pid.
    Floats always carry a '.' or exponent so ints and floats stay distinct.
    """
    name, m, md, ts, cid, rate = item
    dumps = json.dumps
    out = ['{"name":', dumps(name), ',"timestamp_ns":', str(ts)]
    if cid:
        out += [',"correlation_id":', dumps(cid)]
    out += [',"sample_rate":', repr(rate) if rate else "1", ',"measurements":{']
    first = True
    for k, v in m.items():
        if not first:
            out.append(",")
        first = False
        t = v.__class__
        if t is bool:
            sv = "1" if v else "0"
        elif t is int:
            sv = str(v)
        elif t is float:
            sv = _json_float(v)
        else:
            sv = dumps(v)
        out += [dumps(k), ":", sv]
    out.append('},"metadata":{')
    first = True
    for k, v in md.items():
        if not first:
            out.append(",")
        first = False
        if len(v) > max_value_len:
            v = v[:max_value_len]
        out += [dumps(k), ":", dumps(v)]
    out.append("}")
    for key in ("worker_id", "pool", "hostname", "pid"):
        if key in origin:
            out += [',"', key, '":', dumps(origin[key])]
    out.append("}")
    return "".join(out)
