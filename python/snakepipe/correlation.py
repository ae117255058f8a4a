"""Correlation ids: a context variable plus gRPC metadata helpers.

``emit`` and ``span`` use the context variable when no ``correlation_id`` is
passed. Context variables follow threads started with a copied context and
asyncio tasks (each task gets a copy of its creator's context), so an id set
around a request reaches every event emitted while handling it.

On the wire between services the id travels as the gRPC metadata header
``x-snakepipe-correlation-id``; Snakepit's ``x-snakepit-correlation-id`` is
accepted on the way in as well.
"""

from __future__ import annotations

import contextlib
import uuid
from contextvars import Token
from typing import Any, Iterable, Iterator, List, Optional, Sequence, Tuple

from ._core import CORRELATION_ID

#: Header snakepipe uses (gRPC metadata keys are lower case).
CORRELATION_HEADER = "x-snakepipe-correlation-id"
#: Header the original Snakepit host sends; accepted when reading.
SNAKEPIT_CORRELATION_HEADER = "x-snakepit-correlation-id"
_HEADERS = (CORRELATION_HEADER, SNAKEPIT_CORRELATION_HEADER)
#: Longest id accepted from outside, in characters.
MAX_ID_LEN = 128


def new_correlation_id() -> str:
    """A fresh random id (32 lowercase hex characters)."""
    return uuid.uuid4().hex


def get_correlation_id(default: Optional[str] = None) -> Optional[str]:
    """The id in the current context, or ``default``."""
    v = CORRELATION_ID.get()
    return default if v is None else v


def set_correlation_id(value: Optional[str]) -> "Token[Optional[str]]":
    """Set the id for the current context; returns a token for
    :func:`reset_correlation_id`. ``None`` clears it."""
    return CORRELATION_ID.set(None if value is None else str(value)[:MAX_ID_LEN])


def reset_correlation_id(token: "Token[Optional[str]]") -> None:
    """Restore the id that was in force before ``set_correlation_id``."""
    CORRELATION_ID.reset(token)


@contextlib.contextmanager
def correlation(value: Optional[str] = None) -> Iterator[str]:
    """Context manager: run the block with ``value`` (or a new id) as the
    correlation id, restoring the previous id afterwards."""
    cid = value if value else new_correlation_id()
    token = set_correlation_id(cid)
    try:
        yield cid
    finally:
        CORRELATION_ID.reset(token)


def correlation_id_from_metadata(metadata: Optional[Iterable[Any]]) -> Optional[str]:
    """Read the id from gRPC metadata (``context.invocation_metadata()`` or a
    list of ``(key, value)`` pairs). Keys compare case-insensitively; the
    snakepipe header wins over Snakepit's. Returns None when absent or empty."""
    if not metadata:
        return None
    found = {}
    try:
        for item in metadata:
            key = getattr(item, "key", None)
            value = getattr(item, "value", None)
            if key is None:
                key, value = item[0], item[1]
            k = str(key).lower()
            if k in _HEADERS and k not in found:
                if isinstance(value, bytes):
                    value = value.decode("utf-8", "replace")
                v = str(value).strip()
                if v:
                    found[k] = v[:MAX_ID_LEN]
    except Exception:
        return None
    for h in _HEADERS:
        if h in found:
            return found[h]
    return None


def outgoing_metadata(
    initial: Optional[Sequence[Tuple[str, str]]] = None, correlation_id: Optional[str] = None
) -> List[Tuple[str, str]]:
    """gRPC call metadata with the correlation header added (when an id is
    given or set in the context). Existing correlation headers in
    ``initial`` are replaced."""
    md = [(k, v) for k, v in (initial or ()) if str(k).lower() != CORRELATION_HEADER]
    cid = correlation_id if correlation_id is not None else CORRELATION_ID.get()
    if cid:
        md.append((CORRELATION_HEADER, cid))
    return md


@contextlib.contextmanager
def correlation_from_metadata(metadata: Optional[Iterable[Any]], *, create: bool = True) -> Iterator[Optional[str]]:
    """Context manager for a gRPC handler: use the id from the incoming
    metadata, else the one already in the context, else (``create``) a new
    one, for the duration of the block."""
    cid = correlation_id_from_metadata(metadata) or CORRELATION_ID.get()
    if cid is None and create:
        cid = new_correlation_id()
    token = CORRELATION_ID.set(cid)
    try:
        yield cid
    finally:
        CORRELATION_ID.reset(token)
