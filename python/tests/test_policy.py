"""Filter and sampling semantics, decision caching, legacy control frames."""

from __future__ import annotations

import random
from typing import Any

import pytest

from snakepipe import _core, telemetry
from snakepipe._policy import (
    CACHE_MAX,
    Policy,
    apply_filter,
    apply_sampling_update,
    apply_toggle,
    clamp_rate,
    policy_from_proto,
)
from snakepipe.v1 import ingest_pb2 as pb


@pytest.mark.parametrize(
    "allow, deny, name, allowed",
    [
        # Snakepit's verified example: allow python.*, deny python.memory.*
        (["python.*"], ["python.memory.*"], "python.call.start", True),
        (["python.*"], ["python.memory.*"], "python.memory.sampled", False),
        (["python.*"], ["python.memory.*"], "tool.execution.start", False),
        (["python.*"], ["python.memory.*"], "PYTHON.call.start", False),
        ([], [], "anything.at.all", True),
        ([], ["*"], "python.call.start", False),
        (["*"], ["python.call.*"], "python.call.stop", False),  # deny wins
        (["python.?pu.sampled"], [], "python.cpu.sampled", True),
        (["python.[cg]*"], [], "python.gc.completed", True),
        (["python.[!cg]*"], [], "python.gc.completed", False),
        (["python.call.stop"], [], "python.call.stop", True),
        (["python.call.stop"], [], "python.call.stopped", False),
        (["*.stop"], [], "python.call.stop", True),  # '*' crosses dots
    ],
)
def test_filter(allow: Any, deny: Any, name: str, allowed: bool) -> None:
    p = Policy(allow=allow, deny=deny)
    assert p.allowed(name) is allowed
    assert p.classify(name)[0] == ("keep" if allowed else "filtered")


def test_sampling_first_matching_rule_wins() -> None:
    p = Policy(default_rate=0.5, rules=[("python.gc.*", 0.1), ("python.*", 0.0), ("tool.*", 1.0)])
    assert p.classify("python.gc.completed") == ("sample", 0.1)
    assert p.classify("python.call.stop") == ("sampled_out", 0.0)
    assert p.classify("tool.execution.stop") == ("keep", 1.0)
    assert p.classify("other.event") == ("sample", 0.5)


def test_disabled_and_order_of_checks() -> None:
    p = Policy(enabled=False, deny=["*"])
    assert p.classify("a.b") == ("disabled", 0.0)
    assert p.classify("a..b") == ("invalid_name", 0.0)


@pytest.mark.parametrize("raw, want", [(7.0, 1.0), (-1, 0.0), (0.3, 0.3), (float("nan"), 1.0), ("x", 1.0), (None, 1.0)])
def test_clamp(raw: Any, want: float) -> None:
    assert clamp_rate(raw) == want


def test_legacy_sampling_update() -> None:
    p = Policy(default_rate=1.0, rules=[("old.*", 0.2)])
    p2 = apply_sampling_update(p, 0.25, [])
    assert p2.default_rate == 0.25 and p2.rules == (("old.*", 0.2),)
    p3 = apply_sampling_update(p2, 1.5, ["a.*", "b.*"])
    assert p3.rules == (("a.*", 1.0), ("b.*", 1.0)) and p3.default_rate == 0.25
    p4 = apply_sampling_update(p3, 0.1, ["c.*"])
    assert p4.rules == (("c.*", 0.1),)  # replaces earlier per-pattern rules


def test_legacy_filter_and_toggle() -> None:
    p = apply_filter(Policy(allow=["x"], deny=["y"]), ["a.*"], [])
    assert p.allow == ("a.*",) and p.deny == ()
    assert apply_toggle(p, False).enabled is False
    assert apply_toggle(p, False).allow == ("a.*",)


def test_policy_from_proto() -> None:
    msg = pb.Policy(enabled=True, default_sample_rate=0.5, sampling_rules=[pb.SamplingRule(pattern="a.*", rate=2.0)],
                    allow=["a.*"], deny=["a.b"], version=9)
    p = policy_from_proto(msg)
    assert p.as_dict() == {
        "enabled": True,
        "default_sample_rate": 0.5,
        "sampling_rules": [{"pattern": "a.*", "rate": 1.0}],
        "allow": ["a.*"],
        "deny": ["a.b"],
        "version": 9,
    }


def test_seeded_sampling_matches_reference(lines: Any) -> None:
    telemetry.configure(backend="stderr", stream=lines, random_seed=1234, queue_size=20000)
    rt = _core.current()
    _core.set_policy(rt, Policy(rules=[("python.gc.*", 0.25)]))
    n = 10000
    for i in range(n):
        telemetry.emit("python.gc.completed", {"i": i})
    assert telemetry.flush(5)
    kept = lines.events()
    ref = random.Random(1234)
    expected = [i for i in range(n) if ref.random() < 0.25]
    assert [e["measurements"]["i"] for e in kept] == expected
    # about a quarter (binomial, > 6 sigma margin)
    assert 2200 < len(kept) < 2800
    assert all(e["sample_rate"] == 0.25 for e in kept)
    st = telemetry.stats()
    assert st["dropped"] == {"sampled_out": n - len(kept)}
    assert st["queued"] == len(kept)


def test_rate_zero_and_one(lines: Any) -> None:
    _core.set_policy(_core.current(), Policy(rules=[("zero.*", 0.0)], default_rate=1.0))
    for _ in range(100):
        telemetry.emit("zero.x", {"v": 1})
        telemetry.emit("one.x", {"v": 1})
    assert telemetry.flush(5)
    evs = lines.events()
    assert len(evs) == 100 and all(e["name"] == "one.x" and e["sample_rate"] == 1 for e in evs)
    assert telemetry.stats()["dropped"] == {"sampled_out": 100}


def test_policy_change_invalidates_cached_decisions(lines: Any) -> None:
    rt = _core.current()
    telemetry.emit("a.b", {"v": 1})
    _core.set_policy(rt, Policy(deny=["a.*"]))
    telemetry.emit("a.b", {"v": 2})
    _core.set_policy(rt, Policy(enabled=False))
    telemetry.emit("a.b", {"v": 3})
    _core.set_policy(rt, Policy())
    telemetry.emit("a.b", {"v": 4})
    assert telemetry.flush(5)
    assert [e["measurements"]["v"] for e in lines.events()] == [1, 4]
    assert telemetry.stats()["dropped"] == {"filtered": 1, "disabled": 1}


def test_decision_cache_is_bounded(lines: Any) -> None:
    _core.set_policy(_core.current(), Policy(enabled=False))
    for i in range(CACHE_MAX * 2 + 10):
        telemetry.emit(f"n.e{i}", {"v": 1})
    cache = _core._decisions_get.__self__  # the dict behind the lookup
    assert 0 < len(cache) <= CACHE_MAX
    assert telemetry.stats()["dropped"] == {"disabled": CACHE_MAX * 2 + 10}
