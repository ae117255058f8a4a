"""Built-in samplers (off by default; ``configure(samplers=[...])``).

* ``memory``: ``python.memory.sampled`` with ``rss_bytes`` and ``vms_bytes``
  every ``sampler_interval`` seconds (psutil when installed, else
  ``/proc/self/statm``; elsewhere the peak RSS from ``resource``).
* ``cpu``: ``python.cpu.sampled`` with ``cpu_percent``: process CPU time
  over wall time since the previous sample, in percent of one core.
* ``gc``: ``python.gc.completed`` after every garbage collection, from
  ``gc.callbacks``: ``duration`` (ns), ``collected``, ``generation`` (the
  keys the host's catalog declares for the event).
"""

from __future__ import annotations

import gc
import os
import threading
import time
from typing import Any, Dict, Iterable, Optional, Tuple

from . import _core

try:  # optional extra: pip install snakepipe[samplers]
    import psutil as _psutil  # type: ignore[import-not-found]
except Exception:  # pragma: no cover - depends on the environment
    _psutil = None

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def memory_sample() -> Optional[Dict[str, int]]:
    """Current ``{"rss_bytes", "vms_bytes"}`` of this process, or None."""
    if _psutil is not None:
        try:
            mi = _psutil.Process().memory_info()
            return {"rss_bytes": int(mi.rss), "vms_bytes": int(mi.vms)}
        except Exception:
            pass
    try:
        with open("/proc/self/statm", "rb") as f:
            vms_pages, rss_pages = f.read().split()[:2]
        return {"rss_bytes": int(rss_pages) * _PAGE, "vms_bytes": int(vms_pages) * _PAGE}
    except (OSError, ValueError):
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {"rss_bytes": int(peak) * (1 if os.uname().sysname == "Darwin" else 1024)}
    except Exception:
        return None


class CpuSampler:
    """CPU use of this process between calls, in percent of one core."""

    def __init__(self) -> None:
        self._cpu = time.process_time()
        self._wall = time.monotonic()

    def sample(self) -> Optional[float]:
        cpu, wall = time.process_time(), time.monotonic()
        dc, dw = cpu - self._cpu, wall - self._wall
        self._cpu, self._wall = cpu, wall
        if dw <= 0:
            return None
        return max(0.0, 100.0 * dc / dw)


class GcSampler:
    """Emits ``python.gc.completed`` from ``gc.callbacks``."""

    def __init__(self) -> None:
        self._t0: Dict[int, int] = {}
        self._installed = False

    def __call__(self, phase: str, info: Dict[str, Any]) -> None:
        try:
            gen = int(info.get("generation", -1))
            if phase == "start":
                self._t0[gen] = time.perf_counter_ns()
                return
            t0 = self._t0.pop(gen, None)
            m: Dict[str, Any] = {
                "collected": int(info.get("collected", 0)),
                "generation": gen,
            }
            if t0 is not None:
                m["duration"] = time.perf_counter_ns() - t0
            _core.emit("python.gc.completed", m)
        except Exception:
            pass  # a gc callback must never raise

    def install(self) -> None:
        if not self._installed:
            gc.callbacks.append(self)
            self._installed = True

    def uninstall(self) -> None:
        if self._installed:
            try:
                gc.callbacks.remove(self)
            except ValueError:
                pass
            self._installed = False


class Samplers:
    """Runs the selected samplers until ``stop()``."""

    def __init__(self, names: Iterable[str], interval: float) -> None:
        self.names: Tuple[str, ...] = tuple(names)
        self.interval = interval
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._cpu = CpuSampler() if "cpu" in self.names else None
        self._gc = GcSampler() if "gc" in self.names else None

    def start(self) -> None:
        if self._gc is not None:
            self._gc.install()
        if "memory" in self.names or "cpu" in self.names:
            self._thread = threading.Thread(target=self._run, name="snakepipe-samplers", daemon=True)
            self._thread.start()

    def sample_once(self) -> None:
        """Emit one memory and/or CPU sample now."""
        if "memory" in self.names:
            m = memory_sample()
            if m is not None:
                m["system_time"] = time.time_ns()
                _core.emit("python.memory.sampled", m)
        if self._cpu is not None:
            c = self._cpu.sample()
            if c is not None:
                _core.emit("python.cpu.sampled", {"cpu_percent": c, "system_time": time.time_ns()})

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sample_once()
            except Exception:
                pass

    def stop(self) -> None:
        self._stop.set()
        if self._gc is not None:
            self._gc.uninstall()
        t = self._thread
        if t is not None and t is not threading.current_thread():
            t.join(1.0)
