"""Configuration: defaults, ``SNAKEPIPE_*`` environment variables, validation."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field, fields, replace
from typing import Any, Dict, List, Mapping, Optional, Tuple

DEFAULT_ENDPOINT = "127.0.0.1:7417"
BACKENDS = ("grpc", "stderr", "none")
SAMPLERS = ("memory", "cpu", "gc")


@dataclass(frozen=True)
class Config:
    """Settings of the worker library. See ``configure()`` for each field."""

    backend: str = "grpc"
    endpoint: str = DEFAULT_ENDPOINT
    worker_id: str = ""
    pool: str = ""
    hostname: str = ""
    labels: Tuple[Tuple[str, str], ...] = ()
    queue_size: int = 1024
    batch_size: int = 256
    flush_interval: float = 0.05
    stats_interval: float = 0.0  # 0: use the host's Welcome.stats_interval_ms (else 10 s)
    connect_timeout: float = 5.0
    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    shutdown_timeout: float = 2.0
    max_value_len: int = 4096
    samplers: Tuple[str, ...] = ()
    sampler_interval: float = 10.0
    random_seed: Optional[int] = None
    # Not settable from the environment:
    stream: Any = field(default=None, compare=False)  # stderr backend target (default sys.stderr)

    def validate(self) -> None:
        """Raise ``ValueError`` listing every problem."""
        problems: List[str] = []
        if self.backend not in BACKENDS:
            problems.append(f"backend: {self.backend!r} is not one of {', '.join(BACKENDS)}")
        if not self.endpoint:
            problems.append("endpoint: must not be empty")
        if len(self.worker_id.encode("utf-8", "replace")) > 128:
            problems.append("worker_id: longer than 128 bytes")
        for name in ("queue_size", "batch_size", "max_value_len"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                problems.append(f"{name}: {v!r} must be a positive integer")
        for name in ("flush_interval", "connect_timeout", "initial_backoff", "max_backoff", "sampler_interval"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not v > 0:
                problems.append(f"{name}: {v!r} must be a positive number of seconds")
        for name in ("stats_interval", "shutdown_timeout"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not v >= 0:
                problems.append(f"{name}: {v!r} must be a non-negative number of seconds")
        for s in self.samplers:
            if s not in SAMPLERS:
                problems.append(f"samplers: {s!r} is not one of {', '.join(SAMPLERS)}")
        if problems:
            raise ValueError("snakepipe configuration: " + "; ".join(problems))

    def with_identity(self) -> "Config":
        """Fill worker_id and hostname defaults from this process."""
        host = self.hostname or _hostname()
        wid = self.worker_id or f"{host}/{os.getpid()}"
        return replace(self, hostname=host, worker_id=wid)


def _hostname() -> str:
    try:
        return socket.gethostname()
    except OSError:
        return "unknown"


_DURATION_RE = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|s|m)?\s*\Z")


def parse_duration(s: str) -> float:
    """Parse seconds: ``"0.05"``, ``"50ms"``, ``"2s"``, ``"1m"``."""
    m = _DURATION_RE.match(s)
    if not m:
        raise ValueError(f"{s!r} is not a duration (e.g. 0.5, 50ms, 2s)")
    v = float(m.group(1))
    unit = m.group(2) or "s"
    return v / 1000.0 if unit == "ms" else v * 60.0 if unit == "m" else v


def _parse_labels(s: str) -> Tuple[Tuple[str, str], ...]:
    out = []
    for part in s.split(","):
        part = part.strip()
        if not part:
            continue
        k, sep, v = part.partition("=")
        if not sep or not k.strip():
            raise ValueError(f"label {part!r} is not key=value")
        out.append((k.strip(), v.strip()))
    return tuple(out)


def _parse_list(s: str) -> Tuple[str, ...]:
    return tuple(p.strip() for p in s.split(",") if p.strip())


#: Environment variable -> (Config field, parser).
ENV_VARS: Dict[str, Tuple[str, Any]] = {
    "SNAKEPIPE_BACKEND": ("backend", str.strip),
    "SNAKEPIPE_ENDPOINT": ("endpoint", str.strip),
    "SNAKEPIPE_WORKER_ID": ("worker_id", str.strip),
    "SNAKEPIPE_POOL": ("pool", str.strip),
    "SNAKEPIPE_HOSTNAME": ("hostname", str.strip),
    "SNAKEPIPE_LABELS": ("labels", _parse_labels),
    "SNAKEPIPE_QUEUE_SIZE": ("queue_size", int),
    "SNAKEPIPE_BATCH_SIZE": ("batch_size", int),
    "SNAKEPIPE_FLUSH_INTERVAL": ("flush_interval", parse_duration),
    "SNAKEPIPE_STATS_INTERVAL": ("stats_interval", parse_duration),
    "SNAKEPIPE_CONNECT_TIMEOUT": ("connect_timeout", parse_duration),
    "SNAKEPIPE_MAX_BACKOFF": ("max_backoff", parse_duration),
    "SNAKEPIPE_SHUTDOWN_TIMEOUT": ("shutdown_timeout", parse_duration),
    "SNAKEPIPE_SAMPLERS": ("samplers", _parse_list),
    "SNAKEPIPE_SAMPLER_INTERVAL": ("sampler_interval", parse_duration),
}


def from_env(env: Optional[Mapping[str, str]] = None) -> Tuple[Dict[str, Any], List[str]]:
    """Read ``SNAKEPIPE_*`` variables. Returns (field values, problems)."""
    env = os.environ if env is None else env
    values: Dict[str, Any] = {}
    problems: List[str] = []
    for var, (name, parse) in ENV_VARS.items():
        raw = env.get(var)
        if raw is None or raw.strip() == "":
            continue
        try:
            values[name] = parse(raw)
        except (ValueError, TypeError) as e:
            problems.append(f"{var}={raw!r}: {e}")
    return values, problems


def build(
    explicit: Mapping[str, Any], env: Optional[Mapping[str, str]] = None, *, default_backend: str = "grpc"
) -> Config:
    """Defaults, then environment, then explicit (non-None) arguments.

    Raises ``ValueError`` naming every bad variable or argument.
    """
    values, problems = from_env(env)
    if problems:
        raise ValueError("snakepipe environment: " + "; ".join(problems))
    known = {f.name for f in fields(Config)}
    for k, v in explicit.items():
        if k not in known:
            raise TypeError(f"configure() got an unexpected keyword argument {k!r}")
        if v is not None:
            values[k] = v
    if "backend" not in values:
        values["backend"] = default_backend
    if "labels" in values and isinstance(values["labels"], Mapping):
        values["labels"] = tuple((str(k), str(v)) for k, v in values["labels"].items())
    if "samplers" in values:
        s = values["samplers"]
        values["samplers"] = _parse_list(s) if isinstance(s, str) else tuple(s)
    cfg = Config(**values)
    cfg.validate()
    return cfg.with_identity()
