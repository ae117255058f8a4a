"""Shared fixtures: a clean library state per test and an in-process host."""

from __future__ import annotations

import io
import json
import os
import sys
from typing import Any, Dict, Iterator, List

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from fakehost import FakeHost  # noqa: E402

from snakepipe import _core, telemetry  # noqa: E402


@pytest.fixture(autouse=True)
def clean_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in list(os.environ):
        if var.startswith("SNAKEPIPE_"):
            monkeypatch.delenv(var)
    _core._reset_for_tests()
    token = _core.CORRELATION_ID.set(None)
    yield
    _core.CORRELATION_ID.reset(token)
    _core._reset_for_tests()


@pytest.fixture
def host() -> Iterator[FakeHost]:
    h = FakeHost().start()
    yield h
    h.stop(0)


class Lines(io.StringIO):
    """A text stream collecting stderr-backend output."""

    def events(self) -> List[Dict[str, Any]]:
        return [json.loads(line) for line in self.getvalue().splitlines() if line]


@pytest.fixture
def lines() -> Lines:
    """Configure the stderr backend into a buffer; returns the buffer."""
    buf = Lines()
    telemetry.configure(backend="stderr", stream=buf, worker_id="w1", pool="p", random_seed=7)
    return buf
