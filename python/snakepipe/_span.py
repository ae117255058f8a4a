"""``span``: time a block or a function as ``<name>.start`` / ``.stop`` /
``.exception`` events."""

from __future__ import annotations

import functools
import inspect
from time import perf_counter_ns, time_ns
from typing import Any, Callable, Dict, List, Mapping, Optional, TypeVar, overload

from . import _core

F = TypeVar("F", bound=Callable[..., Any])

#: Longest error message put in ``.exception`` metadata, in characters.
ERROR_MESSAGE_MAX = 1024


def _error_metadata(metadata: Optional[Mapping[str, Any]], et: type, ev: Optional[BaseException]) -> Dict[str, Any]:
    md: Dict[str, Any] = {}
    if metadata:
        try:
            md.update(metadata)
        except Exception:
            pass
    md["error_type"] = getattr(et, "__name__", str(et))
    try:
        msg = str(ev) if ev is not None else ""
    except Exception:
        msg = "<unprintable>"
    md["error_message"] = msg[:ERROR_MESSAGE_MAX]
    return md


class span:
    """Time a block or a function.

    On entry emits ``<name>.start`` with ``system_time`` (epoch ns). On a
    normal exit emits ``<name>.stop`` with ``duration`` (ns, monotonic clock).
    When the block raises, emits ``<name>.exception`` with ``duration`` and
    the metadata plus ``error_type`` (class name) and ``error_message``, then
    lets the exception propagate. This includes ``BaseException``s such as
    ``KeyboardInterrupt`` and ``asyncio.CancelledError``, so every started
    span is closed. Telemetry errors never mask the block's own exception.

    Use it as ``with span(...)``, ``async with span(...)``, or as a decorator
    on a function or coroutine function (each call is timed separately). A
    span object used directly as a context manager may be nested in one
    thread; share one across threads or tasks only as a decorator.
    """

    __slots__ = ("name", "metadata", "correlation_id", "_start", "_stop", "_exc", "_t0")

    def __init__(
        self, name: str, metadata: Optional[Mapping[str, Any]] = None, *, correlation_id: Optional[str] = None
    ) -> None:
        self.name = name
        self.metadata = metadata
        self.correlation_id = correlation_id
        if name.__class__ is str:
            self._start: Any = name + ".start"
            self._stop: Any = name + ".stop"
            self._exc: Any = name + ".exception"
        else:  # counted as invalid_name by emit
            self._start = self._stop = self._exc = name
        self._t0: List[int] = []

    def _clone(self) -> "span":
        s = span.__new__(span)
        s.name = self.name
        s.metadata = self.metadata
        s.correlation_id = self.correlation_id
        s._start, s._stop, s._exc = self._start, self._stop, self._exc
        s._t0 = []
        return s

    def __enter__(self) -> "span":
        _core.emit(self._start, {"system_time": time_ns()}, self.metadata, correlation_id=self.correlation_id)
        self._t0.append(perf_counter_ns())
        return self

    def __exit__(self, et: Optional[type], ev: Optional[BaseException], tb: Any) -> None:
        t1 = perf_counter_ns()
        try:
            t0 = self._t0.pop() if self._t0 else t1
            if et is None:
                _core.emit(self._stop, {"duration": t1 - t0}, self.metadata, correlation_id=self.correlation_id)
            else:
                _core.emit(
                    self._exc,
                    {"duration": t1 - t0},
                    _error_metadata(self.metadata, et, ev),
                    correlation_id=self.correlation_id,
                )
        except Exception:  # never mask the block's exception
            _core.drop("internal_error", 1, "span exit failed")
        return None

    async def __aenter__(self) -> "span":
        return self.__enter__()

    async def __aexit__(self, et: Optional[type], ev: Optional[BaseException], tb: Any) -> None:
        self.__exit__(et, ev, tb)

    def __call__(self, fn: F) -> F:
        """Decorate ``fn`` (sync or async) so each call is a span."""
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with self._clone():
                    return await fn(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._clone():
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


@overload
def instrument(fn: F) -> F: ...


@overload
def instrument(
    fn: None = None, *, command: Optional[str] = None, metadata: Optional[Mapping[str, Any]] = None
) -> Callable[[F], F]: ...


def instrument(
    fn: Optional[F] = None, *, command: Optional[str] = None, metadata: Optional[Mapping[str, Any]] = None
) -> Any:
    """Wrap a function's calls in ``python.call.start`` / ``.stop`` /
    ``.exception`` events, with metadata ``command`` (default: the
    function's qualified name) plus ``metadata``.

    Use as ``@instrument`` or ``@instrument(command="predict")``.
    """

    def deco(f: F) -> F:
        md: Dict[str, Any] = dict(metadata or {})
        md["command"] = command or getattr(f, "__qualname__", getattr(f, "__name__", "call"))
        return span("python.call", md)(f)

    if fn is not None:
        return deco(fn)
    return deco


def call(fn: Callable[..., Any], *args: Any, command: Optional[str] = None, **kwargs: Any) -> Any:
    """Call ``fn(*args, **kwargs)`` inside ``python.call.*`` events and return
    its result (exceptions propagate after ``python.call.exception``)."""
    name = command or getattr(fn, "__qualname__", getattr(fn, "__name__", "call"))
    with span("python.call", {"command": name}):
        return fn(*args, **kwargs)
