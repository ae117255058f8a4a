"""snakepipe worker library: send telemetry events from Python workers to
snakepipe.

    from snakepipe import telemetry
    telemetry.configure(worker_id="pool-a/worker-3")
    telemetry.emit("python.call.stop", {"duration": 1200}, {"tool": "resize"})

See :mod:`snakepipe.telemetry` for the API and ``python/README.md`` for the
configuration, the drop policy and how control from snakepipe is obeyed.
"""

__version__ = "0.1.0"

from . import telemetry  # noqa: E402
from .telemetry import (  # noqa: E402
    configure,
    emit,
    flush,
    get_correlation_id,
    instrument,
    set_correlation_id,
    shutdown,
    span,
    stats,
)

__all__ = [
    "__version__",
    "configure",
    "emit",
    "flush",
    "get_correlation_id",
    "instrument",
    "set_correlation_id",
    "shutdown",
    "span",
    "stats",
    "telemetry",
]
