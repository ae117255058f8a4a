"""Policy: what the worker sends, and the per-name decisions derived from it.

A :class:`Policy` is immutable. Every change (a ``Welcome``, a ``Policy``
frame, or one of the legacy ``Toggle`` / ``SamplingUpdate`` / ``EventFilter``
frames) builds a new one and installs it; each policy carries its own bounded
cache of per-name decisions, so installing a policy invalidates every cached
decision at once.
"""

from __future__ import annotations

import math
import re
from fnmatch import fnmatchcase
from typing import Callable, Dict, Iterable, Optional, Sequence, Tuple, Union, cast

#: Decision meaning "keep, not sampled". Compared by identity on the hot path.
KEEP = float("1.0")

#: Most names whose decision a policy caches. When full, the cache is cleared
#: (so a worker emitting unbounded distinct names cannot grow memory).
CACHE_MAX = 4096

#: Longest accepted event name, in characters.
NAME_MAX = 255

# ASCII printable without space, at least one character per dot-separated
# segment. The host's catalog decides what is known; this only rejects names
# that can never be valid.
_NAME_RE = re.compile(r"[!-\-/-~]+(?:\.[!-\-/-~]+)*\Z")

Decision = Union[float, Callable[[], object]]
"""Either a float sample rate (``KEEP`` or a rate in (0, 1)) or a drop-counter
incrementer to call."""


def valid_name(name: object) -> bool:
    """Report whether ``name`` can be an event name (a dotted ASCII string)."""
    if name.__class__ is not str:  # exactly str: a subclass could override matching
        return False
    s = cast(str, name)
    return 0 < len(s) <= NAME_MAX and _NAME_RE.match(s) is not None


def clamp_rate(rate: object) -> float:
    """Clamp a sampling rate to [0, 1]; NaN and non-numbers become 1.0."""
    try:
        r = float(rate)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return 1.0
    if math.isnan(r):
        return 1.0
    return min(1.0, max(0.0, r))


class Policy:
    """Enabled flag, sampling and allow/deny filter, as sent by snakepipe.

    Semantics (the same as the host's ``pipeline.Policy``):

    * ``enabled`` false drops everything (reason ``disabled``).
    * Globs are :func:`fnmatch.fnmatchcase` patterns on the dotted name.
      A deny match drops the event (``filtered``); deny wins over allow. An
      empty allow list allows everything; otherwise one allow pattern must
      match.
    * Sampling: the first rule whose pattern matches gives the rate, else
      ``default_rate``. Rate 1 keeps everything, 0 drops everything
      (``sampled_out``); in between, each event is kept with that
      probability and carries the rate.
    """

    __slots__ = ("enabled", "default_rate", "rules", "allow", "deny", "version", "cache")

    def __init__(
        self,
        enabled: bool = True,
        default_rate: float = 1.0,
        rules: Iterable[Tuple[str, float]] = (),
        allow: Iterable[str] = (),
        deny: Iterable[str] = (),
        version: int = 0,
    ) -> None:
        self.enabled = bool(enabled)
        self.default_rate = clamp_rate(default_rate)
        self.rules: Tuple[Tuple[str, float], ...] = tuple(
            (str(p), clamp_rate(r)) for p, r in rules
        )
        self.allow: Tuple[str, ...] = tuple(str(p) for p in allow)
        self.deny: Tuple[str, ...] = tuple(str(p) for p in deny)
        self.version = int(version)
        self.cache: Dict[object, Decision] = {}

    def replace(self, **changes: object) -> "Policy":
        """Return a copy with some fields changed (and an empty cache)."""
        fields = {
            "enabled": self.enabled,
            "default_rate": self.default_rate,
            "rules": self.rules,
            "allow": self.allow,
            "deny": self.deny,
            "version": self.version,
        }
        fields.update(changes)
        return Policy(**fields)  # type: ignore[arg-type]

    def as_dict(self) -> Dict[str, object]:
        """The policy as plain data (for ``stats()`` and logs)."""
        return {
            "enabled": self.enabled,
            "default_sample_rate": self.default_rate,
            "sampling_rules": [{"pattern": p, "rate": r} for p, r in self.rules],
            "allow": list(self.allow),
            "deny": list(self.deny),
            "version": self.version,
        }

    def allowed(self, name: str) -> bool:
        """Apply the allow/deny filter only (deny wins, empty allow = all)."""
        for p in self.deny:
            if fnmatchcase(name, p):
                return False
        if not self.allow:
            return True
        for p in self.allow:
            if fnmatchcase(name, p):
                return True
        return False

    def rate(self, name: str) -> float:
        """The sample rate for ``name``: first matching rule, else the default."""
        for p, r in self.rules:
            if fnmatchcase(name, p):
                return r
        return self.default_rate

    def classify(self, name: object) -> Tuple[str, float]:
        """Return ``(outcome, rate)`` for a name, outcome being ``"keep"`` or a
        drop reason (``invalid_name``, ``disabled``, ``filtered``,
        ``sampled_out``). ``"sample"`` means keep with probability ``rate``."""
        if not valid_name(name):
            return "invalid_name", 0.0
        if not self.enabled:
            return "disabled", 0.0
        assert isinstance(name, str)
        if not self.allowed(name):
            return "filtered", 0.0
        r = self.rate(name)
        if r >= 1.0:
            return "keep", 1.0
        if r <= 0.0:
            return "sampled_out", 0.0
        return "sample", r


def policy_from_proto(msg: object) -> Policy:
    """Build a :class:`Policy` from a ``snakepipe.v1.Policy`` message."""
    return Policy(
        enabled=msg.enabled,  # type: ignore[attr-defined]
        default_rate=msg.default_sample_rate,  # type: ignore[attr-defined]
        rules=[(r.pattern, r.rate) for r in msg.sampling_rules],  # type: ignore[attr-defined]
        allow=list(msg.allow),  # type: ignore[attr-defined]
        deny=list(msg.deny),  # type: ignore[attr-defined]
        version=msg.version,  # type: ignore[attr-defined]
    )


def apply_sampling_update(p: Policy, rate: float, patterns: Sequence[str]) -> Policy:
    """Apply a legacy ``SamplingUpdate``: no patterns sets the default rate;
    patterns replace every per-pattern rule with ``(pattern, rate)`` rules."""
    if not patterns:
        return p.replace(default_rate=clamp_rate(rate))
    r = clamp_rate(rate)
    return p.replace(rules=[(pat, r) for pat in patterns])


def apply_filter(p: Policy, allow: Sequence[str], deny: Sequence[str]) -> Policy:
    """Apply a legacy ``EventFilter``: replace the allow and deny lists."""
    return p.replace(allow=list(allow), deny=list(deny))


def apply_toggle(p: Policy, enabled: bool) -> Policy:
    """Apply a legacy ``Toggle``."""
    return p.replace(enabled=bool(enabled))


def describe(p: Optional[Policy]) -> Dict[str, object]:
    """Plain-data view of a policy, or ``{}``."""
    return p.as_dict() if p is not None else {}
