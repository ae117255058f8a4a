"""configure() arguments, SNAKEPIPE_* variables, autoconfiguration."""

from __future__ import annotations

from typing import Any

import pytest
from fakehost import FakeHost

from snakepipe import _core, telemetry
from snakepipe._config import DEFAULT_ENDPOINT, build, parse_duration


def test_defaults() -> None:
    cfg = build({}, {})
    assert cfg.backend == "grpc" and cfg.endpoint == DEFAULT_ENDPOINT == "127.0.0.1:7417"
    assert cfg.queue_size == 1024 and cfg.samplers == ()
    assert cfg.worker_id.endswith(f"/{__import__('os').getpid()}") and cfg.hostname


def test_env_vars() -> None:
    env = {
        "SNAKEPIPE_ENDPOINT": "10.0.0.1:9000",
        "SNAKEPIPE_WORKER_ID": "pool-a/worker-3",
        "SNAKEPIPE_POOL": "pool-a",
        "SNAKEPIPE_BACKEND": "stderr",
        "SNAKEPIPE_HOSTNAME": "box",
        "SNAKEPIPE_LABELS": "model=m1, region=eu",
        "SNAKEPIPE_QUEUE_SIZE": "4096",
        "SNAKEPIPE_BATCH_SIZE": "64",
        "SNAKEPIPE_FLUSH_INTERVAL": "20ms",
        "SNAKEPIPE_STATS_INTERVAL": "5s",
        "SNAKEPIPE_CONNECT_TIMEOUT": "1.5",
        "SNAKEPIPE_MAX_BACKOFF": "1m",
        "SNAKEPIPE_SHUTDOWN_TIMEOUT": "3s",
        "SNAKEPIPE_SAMPLERS": "memory,gc",
        "SNAKEPIPE_SAMPLER_INTERVAL": "30s",
    }
    cfg = build({}, env)
    assert (cfg.endpoint, cfg.worker_id, cfg.pool, cfg.backend, cfg.hostname) == (
        "10.0.0.1:9000", "pool-a/worker-3", "pool-a", "stderr", "box")
    assert cfg.labels == (("model", "m1"), ("region", "eu"))
    assert (cfg.queue_size, cfg.batch_size, cfg.flush_interval, cfg.stats_interval) == (4096, 64, 0.02, 5.0)
    assert (cfg.connect_timeout, cfg.max_backoff, cfg.shutdown_timeout) == (1.5, 60.0, 3.0)
    assert cfg.samplers == ("memory", "gc") and cfg.sampler_interval == 30.0


def test_explicit_arguments_win_over_env() -> None:
    cfg = build({"endpoint": "127.0.0.1:1", "queue_size": 8, "pool": None}, {"SNAKEPIPE_ENDPOINT": "x:2",
                                                                             "SNAKEPIPE_POOL": "envpool"})
    assert cfg.endpoint == "127.0.0.1:1" and cfg.queue_size == 8 and cfg.pool == "envpool"


@pytest.mark.parametrize(
    "env, needle",
    [
        ({"SNAKEPIPE_QUEUE_SIZE": "lots"}, "SNAKEPIPE_QUEUE_SIZE"),
        ({"SNAKEPIPE_FLUSH_INTERVAL": "soon"}, "SNAKEPIPE_FLUSH_INTERVAL"),
        ({"SNAKEPIPE_LABELS": "novalue"}, "SNAKEPIPE_LABELS"),
        ({"SNAKEPIPE_BACKEND": "kafka"}, "backend"),
        ({"SNAKEPIPE_QUEUE_SIZE": "0"}, "queue_size"),
        ({"SNAKEPIPE_SAMPLERS": "disk"}, "samplers"),
        ({"SNAKEPIPE_WORKER_ID": "w" * 200}, "worker_id"),
    ],
)
def test_bad_values_name_the_variable(env: Any, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        build({}, env)


def test_all_problems_reported_at_once() -> None:
    with pytest.raises(ValueError) as ei:
        telemetry.configure(queue_size=0, batch_size=-1, flush_interval=0, env={})
    msg = str(ei.value)
    assert "queue_size" in msg and "batch_size" in msg and "flush_interval" in msg


def test_unknown_argument() -> None:
    with pytest.raises(TypeError):
        _core.configure(env={}, bogus=1)


@pytest.mark.parametrize("s, want", [("0.5", 0.5), ("50ms", 0.05), ("2s", 2.0), ("1m", 60.0), (" 3 ", 3.0)])
def test_parse_duration(s: str, want: float) -> None:
    assert parse_duration(s) == want


def test_autoconfigure_from_endpoint_only(host: FakeHost, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAKEPIPE_ENDPOINT", host.endpoint)
    monkeypatch.setenv("SNAKEPIPE_WORKER_ID", "env-worker")
    telemetry.emit("a.b", {"v": 1})  # no configure() call
    assert telemetry.flush(10)
    assert host.wait_for(lambda: len(host.events) == 1)
    assert host.hellos[0].worker_id == "env-worker"
    assert telemetry.stats()["backend"] == "grpc"


def test_autoconfigure_without_env_is_off() -> None:
    telemetry.emit("a.b", {"v": 1})
    st = telemetry.stats()
    assert st["backend"] == "none" and st["dropped"] == {"no_backend": 1}
    assert not telemetry.is_enabled()


def test_autoconfigure_with_bad_env_is_off_and_does_not_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAKEPIPE_ENDPOINT", "127.0.0.1:1")
    monkeypatch.setenv("SNAKEPIPE_QUEUE_SIZE", "many")
    telemetry.emit("a.b", {"v": 1})
    assert telemetry.stats()["dropped"] == {"no_backend": 1}
