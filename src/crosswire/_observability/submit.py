"""``crosswire submit``'s trace: a PRODUCER span when export is configured, else a
fresh (or the given) trace context in the event, so every hop shares one trace id."""

from __future__ import annotations

import os
from typing import Any

from .._envelope import Event
from .._exceptions import ConfigurationError

__all__ = ["traced_publish"]


async def traced_publish(transport: Any, event: Event[Any]) -> str:
    """Publish ``event`` on ``transport`` inside its trace; returns the trace id (hex).

    :raises ConfigurationError: export is configured but the otlp extra is missing.
    """
    from .._policies.tracing import node_tracing

    tracing = node_tracing("crosswire-cli", transport) if _wants_export() else None
    if tracing is None:
        if event.traceparent is None:
            event.traceparent = f"00-{os.urandom(16).hex()}-{os.urandom(8).hex()}-01"
        await transport.publish([event])
        return event.traceparent[3:35]
    with tracing.sending([event]):
        await transport.publish([event])
    tracing.provider.force_flush(5000)
    assert event.traceparent is not None
    return event.traceparent[3:35]


def _wants_export() -> bool:
    from .otlp import configured_endpoint

    try:
        return configured_endpoint() is not None
    except ConfigurationError:  # pragma: no cover - configured_endpoint does not raise
        return False
